// The shared limiter: one bucket per client across limiters (workers) through Redis, and the
// Redis-down policies. Needs PM_AGENT_TEST_REDIS_URL (scripts/test.sh starts one).
#include "pm_agent/api/shared_rate_limit.hpp"

#include <atomic>
#include <random>

#include "redis_link_fixture.hpp"

namespace pm_agent::api::testing {
namespace {

using config::redis_failure_policy;

std::string unique_key() {
    static std::mt19937_64 rng{std::random_device{}()};
    return "client-" + std::to_string(rng());
}

// Decides `n` requests for `key` round-robin over `limiters`; counts what was allowed.
struct tally {
    int allowed = 0, denied = 0, unavailable = 0, fallbacks = 0, answered = 0;
};

}  // namespace

class shared_rate_limit_test : public redis_link_test {
  protected:
    tally run(std::vector<shared_rate_limiter*> limiters, const std::string& key, int n) {
        tally t;
        for (int i = 0; i < n; ++i) {
            limiters[static_cast<std::size_t>(i) % limiters.size()]->check(
                key, [&t](shared_decision d) {
                    ++t.answered;
                    t.allowed += d.decision.allowed ? 1 : 0;
                    t.denied += !d.decision.allowed && !d.unavailable ? 1 : 0;
                    t.unavailable += d.unavailable ? 1 : 0;
                    t.fallbacks += d.fallback ? 1 : 0;
                });
        }
        EXPECT_TRUE(run_until([&] { return t.answered == n; }));
        return t;
    }
};

TEST_F(shared_rate_limit_test, FourWorkersShareOneBucket) {
    auto redis = client();
    // A slow rate: the burst is all that may pass during the test.
    std::vector<std::unique_ptr<shared_rate_limiter>> workers;
    std::vector<shared_rate_limiter*> views;
    for (int i = 0; i < 4; ++i) {
        workers.push_back(std::make_unique<shared_rate_limiter>(
            *redis, "submit", 0.1, 10, 4, redis_failure_policy::local, registry_));
        views.push_back(workers.back().get());
    }
    const std::string key = unique_key();
    const tally t = run(views, key, 40);
    EXPECT_EQ(t.allowed, 10);  // not 4 x 10: one bucket
    EXPECT_EQ(t.denied, 30);
    EXPECT_EQ(t.fallbacks, 0);
    // Another key has its own bucket.
    EXPECT_EQ(run(views, unique_key(), 3).allowed, 3);
}

TEST_F(shared_rate_limit_test, AnswersMatchTheLocalMath) {
    auto redis = client();
    shared_rate_limiter limiter(*redis, "submit", 1, 3, 1, redis_failure_policy::local,
                                registry_);
    std::vector<shared_decision> seen;
    const std::string key = unique_key();
    for (int i = 0; i < 4; ++i) {
        limiter.check(key, [&](shared_decision d) { seen.push_back(d); });
    }
    ASSERT_TRUE(run_until([&] { return seen.size() == 4; }));
    EXPECT_EQ(seen[0].decision.remaining, 2);
    EXPECT_EQ(seen[2].decision.remaining, 0);
    EXPECT_TRUE(seen[2].decision.allowed);
    EXPECT_FALSE(seen[3].decision.allowed);
    EXPECT_EQ(seen[3].decision.limit, 3);
    // About one second until the next request (1/s), and three until the bucket is full.
    EXPECT_GT(seen[3].decision.retry_after, std::chrono::milliseconds(900));
    EXPECT_LE(seen[3].decision.retry_after, std::chrono::seconds(1));
    EXPECT_GT(seen[3].decision.reset_after, std::chrono::milliseconds(2900));
}

TEST_F(shared_rate_limit_test, ScriptReloadedAfterScriptFlush) {
    auto redis = client();
    bool flushed = false;
    redis->command({"SCRIPT", "FLUSH"}, [&](std::optional<redis::reply> r) {
        flushed = r.has_value() && !r->is_error();
    });
    ASSERT_TRUE(run_until([&] { return flushed; }));
    shared_rate_limiter limiter(*redis, "submit", 1, 2, 1, redis_failure_policy::local,
                                registry_);
    const tally t = run({&limiter}, unique_key(), 3);
    EXPECT_EQ(t.allowed, 2);
    EXPECT_EQ(t.fallbacks, 0);  // EVALSHA's NOSCRIPT was answered by EVAL, not the fallback
}

TEST_F(shared_rate_limit_test, RedisDownFollowsThePolicy) {
    // A port nothing listens on.
    auto redis = client("redis://127.0.0.1:1");
    shared_rate_limiter local(*redis, "submit", 0.1, 10, 2, redis_failure_policy::local,
                              registry_);
    shared_rate_limiter open(*redis, "submit", 0.1, 10, 2, redis_failure_policy::open, registry_);
    shared_rate_limiter closed(*redis, "submit", 0.1, 10, 2, redis_failure_policy::closed,
                               registry_);
    const auto started = std::chrono::steady_clock::now();
    const tally l = run({&local}, "k", 20);
    EXPECT_EQ(l.allowed, 5);  // limit / 2 workers
    EXPECT_EQ(l.fallbacks, 20);
    const tally o = run({&open}, "k", 20);
    EXPECT_EQ(o.allowed, 20);
    const tally c = run({&closed}, "k", 5);
    EXPECT_EQ(c.unavailable, 5);
    EXPECT_EQ(c.allowed, 0);
    // No connection: decided without waiting for a timeout.
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(1));
}

