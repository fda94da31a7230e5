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
#include "store/postgres/postgres_store.hpp"
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

std::unique_ptr<store> make_postgres_with(const config::queue_config& q,
                                          const config::agents_config& a,
                                          postgres_options options) {
    shared_backend* b = backend();
    if (b == nullptr) {
        return nullptr;
    }
    truncate_all(database_url());
    return make_postgres_store(b->ioc, *b->pool, q, a, options);
}

std::unique_ptr<store> make_postgres(const config::queue_config& q,
                                     const config::agents_config& a) {
    postgres_options options;
    options.poll_interval = std::chrono::milliseconds(0);  // injected time: every reap runs
    return make_postgres_with(q, a, options);
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

namespace pm_agent::store::postgres {

namespace {

std::string exec_text(PGconn* c, const std::string& sql) {
    PGresult* r = PQexec(c, sql.c_str());
    std::string out;
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        for (int i = 0; i < PQntuples(r); ++i) {
            out += PQgetvalue(r, i, 0);
            out += '\n';
        }
    } else if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        ADD_FAILURE() << sql.substr(0, 60) << ": " << PQerrorMessage(c);
    }
    PQclear(r);
    return out;
}

}  // namespace

std::string exec_text_for_tests(PGconn* c, const std::string& sql) {
    return exec_text(c, sql);
}

namespace {

/// A connection to the migrated test database for EXPLAIN, or null when none is configured.
PGconn* plan_database() {
    const char* url = std::getenv("PM_AGENT_TEST_DATABASE_URL");
    if (url == nullptr || *url == '\0') {
        return nullptr;
    }
    EXPECT_EQ(migrate_database(url), "");
    PGconn* c = PQconnectdb(url);
    EXPECT_EQ(PQstatus(c), CONNECTION_OK);
    return c;
}

}  // namespace

// The claim must walk the partial index of pending tasks, not scan or sort the table: with a
// backlog of pending tasks in other queues and finished tasks around, its plan names
// pm_tasks_claim and never a sequential scan of pm_tasks, custom or generic.
TEST(postgres_plan, ClaimWalksThePendingIndex) {
    PGconn* c = plan_database();
    if (c == nullptr) {
        GTEST_SKIP() << "PM_AGENT_TEST_DATABASE_URL is not set";
    }
    exec_text(c, "TRUNCATE pm_tasks, pm_agents, pm_agent_notices, pm_queues RESTART IDENTITY");
    exec_text(c,
              "INSERT INTO pm_agents (id, name, queues, capabilities, labels, max_concurrency, "
              "status, last_heartbeat, registered_at, worker, token_hash) VALUES ('a_plan', 'w', "
              "'{q1,q2}', '{}', '{}', 8, 'online', now(), now(), 'test', '\\x00')");
    exec_text(c,
              "INSERT INTO pm_tasks (id, queue, type, payload, priority, status, max_attempts, "
              "required_capabilities, timeout_s, created_at, updated_at, ready_at) SELECT 't_' "
              "|| g, CASE WHEN g % 10 = 0 THEN 'q1' ELSE 'other' || (g % 50) END, 'x', '{}', g % "
              "3, CASE WHEN g % 4 = 0 THEN 'succeeded' ELSE 'pending' END, 3, '{}', 0, now(), "
              "now(), now() FROM generate_series(1, 20000) g");
    exec_text(c, "ANALYZE pm_tasks");
    exec_text(c,
              std::string("PREPARE plan_claim(text, int, bigint, bigint) AS ") + claim_statement());
    const std::string plan =
        exec_text(c, "EXPLAIN EXECUTE plan_claim('a_plan', 8, 1700000000000000, 60000)");
    EXPECT_NE(plan.find("pm_tasks_claim"), std::string::npos) << plan;
    EXPECT_EQ(plan.find("Seq Scan on pm_tasks"), std::string::npos) << plan;
    // PostgreSQL may settle on the generic plan of a prepared statement after a few calls; the
    // claim's and the joined completion's must reach their rows through an index all the same.
    exec_text(c, "SET plan_cache_mode = force_generic_plan");
    const std::string generic =
        exec_text(c, "EXPLAIN EXECUTE plan_claim('a_plan', 8, 1700000000000000, 60000)");
    EXPECT_NE(generic.find("pm_tasks_claim"), std::string::npos) << generic;
    EXPECT_EQ(generic.find("Seq Scan on pm_tasks"), std::string::npos) << generic;
    // With many tasks held, as in a busy fleet.
    exec_text(c,
              "INSERT INTO pm_tasks (id, queue, type, payload, priority, status, max_attempts, "
              "required_capabilities, timeout_s, created_at, updated_at, ready_at, agent_id) "
              "SELECT 'h_' || g, 'q1', 'x', '{}', 0, 'assigned', 3, '{}', 0, now(), now(), now(), "
              "'a_plan' FROM generate_series(1, 5000) g");
    exec_text(c, "ANALYZE pm_tasks");
    exec_text(c, std::string("PREPARE plan_complete(text[], text[], text[], bigint[]) AS ") +
                     complete_many_statement());
    const std::string complete =
        exec_text(c,
                  "EXPLAIN EXECUTE plan_complete('{t_1,t_2}', '{a_plan,a_plan}', '{1,2}', "
                  "'{1700000000000000,1700000000000000}')");
    PQfinish(c);
    EXPECT_NE(complete.find("pm_tasks_pkey"), std::string::npos) << complete;
    EXPECT_EQ(complete.find("Seq Scan on pm_tasks"), std::string::npos) << complete;
}

