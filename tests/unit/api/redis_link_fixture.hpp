#pragma once
// A Redis client on a real server (PM_AGENT_TEST_REDIS_URL), driven by a test-owned loop, for
// the api-layer pieces that talk to Redis (the shared limiter, the cluster link).

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>

#include "pm_agent/metrics/registry.hpp"
#include "unit/loop_until.hpp"
#include "pm_agent/redis/client.hpp"

namespace pm_agent::api::testing {

class redis_link_test : public ::testing::Test {
  protected:
    void SetUp() override {
        const char* url = std::getenv("PM_AGENT_TEST_REDIS_URL");
        if (url == nullptr || *url == '\0') {
            GTEST_SKIP() << "PM_AGENT_TEST_REDIS_URL is not set: no Redis to test against";
        }
        url_ = url;
    }

    /// Runs the loop until pred() holds or `limit` passes; false on timeout.
    template <class Pred>
    bool run_until(Pred pred, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
        return pm_agent::testing::run_loop_until(ioc_, pred, limit);
    }

    /// A started client on `url` (the test server by default), connected unless `url` is
    /// given (a server that may not be there).
    std::unique_ptr<redis::client> client(std::string url = {}) {
        redis::client_options o;
        const bool real = url.empty();
        o.url = real ? url_ : std::move(url);
        o.pool_size = 2;
        o.timeout = std::chrono::milliseconds(200);
        auto c = std::make_unique<redis::client>(ioc_, o, registry_);
        c->start();
        if (real) {
            EXPECT_TRUE(run_until([&] { return c->healthy(); })) << "no connection to Redis";
        }
        return c;
    }

    boost::asio::io_context ioc_{1};
    metrics::registry registry_;
    std::string url_;
};

}  // namespace pm_agent::api::testing
