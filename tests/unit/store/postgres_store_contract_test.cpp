// Runs the Store contract suite on the PostgreSQL store, against the database named by
// PM_AGENT_TEST_DATABASE_URL (scripts/test.sh starts a throwaway cluster and sets it). Each test
// starts from empty tables; one loop and one pool serve the whole suite.
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdlib>
#include <memory>

#include <libpq-fe.h>

#include "pm_agent/metrics/registry.hpp"
#include "pm_agent/pg/pool.hpp"
#include "pm_agent/store/postgres_store.hpp"
#include "store_contract.hpp"

namespace pm_agent::store::testing {

namespace {

const char* database_url() {
    return std::getenv("PM_AGENT_TEST_DATABASE_URL");
}

struct shared_backend {
    boost::asio::io_context ioc{1};
    metrics::registry registry;
    std::unique_ptr<pg::pool> pool;
};

shared_backend* backend() {
    static shared_backend* b = []() -> shared_backend* {
        const char* url = database_url();
        if (url == nullptr || *url == '\0') {
            return nullptr;
        }
        if (auto e = reset_database(url); !e.empty()) {
            ADD_FAILURE() << "reset: " << e;
        }
        if (auto e = migrate_database(url); !e.empty()) {
            ADD_FAILURE() << "migrate: " << e;
            return nullptr;
        }
        auto* out = new shared_backend;
        pg::pool_options options;
        options.url = url;
        options.size = 2;
        out->pool = std::make_unique<pg::pool>(out->ioc, options, out->registry);
        out->pool->start();
        return out;
    }();
    return b;
}

void truncate_all(const char* url) {
    PGconn* c = PQconnectdb(url);
    PGresult* r = PQexec(c,
                         "TRUNCATE pm_tasks, pm_agents, pm_agent_notices, pm_queues RESTART "
                         "IDENTITY");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        ADD_FAILURE() << "truncate: " << PQerrorMessage(c);
    }
    PQclear(r);
    PQfinish(c);
}

std::unique_ptr<store> make_postgres(const config::queue_config& q,
                                     const config::agents_config& a) {
    shared_backend* b = backend();
    if (b == nullptr) {
        return nullptr;
    }
    truncate_all(database_url());
    postgres_options options;
    options.poll_interval = std::chrono::milliseconds(0);  // injected time: every reap runs
    return make_postgres_store(b->ioc, *b->pool, q, a, options);
}

void run_postgres(store&, const std::function<bool()>& done) {
    shared_backend* b = backend();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
        b->ioc.restart();
        b->ioc.run_one_for(std::chrono::milliseconds(50));
    }
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(postgres, store_contract,
                         ::testing::Values(store_factory{"postgres", &make_postgres, &run_postgres,
                                                         false}),
                         factory_name);

}  // namespace pm_agent::store::testing