// The reaper runs several times a second on every worker: with a fleet of agents attached to
// live workers it must touch none of them. Silent unattached agents come from their partial
// index, those of a silent worker through pm_agents_attached_to; never a scan of pm_agents.
TEST(postgres_plan, ReapOfflineLeavesAttachedAgentsOfLiveWorkersAlone) {
    PGconn* c = plan_database();
    if (c == nullptr) {
        GTEST_SKIP() << "PM_AGENT_TEST_DATABASE_URL is not set";
    }
    exec_text(c, "TRUNCATE pm_tasks, pm_agents, pm_agent_notices, pm_queues, pm_workers");
    exec_text(c, "INSERT INTO pm_workers VALUES ('live', now()), ('gone', now() - interval '1 h')");
    exec_text(c,
              "INSERT INTO pm_agents (id, name, queues, capabilities, labels, max_concurrency, "
              "status, last_heartbeat, registered_at, worker, token_hash, attached_to) SELECT 'a_' "
              "|| g, 'w', '{default}', '{}', '{}', 1, 'online', now() - interval '1 h', now(), "
              "'test', '\\x00', CASE WHEN g % 100 = 0 THEN 'gone' WHEN g % 50 = 0 THEN NULL ELSE "
              "'live' END FROM generate_series(1, 20000) g");
    exec_text(c, "ANALYZE pm_agents");
    exec_text(c, "ANALYZE pm_workers");
    exec_text(
        c, std::string("PREPARE plan_reap(bigint, bigint, text) AS ") + reap_statement("offline"));
    const std::string plan =
        exec_text(c, "EXPLAIN EXECUTE plan_reap(pm_us(now()), 45000, 'silent')");
    exec_text(c, "TRUNCATE pm_agents, pm_workers");
    PQfinish(c);
    EXPECT_NE(plan.find("pm_agents_last_heartbeat"), std::string::npos) << plan;
    EXPECT_NE(plan.find("pm_agents_attached_to"), std::string::npos) << plan;
    EXPECT_EQ(plan.find("Seq Scan on pm_agents"), std::string::npos) << plan;
}

/// Rows shaped like a busy fleet: 2,000 agents (a tenth with a lease), 20,000 tasks of which a
/// tenth each pending, held and scheduled, the rest finished and kept. Not analyzed.
void fill_busy_fleet(PGconn* c) {
    exec_text(c,
              "INSERT INTO pm_agents (id, name, queues, capabilities, labels, max_concurrency, "
              "status, last_heartbeat, registered_at, worker, token_hash, lease_expires_at) "
              "SELECT 'a_' || g, 'w', '{default}', '{}', '{}', 64, 'online', now(), now(), 'test', "
              "'\\x00', CASE WHEN g % 10 = 0 THEN now() END FROM generate_series(1, 2000) g");
    // As in a busy queue: a tenth each pending, held and scheduled, the rest finished and kept.
    exec_text(c,
              "INSERT INTO pm_tasks (id, queue, type, payload, priority, status, max_attempts, "
              "required_capabilities, timeout_s, created_at, updated_at, ready_at, agent_id, "
              "finished_at, run_at, timeout_at) SELECT 't_' || g, 'default', 'x', '{}', 0, "
              "COALESCE((ARRAY['pending', 'assigned', 'scheduled'])[1 + g % 10], 'succeeded'), 3, "
              "'{}', 0, now(), now(), now(), CASE WHEN g % 10 = 1 THEN 'a_' || (g % 2000) END, "
              "CASE WHEN g % 10 > 2 THEN now() END, CASE WHEN g % 10 = 2 THEN now() END, CASE "
              "WHEN g % 10 = 1 THEN now() END FROM generate_series(1, 20000) g");
}

