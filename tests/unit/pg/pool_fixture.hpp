#pragma once
// A pool on a real PostgreSQL (PM_AGENT_TEST_DATABASE_URL), driven by a test-owned io_context.

#include <gtest/gtest.h>

#include <unistd.h>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pm_agent/metrics/registry.hpp"
#include "unit/loop_until.hpp"
#include "pm_agent/pg/pool.hpp"

namespace pm_agent::pg::testing {

class pool_test : public ::testing::Test {
  protected:
    void SetUp() override {
        const char* url = std::getenv("PM_AGENT_TEST_DATABASE_URL");
        if (url == nullptr || *url == '\0') {
            GTEST_SKIP() << "PM_AGENT_TEST_DATABASE_URL is not set: no PostgreSQL to test against";
        }
        url_ = url;
    }

    pool_options options(std::size_t size = 2) const {
        pool_options opts;
        opts.url = url_;
        opts.size = size;
        opts.queue_timeout = std::chrono::milliseconds(3000);
        return opts;
    }

    /// Runs the loop until pred() holds or `limit` passes; false on timeout.
    template <class Pred>
    bool run_until(Pred pred, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
        return pm_agent::testing::run_loop_until(ioc_, pred, limit);
    }

    /// Starts a pool and waits until it has a usable connection.
    std::unique_ptr<pool> started(pool_options opts) {
        auto p = std::make_unique<pool>(ioc_, std::move(opts), registry_);
        p->start();
        EXPECT_TRUE(run_until([&] { return p->healthy(); })) << "no connection to PostgreSQL";
        return p;
    }

    /// One transaction, waited for.
    outcome run(pool& p, std::vector<statement> statements) {
        std::optional<outcome> answer;
        p.transact(std::move(statements), [&](outcome o) { answer = std::move(o); });
        EXPECT_TRUE(run_until([&] { return answer.has_value(); })) << "no answer";
        return answer ? std::move(*answer) : outcome{};
    }

    /// A table name unique to this process and test, so runs sharing a database do not meet.
    std::string table(const std::string& stem) const {
        return "pool_test_" + stem + "_" + std::to_string(::getpid());
    }

    double counter_value(const std::string& outcome_label) {
        return registry_
            .counter("pm_agent_db_transactions_total", "Database transactions answered, by outcome",
                     {"outcome"})
            .with({outcome_label})
            .value();
    }

    std::string url_;
    boost::asio::io_context ioc_;
    metrics::registry registry_;
};

}  // namespace pm_agent::pg::testing