// A busy client is decided from leases: 2,000 requests one after the other cost a round trip
// per lease, not one each.
TEST_F(shared_rate_limit_test, ABusyClientCostsARoundTripPerLeaseNotPerRequest) {
    auto redis = client();
    metrics::counter& commands =
        registry_.counter("pm_agent_redis_commands_total", "", {"outcome"}).with({"ok"});
    shared_rate_limiter limiter(*redis, "submit", 1e6, 1e6, 1, redis_failure_policy::local,
                                registry_);
    const std::string key = unique_key();
    const double before = commands.value();
    int allowed = 0;
    for (int i = 0; i < 2000; ++i) {
        const tally t = run({&limiter}, key, 1);
        allowed += t.allowed;
        EXPECT_EQ(t.fallbacks, 0);
    }
    EXPECT_EQ(allowed, 2000);
    EXPECT_LT(commands.value() - before, 40);
}

// Leases come out of the one bucket: two workers together never admit more than it holds,
// and tokens held by the other worker cost at most a quarter of the burst.
TEST_F(shared_rate_limit_test, LeasesOfTwoWorkersStayWithinTheBucket) {
    auto redis = client();
    shared_rate_limiter a(*redis, "submit", 0.1, 400, 2, redis_failure_policy::local, registry_);
    shared_rate_limiter b(*redis, "submit", 0.1, 400, 2, redis_failure_policy::local, registry_);
    const std::string key = unique_key();
    int allowed = 0;
    for (int round = 0; round < 20; ++round) {
        allowed += run({&a, &b}, key, 50).allowed;
    }
    EXPECT_LE(allowed, 400);  // 1,000 requests; a refill of 0.1/s adds nothing meanwhile
    EXPECT_GE(allowed, 300);
}

TEST(shared_rate_limit_reply, MalformedAnswersAreRejected) {
    redis::reply r;
    r.kind = redis::reply::type::array;
    EXPECT_FALSE(read_gcra_reply(r));
    for (std::int64_t v : {3, 4, 0, 250000}) {
        redis::reply e;
        e.kind = redis::reply::type::integer;
        e.integer = v;
        r.elements.push_back(e);
    }
    auto g = read_gcra_reply(r);
    ASSERT_TRUE(g);
    EXPECT_EQ(g->granted, 3);
    EXPECT_EQ(g->remaining, 4);
    EXPECT_EQ(g->reset_after, std::chrono::microseconds(250000));
    r.elements[1].kind = redis::reply::type::string;
    EXPECT_FALSE(read_gcra_reply(r));
}

}  // namespace pm_agent::api::testing