// A prepared statement settles on a generic plan, made without the parameters' values. The
// reaper's statements run several times a second on every worker, so none may scan pm_tasks or
// pm_agents whatever the rows it finds: every set they change is reached through an index (a
// join to a CTE could be planned as a hash join over a scan of the whole table). They are sent
// unnamed (planned on each run, see the next test), so this holds them to a plan that does not
// depend on the values: through PgBouncer, or were they ever prepared again.
TEST(postgres_plan, ReaperGenericPlansNeverScanATable) {
    PGconn* c = plan_database();
    if (c == nullptr) {
        GTEST_SKIP() << "PM_AGENT_TEST_DATABASE_URL is not set";
    }
    exec_text(c, "TRUNCATE pm_tasks, pm_agents, pm_agent_notices, pm_queues, pm_workers");
    fill_busy_fleet(c);
    exec_text(c, "ANALYZE pm_tasks");
    exec_text(c, "ANALYZE pm_agents");
    exec_text(c, "SET plan_cache_mode = force_generic_plan");
    struct probe {
        const char* name;
        const char* types;
        const char* args;
    };
    const probe probes[] = {
        {"offline", "bigint, bigint, text", "pm_us(now()), 45000, 'silent'"},
        {"leases", "bigint, text", "pm_us(now()), 'lease'"},
        {"timeouts", "bigint, text", "pm_us(now()), 'timeout'"},
        {"due", "bigint", "pm_us(now())"},
        {"retention", "bigint, bigint", "pm_us(now()), 0"},
        {"count", "", ""},
    };
    for (const probe& p : probes) {
        const std::string types = *p.types != '\0' ? std::string("(") + p.types + ")" : "";
        const std::string args = *p.args != '\0' ? std::string("(") + p.args + ")" : "";
        exec_text(c,
                  std::string("PREPARE plan_") + p.name + types + " AS " + reap_statement(p.name));
        const std::string plan = exec_text(c, std::string("EXPLAIN EXECUTE plan_") + p.name + args);
        EXPECT_EQ(plan.find("Seq Scan on pm_tasks"), std::string::npos) << p.name << "\n" << plan;
        EXPECT_EQ(plan.find("Seq Scan on pm_agents"), std::string::npos) << p.name << "\n" << plan;
    }
    exec_text(c, "TRUNCATE pm_tasks, pm_agents");
    PQfinish(c);
}

// Retention runs on every reap. With a backlog of pending tasks and young finished ones, none
// of them due, it must read only the index entries of due tasks: the generic plan (the one a
// prepared statement keeps) names pm_tasks_finished and returns no row it then throws away.
TEST(postgres_plan, RetentionReadsOnlyFinishedTasksThatAreDue) {
    PGconn* c = plan_database();
    if (c == nullptr) {
        GTEST_SKIP() << "PM_AGENT_TEST_DATABASE_URL is not set";
    }
    exec_text(c, "TRUNCATE pm_tasks, pm_agents, pm_agent_notices, pm_queues RESTART IDENTITY");
    exec_text(c,
              "INSERT INTO pm_tasks (id, queue, type, payload, priority, status, max_attempts, "
              "required_capabilities, timeout_s, created_at, updated_at, ready_at, finished_at) "
              "SELECT 't_' || g, 'q', 'x', '{}', 0, CASE WHEN g % 4 = 0 THEN 'succeeded' ELSE "
              "'pending' END, 3, '{}', 0, now() - interval '2 h', now(), now(), CASE WHEN g % 4 = "
              "0 THEN now() - interval '1 minute' END FROM generate_series(1, 20000) g");
    exec_text(c, "ANALYZE pm_tasks");
    exec_text(
        c, std::string("PREPARE plan_retention(bigint, bigint) AS ") + reap_statement("retention"));
    // The plan a prepared statement settles on after a few runs, whatever the parameters.
    exec_text(c, "SET plan_cache_mode = force_generic_plan");
    // Retention one hour: every finished task is younger, so nothing is due.
    const std::string plan =
        exec_text(c, "EXPLAIN (ANALYZE, COSTS OFF) EXECUTE plan_retention(pm_us(now()), 3600000)");
    exec_text(c, "TRUNCATE pm_tasks");
    PQfinish(c);
    EXPECT_NE(plan.find("pm_tasks_finished"), std::string::npos) << plan;
    EXPECT_EQ(plan.find("Rows Removed by Filter"), std::string::npos) << plan;
    EXPECT_EQ(plan.find("Seq Scan on pm_tasks"), std::string::npos) << plan;
}

namespace {

/// Sequential-scan tuples read from `table` so far, as the statistics show them.
long long seq_tuples_read(PGconn* c, const char* table) {
    return std::stoll(exec_text(c, std::string("SELECT seq_tup_read FROM pg_stat_user_tables "
                                               "WHERE relname = '") +
                                       table + "'"));
}

}  // namespace

// A fresh database is small when the reaper's statements are first planned. A prepared
// statement would keep the generic plan it settled on then, a sequential scan, until autovacuum
// first analyzes the table (a minute later at the earliest), and the table keeps growing
// meanwhile. Reaps on empty tables, then on busy ones in the same database session: the busy
// tables are never read by a sequential scan.
TEST(postgres_plan, ReapsPlannedOnEmptyTablesStayOnIndexesOnceTheyFill) {
    PGconn* c = plan_database();
    if (c == nullptr) {
        GTEST_SKIP() << "PM_AGENT_TEST_DATABASE_URL is not set";
    }
    if (PQserverVersion(c) < 150000) {
        PQfinish(c);
        GTEST_SKIP() << "pg_stat_force_next_flush() needs PostgreSQL 15";
    }
    exec_text(c, "TRUNCATE pm_tasks, pm_agents, pm_agent_notices, pm_queues, pm_workers");
    boost::asio::io_context ioc{1};
    metrics::registry registry;
    pg::pool_options pool_options;
    pool_options.url = std::getenv("PM_AGENT_TEST_DATABASE_URL");
    pool_options.size = 1;  // one session: the one that would keep the plans
    pg::pool pool(ioc, pool_options, registry);
    pool.start();
    postgres_options options;
    options.poll_interval = std::chrono::milliseconds(0);
    auto st =
        make_postgres_store(ioc, pool, config::queue_config{}, config::agents_config{}, options);
    auto wait = [&ioc](const bool& done) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!done && std::chrono::steady_clock::now() < deadline) {
            ioc.restart();
            ioc.run_one_for(std::chrono::milliseconds(50));
        }
        ASSERT_TRUE(done);
    };
    // Before autovacuum's first look: at the injected time (2020) nothing in the rows is due.
    const time_point t0 = time_point(std::chrono::hours(24 * 365 * 50));
    auto reap = [&](int times) {
        for (int i = 0; i < times; ++i) {
            bool done = false;
            st->reap(t0, [&](result<reap_outcome> r) {
                EXPECT_TRUE(r) << r.err().message;
                done = true;
            });
            wait(done);
        }
    };
    // The session's statistics reach the shared view when it next goes idle.
    auto flush_statistics = [&] {
        bool done = false;
        pool.transact({{"", "SELECT pg_stat_force_next_flush()", {}}}, [&](pg::outcome out) {
            EXPECT_FALSE(out.error);
            done = true;
        });
        wait(done);
    };
    reap(8);  // more than the five runs after which a prepared statement may go generic
    fill_busy_fleet(c);
    flush_statistics();
    const long long tasks_before = seq_tuples_read(c, "pm_tasks");
    const long long agents_before = seq_tuples_read(c, "pm_agents");
    // Two reaps: the third would read the queued-task count (every fifth reap), whose plan on
    // tables never analyzed is the planner's guess; autovacuum's first analyze settles it.
    reap(2);
    flush_statistics();
    EXPECT_EQ(seq_tuples_read(c, "pm_tasks"), tasks_before);
    EXPECT_EQ(seq_tuples_read(c, "pm_agents"), agents_before);
    st.reset();
    exec_text(c, "TRUNCATE pm_tasks, pm_agents");
    PQfinish(c);
}

}  // namespace pm_agent::store::postgres

namespace pm_agent::store::testing {

// Operations of one loop turn are joined into one statement; what the joined statement did not
// change is answered on its own. Started together here, before the loop runs.
TEST(postgres_group_commit, JoinedHeartbeatsAndCompletionsAnswerEachCaller) {
    const config::queue_config q;
    const config::agents_config a;
    auto st = make_postgres(q, a);
    if (!st) {
        GTEST_SKIP() << "PM_AGENT_TEST_DATABASE_URL is not set";
    }
    const time_point now = time_point(std::chrono::hours(24 * 365 * 50));
    int pending = 0;
    auto wait = [&] { run_postgres(*st, [&] { return pending == 0; }); };
    for (const char* id : {"a_1", "a_2"}) {
        new_agent spec;
        spec.id = id;
        spec.name = "w";
        spec.queues = {"default"};
        spec.max_concurrency = 4;
        ++pending;
        st->register_agent(std::move(spec), now, [&](result<const agent*> r) {
            EXPECT_TRUE(r);
            --pending;
        });
    }
    std::vector<new_task> tasks(3);
    for (int i = 0; i < 3; ++i) {
        tasks[i].id = "t_" + std::to_string(i);
        tasks[i].queue = "default";
        tasks[i].type = "work";
        tasks[i].max_attempts = 3;
    }
    ++pending;
    st->submit(std::move(tasks), now, [&](result<std::span<const submitted>> r) {
        EXPECT_TRUE(r);
        --pending;
    });
    wait();
    std::vector<std::string> claimed;
    ++pending;
    st->claim("a_1", 3, now, [&](result<claim_outcome> r) {
        ASSERT_TRUE(r);
        for (const task* t : r->tasks) {
            claimed.push_back(t->id);
        }
        --pending;
    });
    wait();
    ASSERT_EQ(claimed.size(), 3u);

    std::vector<std::string> answers(6);
    auto hb = [&](std::string id, std::size_t slot) {
        ++pending;
        st->heartbeat(id, std::nullopt, now + std::chrono::seconds(1),
                      [&, slot](result<heartbeat_outcome> r) {
                          answers[slot] = r ? r->record->id : std::string(to_string(r.err().code));
                          --pending;
                      });
    };
    hb("a_1", 0);
    hb("a_2", 1);
    hb("a_1", 2);     // twice in one turn
    hb("a_nope", 3);  // unknown
    auto done = [&](std::string task_id, std::string agent, std::size_t slot) {
        ++pending;
        st->complete({task_id, agent}, boost::json::value(1), now + std::chrono::seconds(2),
                     [&, slot](result<const task*> r) {
                         answers[slot] = r ? std::string(to_string((*r)->status))
                                           : std::string(to_string(r.err().code));
                         --pending;
                     });
    };
    done(claimed[0], "a_1", 4);
    done(claimed[1], "a_2", 5);  // not a_2's task
    wait();
    EXPECT_EQ(answers[0], "a_1");
    EXPECT_EQ(answers[1], "a_2");
    EXPECT_EQ(answers[2], "a_1");
    EXPECT_EQ(answers[3], "not_found");
    EXPECT_EQ(answers[4], "succeeded");
    EXPECT_EQ(answers[5], "conflict");
}

}  // namespace pm_agent::store::testing

namespace pm_agent::store::testing {

/// A store with heartbeat_write_interval = 5 s, agent a_1 holding task t_1 claimed at t0.
class postgres_coalescing : public ::testing::Test {
  protected:
    void SetUp() override {
        config::agents_config a;
        a.heartbeat_timeout = std::chrono::seconds(45);
        postgres_options options;
        options.poll_interval = std::chrono::milliseconds(0);
        options.heartbeat_write_interval = std::chrono::seconds(5);
        st = make_postgres_with(config::queue_config{}, a, options);
        if (!st) {
            GTEST_SKIP() << "PM_AGENT_TEST_DATABASE_URL is not set";
        }
        new_agent spec;
        spec.id = "a_1";
        spec.name = "w";
        spec.queues = {"default"};
        spec.max_concurrency = 4;
        ++pending;
        st->register_agent(std::move(spec), t0, [&](result<const agent*> r) {
            EXPECT_TRUE(r);
            --pending;
        });
        std::vector<new_task> tasks(1);
        tasks[0].id = "t_1";
        tasks[0].queue = "default";
        tasks[0].type = "work";
        tasks[0].max_attempts = 3;
        ++pending;
        st->submit(std::move(tasks), t0, [&](result<std::span<const submitted>> r) {
            EXPECT_TRUE(r);
            --pending;
        });
        wait();
        ++pending;
        st->claim("a_1", 1, t0, [&](result<claim_outcome> r) {
            ASSERT_TRUE(r);
            EXPECT_EQ(r->tasks.size(), 1u);
            --pending;
        });
        wait();
    }

    void wait() {
        run_postgres(*st, [&] { return pending == 0; });
    }
    static std::string stored_heartbeat() {
        PGconn* c = PQconnectdb(database_url());
        const std::string v =
            postgres::exec_text_for_tests(c, "SELECT pm_us(last_heartbeat) FROM pm_agents");
        PQfinish(c);
        return v;
    }
    static std::string micros_of(time_point t) {
        return std::to_string(
                   std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch())
                       .count()) +
               "\n";
    }
    /// A heartbeat at `at`; the cancels it hands over are appended to `cancels`.
    void beat(time_point at) {
        ++pending;
        st->heartbeat("a_1", std::nullopt, at, [&, at](result<heartbeat_outcome> r) {
            ASSERT_TRUE(r) << r.err().message;
            EXPECT_EQ(r->record->last_heartbeat, at);
            for (auto& c : r->cancel) {
                cancels.push_back(c);
            }
            --pending;
        });
        wait();
    }
    void cancel_task() {
        ++pending;
        st->cancel("t_1", t0 + std::chrono::seconds(3), [&](result<cancel_outcome> r) {
            EXPECT_TRUE(r && r->was_held);
            --pending;
        });
        wait();
    }
    /// A reap at t0 + 5 s, then waits until the stored heartbeat is no longer `before`.
    void reap_and_await_renewal(time_point before) {
        ++pending;
        st->reap(t0 + std::chrono::seconds(5), [&](result<reap_outcome> r) {
            EXPECT_TRUE(r);
            --pending;
        });
        wait();
        run_postgres(*st, [&] { return stored_heartbeat() != micros_of(before); });
    }

    const time_point t0 = time_point(std::chrono::hours(24 * 365 * 50));
    std::unique_ptr<store> st;
    int pending = 0;
    std::vector<std::string> cancels;
};

// heartbeat_write_interval: heartbeats within the interval write nothing (the stored
// last_heartbeat stays), still hand over cancel notices, and the next reap after the interval
// writes the latest one.
TEST_F(postgres_coalescing, CoalescedHeartbeatsWriteOncePerIntervalAndStillTakeNotices) {
    const auto t1 = t0 + std::chrono::seconds(1);
    beat(t1);  // the first from this worker: written
    EXPECT_EQ(stored_heartbeat(), micros_of(t1));
    beat(t0 + std::chrono::seconds(2));
    beat(t0 + std::chrono::seconds(3));
    EXPECT_EQ(stored_heartbeat(), micros_of(t1));  // not written
    cancel_task();
    beat(t0 + std::chrono::seconds(4));
    EXPECT_EQ(cancels, std::vector<std::string>{"t_1"});  // the notice, on the light path
    beat(t0 + std::chrono::milliseconds(4500));
    EXPECT_EQ(cancels.size(), 1u);  // taken once
    // The renewal: one statement at the first reap, then not before the interval has passed.
    reap_and_await_renewal(t1);
    EXPECT_EQ(stored_heartbeat(), micros_of(t0 + std::chrono::milliseconds(4500)));
}

// renew_liveness (a REST agent's other calls) coalesces like a heartbeat: written at once
// the first time, then kept back for the renewal; the cancel notices stay meanwhile.
TEST_F(postgres_coalescing, RenewedLivenessIsCoalescedAndLeavesTheNotices) {
    auto renew = [&](time_point at) {
        ++pending;
        st->renew_liveness("a_1", at, [&, at](result<const agent*> r) {
            ASSERT_TRUE(r) << r.err().message;
            EXPECT_EQ((*r)->last_heartbeat, at);
            --pending;
        });
        wait();
    };
    const auto t1 = t0 + std::chrono::seconds(1);
    renew(t1);
    EXPECT_EQ(stored_heartbeat(), micros_of(t1));  // written: nothing to coalesce with yet
    cancel_task();
    const auto t4 = t0 + std::chrono::seconds(4);
    renew(t4);
    EXPECT_EQ(stored_heartbeat(), micros_of(t1));  // kept back
    reap_and_await_renewal(t1);
    EXPECT_EQ(stored_heartbeat(), micros_of(t4));
    beat(t0 + std::chrono::milliseconds(4500));
    EXPECT_EQ(cancels, std::vector<std::string>{"t_1"});  // left for the heartbeat
}

// While a reap is in flight nothing is due: a due time in the past would fire the worker's
// timer over and over until the database answered (a busy loop under load). Once it is back,
// the next reap is one poll interval after it.
TEST(postgres_reap, NothingIsDueWhileAReapIsInFlight) {
    postgres_options options;
    options.poll_interval = std::chrono::milliseconds(200);
    auto st = make_postgres_with(config::queue_config{}, config::agents_config{}, options);
    if (!st) {
        GTEST_SKIP() << "PM_AGENT_TEST_DATABASE_URL is not set";
    }
    const time_point t0 = time_point(std::chrono::hours(24 * 365 * 50));
    bool reaped = false;
    st->reap(t0, [&](result<reap_outcome> r) {
        EXPECT_TRUE(r);
        reaped = true;
    });
    ASSERT_FALSE(reaped);
    EXPECT_FALSE(st->next_due());
    run_postgres(*st, [&] { return reaped; });
    ASSERT_TRUE(reaped);
    EXPECT_EQ(st->next_due(), t0 + std::chrono::milliseconds(200));
}

// Steps on one or more PostgreSQL stores sharing the suite's pool, each waited for.
struct pg_steps {
    static constexpr time_point t0 = time_point(std::chrono::hours(24 * 365 * 50));
    static time_point at(int seconds) { return t0 + std::chrono::seconds(seconds); }

    void wait(const bool& done) {
        run_postgres(*stores.front(), [&] { return done; });
    }
    void register_agent(store& st, const std::string& id, int seconds) {
        new_agent spec;
        spec.id = id;
        spec.name = "w";
        spec.queues = {"default"};
        spec.max_concurrency = 1;
        bool done = false;
        st.register_agent(std::move(spec), at(seconds), [&](result<const agent*> r) {
            EXPECT_TRUE(r);
            done = true;
        });
        wait(done);
    }
    void heartbeat(store& st, const std::string& id, int seconds) {
        bool done = false;
        st.heartbeat(id, std::nullopt, at(seconds), [&](result<heartbeat_outcome> r) {
            EXPECT_TRUE(r) << r.err().message;
            done = true;
        });
        wait(done);
    }
    std::vector<std::string> reap(store& st, int seconds) {
        bool done = false;
        std::vector<std::string> offline;
        st.reap(at(seconds), [&](result<reap_outcome> r) {
            EXPECT_TRUE(r) << r.err().message;
            if (r) {
                offline = r->offline_agents;
            }
            done = true;
        });
        wait(done);
        return offline;
    }
    std::optional<time_point> shown_heartbeat(store& st, const std::string& id) {
        bool done = false;
        std::optional<time_point> out;
        st.get_agent(id, [&](result<const agent*> r) {
            if (r) {
                out = (*r)->last_heartbeat;
            }
            done = true;
        });
        wait(done);
        return out;
    }
    /// "status attached_to seconds-of-stored-heartbeat", read past the store.
    static std::string row(const std::string& id) {
        PGconn* c = PQconnectdb(database_url());
        std::string v = postgres::exec_text_for_tests(
            c,
            "SELECT status || ' ' || coalesce(attached_to, '-') || ' ' || "
            "((pm_us(last_heartbeat) - " +
                std::to_string(
                    std::chrono::duration_cast<std::chrono::microseconds>(t0.time_since_epoch())
                        .count()) +
                ") / 1000000) FROM pm_agents WHERE id = '" + id + "'");
        PQfinish(c);
        return v;
    }
    std::vector<store*> stores;
};

postgres_options attached_options(std::string worker) {
    postgres_options options;
    options.poll_interval = std::chrono::milliseconds(0);
    options.heartbeat_write_interval = std::chrono::seconds(5);
    options.worker_name = std::move(worker);
    return options;
}

config::agents_config attached_agents_config() {
    config::agents_config a;
    a.heartbeat_timeout = std::chrono::seconds(45);
    a.lease_timeout = std::chrono::seconds(60);
    return a;
}

// An idle agent on a WebSocket costs no row write while it stays: its worker's row stands for
// it (the stored heartbeat stays where it was written at attach), it is shown with the worker's
// latest renewal, other workers' reapers leave it alone, and once the worker falls silent past
// the heartbeat timeout the reaper of another worker takes it offline.
TEST(postgres_attached, AnIdleAttachedAgentLivesOnItsWorkersRowUntilTheWorkerFallsSilent) {
    const auto a = attached_agents_config();
    auto mine = make_postgres_with(config::queue_config{}, a, attached_options("worker-a"));
    if (!mine) {
        GTEST_SKIP() << "PM_AGENT_TEST_DATABASE_URL is not set";
    }
    auto other = make_postgres_store(backend()->ioc, *backend()->pool, config::queue_config{}, a,
                                     attached_options("worker-b"));
    pg_steps s;
    s.stores = {mine.get(), other.get()};
    s.register_agent(*mine, "a_1", 0);
    s.heartbeat(*mine, "a_1", 0);  // the attach's heartbeat: written
    mine->set_attached("a_1", true);
    for (int t = 6; t <= 72; t += 6) {
        s.heartbeat(*mine, "a_1", t);
        EXPECT_TRUE(s.reap(*mine, t).empty());
        EXPECT_TRUE(s.reap(*other, t).empty());
    }
    EXPECT_EQ(pg_steps::row("a_1"), "online worker-a 0\n");  // never written since
    EXPECT_EQ(s.shown_heartbeat(*other, "a_1"), pg_steps::at(72));
    EXPECT_TRUE(s.reap(*other, 72 + 44).empty());
    EXPECT_EQ(s.reap(*other, 72 + 46), std::vector<std::string>{"a_1"});
    EXPECT_EQ(pg_steps::row("a_1"), "offline - 0\n");
}

// On detach the last heartbeat this worker saw is written, and the agent's silence counts from
// there like any agent's on no worker.
TEST(postgres_attached, DetachWritesTheLastHeartbeatSeen) {
    const auto a = attached_agents_config();
    auto mine = make_postgres_with(config::queue_config{}, a, attached_options("worker-a"));
    if (!mine) {
        GTEST_SKIP() << "PM_AGENT_TEST_DATABASE_URL is not set";
    }
    pg_steps s;
    s.stores = {mine.get()};
    s.register_agent(*mine, "a_1", 0);
    s.heartbeat(*mine, "a_1", 0);
    mine->set_attached("a_1", true);
    s.heartbeat(*mine, "a_1", 10);
    s.reap(*mine, 10);
    s.heartbeat(*mine, "a_1", 25);
    mine->set_attached("a_1", false);
    s.reap(*mine, 26);
    EXPECT_EQ(pg_steps::row("a_1"), "online - 25\n");
    EXPECT_TRUE(s.reap(*mine, 25 + 44).empty());
    EXPECT_EQ(s.reap(*mine, 25 + 46), std::vector<std::string>{"a_1"});
}

// The same agent twice in one turn on the light path (a ping answer and a heartbeat message):
// both answered from the one row, the notices handed out once, and no full write because of it.
TEST(postgres_heartbeats, TheSameAgentTwiceInOneTurnStaysOnTheLightPath) {
    auto st = make_postgres_with(config::queue_config{}, attached_agents_config(),
                                 attached_options("worker-a"));
    if (!st) {
        GTEST_SKIP() << "PM_AGENT_TEST_DATABASE_URL is not set";
    }
    pg_steps s;
    s.stores = {st.get()};
    s.register_agent(*st, "a_1", 0);
    s.heartbeat(*st, "a_1", 1);  // written
    int answered = 0;
    for (int i = 0; i < 2; ++i) {
        st->heartbeat("a_1", std::nullopt, pg_steps::at(2), [&](result<heartbeat_outcome> r) {
            EXPECT_TRUE(r) << r.err().message;
            ++answered;
        });
    }
    run_postgres(*st, [&] { return answered == 2; });
    EXPECT_EQ(answered, 2);
    s.heartbeat(*st, "a_1", 3);
    EXPECT_EQ(pg_steps::row("a_1"), "online - 1\n");  // all three kept back for the renewal
}

// One task of `queue` to submit.
std::vector<new_task> one_task(const char* id, const char* queue) {
    std::vector<new_task> one(1);
    one[0].id = id;
    one[0].queue = queue;
    one[0].type = "work";
    return one;
}

// A store of its own with agent a_1 (queue "default", one slot) registered and a first task of
// a queue a_1 does not take submitted (which reads the queue size, so that later submissions
// go out with the next transaction); null without a database.
std::unique_ptr<store> store_with_agent(pg_steps& s) {
    auto st = make_postgres_with(config::queue_config{}, attached_agents_config(),
                                 attached_options("w1"));
    if (st) {
        s.stores = {st.get()};
        s.register_agent(*st, "a_1", 0);
        bool warm = false;
        st->submit(one_task("t_0", "other"), pg_steps::at(0),
                   [&](result<std::span<const submitted>> r) {
                       EXPECT_TRUE(r);
                       warm = true;
                   });
        s.wait(warm);
    }
    return st;
}

// store::visible_epoch on PostgreSQL advances once per answered transaction, before its
// callbacks run: a write's callback reads a newer epoch than any claim sent before the write
// was answered, and a claim started from that callback sees the write.
TEST(postgres_epoch, AWritesCallbackReadsTheEpochItsTransactionAdvanced) {
    pg_steps s;
    auto st = store_with_agent(s);
    if (!st) {
        GTEST_SKIP() << "PM_AGENT_TEST_DATABASE_URL is not set";
    }
    const std::uint64_t before = st->visible_epoch();
    std::optional<std::uint64_t> write_epoch;
    std::optional<std::size_t> claimed;
    st->submit(one_task("t_1", "default"), pg_steps::at(1),
               [&](result<std::span<const submitted>> r) {
                   ASSERT_TRUE(r);
                   write_epoch = st->visible_epoch();
                   st->claim("a_1", 1, pg_steps::at(1), [&](result<claim_outcome> c) {
                       ASSERT_TRUE(c);
                       claimed = c->tasks.size();
                   });
               });
    run_postgres(*st, [&] { return claimed.has_value(); });
    EXPECT_EQ(write_epoch, before + 1);
    EXPECT_EQ(claimed, 1u);
}

// In one transaction the insert goes ahead of the claims, which may take its tasks; the claims
// are answered first, so the engine knows those tasks are taken when the submission is answered.
TEST(postgres_epoch, ClaimsAreAnsweredBeforeTheSubmissionsOfTheirTransaction) {
    pg_steps s;
    auto st = store_with_agent(s);
    if (!st) {
        GTEST_SKIP() << "PM_AGENT_TEST_DATABASE_URL is not set";
    }
    std::vector<std::string> order;
    st->claim("a_1", 1, pg_steps::at(1), [&](result<claim_outcome> r) {
        ASSERT_TRUE(r);
        order.push_back("claim " + std::to_string(r->tasks.size()));
    });
    st->submit(one_task("t_1", "default"), pg_steps::at(1),
               [&](result<std::span<const submitted>> r) {
                   ASSERT_TRUE(r);
                   order.push_back("submit");
               });
    run_postgres(*st, [&] { return order.size() == 2; });
    EXPECT_EQ(order, (std::vector<std::string>{"claim 1", "submit"}));
}

}  // namespace pm_agent::store::testing
