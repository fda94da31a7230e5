#include "pm_agent/api/rate_limit.hpp"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <stdexcept>
#include <string>

namespace pm_agent::api {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::seconds;
using time_point = std::chrono::steady_clock::time_point;

constexpr std::int64_t k_t0 = 5'000'000'000;  // an arbitrary clock reading, in microseconds
const time_point k_start{seconds(1000)};

std::string header_value(const std::vector<rate_limit_header>& headers, std::string_view name) {
    for (const auto& header : headers) {
        if (header.name == name) {
            return header.value;
        }
    }
    return "<absent>";
}

TEST(api_rate_limit_policy, converts_rate_and_burst_to_integer_microseconds) {
    const gcra_policy policy = make_gcra_policy(10, 5);
    EXPECT_EQ(policy.emission_interval_us, 100'000);
    EXPECT_EQ(policy.burst, 5);
    EXPECT_EQ(policy.tolerance_us(), 500'000);
    EXPECT_EQ(make_gcra_policy(3, 1).emission_interval_us, 333'333);
    EXPECT_EQ(make_gcra_policy(0.5, 1).emission_interval_us, 2'000'000);
    EXPECT_EQ(make_gcra_policy(1e9, 1).emission_interval_us, 1);  // clamped to 1 us
    EXPECT_EQ(make_gcra_policy(10, 2.7).burst, 2);                // truncated
}

TEST(api_rate_limit_policy, rejects_unusable_values) {
    EXPECT_THROW(make_gcra_policy(0, 1), std::invalid_argument);
    EXPECT_THROW(make_gcra_policy(-1, 1), std::invalid_argument);
    EXPECT_THROW(make_gcra_policy(std::nan(""), 1), std::invalid_argument);
    EXPECT_THROW(make_gcra_policy(1, 0.5), std::invalid_argument);
    EXPECT_THROW(make_gcra_policy(1, std::numeric_limits<double>::infinity()),
                 std::invalid_argument);
    EXPECT_THROW(make_gcra_policy(1e-9, 1), std::invalid_argument);  // interval past 2^40 us
    EXPECT_THROW(make_gcra_policy(1, 1e12), std::invalid_argument);  // tolerance past 2^50 us
    EXPECT_THROW(local_rate_limiter(1, 1, 0), std::invalid_argument);
}

TEST(api_rate_limit_gcra, a_burst_of_exactly_burst_is_allowed_then_denied) {
    const gcra_policy policy = make_gcra_policy(10, 5);
    std::optional<std::int64_t> tat;
    for (std::int64_t i = 0; i < 5; ++i) {
        const gcra_result r = gcra_check(tat, k_t0, policy);
        ASSERT_TRUE(r.decision.allowed) << i;
        EXPECT_EQ(r.decision.limit, 5);
        EXPECT_EQ(r.decision.remaining, 4 - i);
        EXPECT_EQ(r.decision.reset_after, microseconds((i + 1) * 100'000));
        EXPECT_EQ(r.decision.retry_after, microseconds(0));
        tat = r.tat_us;
    }
    const gcra_result denied = gcra_check(tat, k_t0, policy);
    EXPECT_FALSE(denied.decision.allowed);
    EXPECT_EQ(denied.decision.remaining, 0);
    EXPECT_EQ(denied.decision.retry_after, microseconds(100'000));
    EXPECT_EQ(denied.decision.reset_after, microseconds(500'000));
    EXPECT_EQ(denied.tat_us, *tat);  // a denied request costs nothing
}

TEST(api_rate_limit_gcra, one_request_refills_per_emission_interval) {
    const gcra_policy policy = make_gcra_policy(10, 2);
    std::int64_t tat = k_t0 + 200'000;  // bucket just emptied at k_t0
    const gcra_result early = gcra_check(tat, k_t0 + 40'000, policy);
    EXPECT_FALSE(early.decision.allowed);
    EXPECT_EQ(early.decision.retry_after, microseconds(60'000));
    EXPECT_EQ(early.decision.reset_after, microseconds(160'000));

    const gcra_result on_time = gcra_check(tat, k_t0 + 100'000, policy);
    ASSERT_TRUE(on_time.decision.allowed);
    EXPECT_EQ(on_time.decision.remaining, 0);
    tat = on_time.tat_us;
    EXPECT_FALSE(gcra_check(tat, k_t0 + 100'000, policy).decision.allowed);
    EXPECT_FALSE(gcra_check(tat, k_t0 + 199'999, policy).decision.allowed);
    EXPECT_TRUE(gcra_check(tat, k_t0 + 200'000, policy).decision.allowed);
}

TEST(api_rate_limit_gcra, remaining_counts_what_idle_time_refilled) {
    const gcra_policy policy = make_gcra_policy(10, 5);
    const std::int64_t empty_tat = k_t0 + 500'000;
    // Three intervals later three requests are available; this one leaves two.
    EXPECT_EQ(gcra_check(empty_tat, k_t0 + 300'000, policy).decision.remaining, 2);
    // Halfway through an interval does not round up.
    EXPECT_EQ(gcra_check(empty_tat, k_t0 + 350'000, policy).decision.remaining, 2);
    // After reset_after the bucket is full again: a TAT in the past is an absent TAT.
    const gcra_result full = gcra_check(empty_tat, k_t0 + 500'000, policy);
    EXPECT_EQ(full.decision.remaining, 4);
    EXPECT_EQ(full.tat_us, gcra_check(std::nullopt, k_t0 + 500'000, policy).tat_us);
}

TEST(api_rate_limit_gcra, huge_time_jumps_give_a_full_bucket_and_no_overflow) {
    const gcra_policy policy = make_gcra_policy(1000, 2000);
    const gcra_result first = gcra_check(std::nullopt, 0, policy);
    constexpr std::int64_t k_far = std::int64_t{1} << 52;  // ~142 years later, still exact in Lua
    const gcra_result later = gcra_check(first.tat_us, k_far, policy);
    EXPECT_TRUE(later.decision.allowed);
    EXPECT_EQ(later.decision.remaining, 1999);
    EXPECT_EQ(later.tat_us, k_far + 1000);
    EXPECT_EQ(later.decision.reset_after, microseconds(1000));
}

TEST(api_rate_limit_gcra, fractional_rate_half_per_second) {
    const gcra_policy policy = make_gcra_policy(0.5, 1);
    const gcra_result first = gcra_check(std::nullopt, k_t0, policy);
    ASSERT_TRUE(first.decision.allowed);
    EXPECT_EQ(first.decision.remaining, 0);
    EXPECT_EQ(first.decision.reset_after, seconds(2));
    const gcra_result second = gcra_check(first.tat_us, k_t0 + 500'000, policy);
    EXPECT_FALSE(second.decision.allowed);
    EXPECT_EQ(second.decision.retry_after, microseconds(1'500'000));
    EXPECT_EQ(header_value(rate_limit_headers(second.decision), "Retry-After"), "2");
    EXPECT_FALSE(gcra_check(first.tat_us, k_t0 + 1'999'999, policy).decision.allowed);
    EXPECT_TRUE(gcra_check(first.tat_us, k_t0 + 2'000'000, policy).decision.allowed);
}

// Taking one token is gcra_check(), decision for decision, over a random walk of arrivals.
TEST(api_rate_limit_take, one_at_a_time_is_gcra_check) {
    const gcra_policy policy = make_gcra_policy(7, 5);
    std::mt19937_64 rng(42);
    std::optional<std::int64_t> a, b;
    std::int64_t now = k_t0;
    for (int i = 0; i < 2000; ++i) {
        now += static_cast<std::int64_t>(rng() % 300'000);
        const gcra_result one = gcra_check(a, now, policy);
        const gcra_grant take = gcra_take(b, now, 1, policy);
        ASSERT_EQ(take.granted, one.decision.allowed ? 1 : 0) << i;
        EXPECT_EQ(take.remaining, one.decision.remaining) << i;
        EXPECT_EQ(take.retry_after, one.decision.retry_after) << i;
        EXPECT_EQ(take.reset_after, one.decision.reset_after) << i;
        a = one.tat_us;
        b = take.tat_us;
    }
}

// Several at once: what a bucket holds is granted, the rest waits for the next token, and the
// bucket ends where as many single takes would have left it.
TEST(api_rate_limit_take, several_at_once_grant_what_the_bucket_holds) {
    const gcra_policy policy = make_gcra_policy(10, 8);  // 100 ms per token
    const gcra_grant first = gcra_take(std::nullopt, k_t0, 5, policy);
    EXPECT_EQ(first.granted, 5);
    EXPECT_EQ(first.remaining, 3);
    EXPECT_EQ(first.retry_after, microseconds(0));
    EXPECT_EQ(first.reset_after, milliseconds(500));
    const gcra_grant second = gcra_take(first.tat_us, k_t0, 5, policy);
    EXPECT_EQ(second.granted, 3);
    EXPECT_EQ(second.remaining, 0);
    EXPECT_EQ(second.retry_after, milliseconds(100));
    EXPECT_EQ(second.reset_after, milliseconds(800));
    const gcra_grant empty = gcra_take(second.tat_us, k_t0 + 50'000, 2, policy);
    EXPECT_EQ(empty.granted, 0);
    EXPECT_EQ(empty.retry_after, milliseconds(50));
    EXPECT_EQ(empty.tat_us, second.tat_us);
    std::optional<std::int64_t> tat;
    for (int i = 0; i < 8; ++i) {
        tat = gcra_check(tat, k_t0, policy).tat_us;
    }
    EXPECT_EQ(second.tat_us, *tat);
}

// A TAT stored under a larger burst (the limit was lowered since) runs further ahead than the
// new tolerance: nothing is granted until it is back within it, as gcra_check() decides.
TEST(api_rate_limit_take, a_tat_from_a_larger_burst_grants_nothing) {
    const gcra_policy big = make_gcra_policy(10, 100);
    const gcra_policy small = make_gcra_policy(10, 5);
    const gcra_grant filled = gcra_take(std::nullopt, k_t0, 100, big);
    const gcra_grant none = gcra_take(filled.tat_us, k_t0, 3, small);
    EXPECT_EQ(none.granted, 0);
    EXPECT_EQ(none.remaining, 0);
    EXPECT_EQ(none.tat_us, filled.tat_us);
    EXPECT_EQ(none.retry_after, gcra_check(filled.tat_us, k_t0, small).decision.retry_after);
}

TEST(api_rate_limit_local, keys_are_limited_independently) {
    local_rate_limiter limiter(1, 2);
    EXPECT_TRUE(limiter.check("a", k_start).allowed);
    EXPECT_TRUE(limiter.check("a", k_start).allowed);
    EXPECT_FALSE(limiter.check("a", k_start).allowed);
    const rate_decision b = limiter.check("b", k_start);
    EXPECT_TRUE(b.allowed);
    EXPECT_EQ(b.remaining, 1);
    EXPECT_FALSE(limiter.check("a", k_start + milliseconds(999)).allowed);
    EXPECT_TRUE(limiter.check("a", k_start + seconds(1)).allowed);
    EXPECT_EQ(limiter.size(), 2U);
}

TEST(api_rate_limit_local, huge_steady_clock_jump) {
    local_rate_limiter limiter(10, 3);
    for (int i = 0; i < 3; ++i) {
        limiter.check("k", k_start);
    }
    EXPECT_FALSE(limiter.check("k", k_start).allowed);
    const rate_decision later = limiter.check("k", k_start + std::chrono::hours(24 * 365 * 50));
    EXPECT_TRUE(later.allowed);
    EXPECT_EQ(later.remaining, 2);
}

// Replays one pseudo-random workload through a limiter that evicts and through the bare math
// with a map that forgets nothing: every decision must match, and the limiter stays small.
TEST(api_rate_limit_local, eviction_keeps_memory_bounded_and_decisions_unchanged) {
    const double rate = 20;
    const double burst = 3;
    const std::size_t max_keys = 64;
    local_rate_limiter limiter(rate, burst, max_keys);
    const gcra_policy policy = make_gcra_policy(rate, burst);
    std::map<std::string, std::int64_t> reference;

    std::mt19937 random(12345);
    std::uniform_int_distribution<int> pick_key(0, 999);
    std::uniform_int_distribution<int> step_us(0, 4000);
    std::int64_t now_us =
        std::chrono::duration_cast<microseconds>(k_start.time_since_epoch()).count();
    std::size_t denied = 0;
    for (int i = 0; i < 200'000; ++i) {
        now_us += step_us(random);
        // Mostly a small hot set (so denials happen), sometimes one of many cold keys.
        const int n = pick_key(random);
        const std::string key =
            n < 900 ? "hot" + std::to_string(n % 8) : "cold" + std::to_string(n);
        const auto it = reference.find(key);
        const gcra_result expected = gcra_check(
            it == reference.end() ? std::nullopt : std::optional(it->second), now_us, policy);
        reference[key] = expected.tat_us;

        const rate_decision got = limiter.check(key, time_point(microseconds(now_us)));
        ASSERT_EQ(got.allowed, expected.decision.allowed) << i;
        ASSERT_EQ(got.remaining, expected.decision.remaining) << i;
        ASSERT_EQ(got.reset_after, expected.decision.reset_after) << i;
        ASSERT_EQ(got.retry_after, expected.decision.retry_after) << i;
        ASSERT_LE(limiter.size(), max_keys);
        denied += got.allowed ? 0 : 1;
    }
    EXPECT_GT(denied, 1000U);  // the workload does exercise denials
    EXPECT_EQ(limiter.fail_open_count(), 0U);
    EXPECT_GT(reference.size(), 100U);  // more keys than the limiter could ever hold
}

TEST(api_rate_limit_local, expired_keys_are_swept_without_reaching_the_cap) {
    local_rate_limiter limiter(10, 1);
    for (int i = 0; i < 1000; ++i) {
        limiter.check("key" + std::to_string(i), k_start);
    }
    EXPECT_EQ(limiter.size(), 1000U);
    const time_point later = k_start + seconds(1);  // every TAT has passed
    for (int i = 0; i < 2000 && limiter.size() > 1; ++i) {
        limiter.check("steady", later + microseconds(i));
    }
    EXPECT_EQ(limiter.size(), 1U);
}

TEST(api_rate_limit_local, a_full_map_of_live_keys_fails_open_and_counts) {
    metrics::counter fail_open;
    local_rate_limiter limiter(1, 1, 2, &fail_open);
    EXPECT_TRUE(limiter.check("a", k_start).allowed);
    EXPECT_TRUE(limiter.check("b", k_start).allowed);
    EXPECT_TRUE(limiter.check("c", k_start).allowed);
    EXPECT_TRUE(limiter.check("c", k_start).allowed);  // not recorded, so not limited
    EXPECT_EQ(limiter.size(), 2U);
    EXPECT_EQ(limiter.fail_open_count(), 2U);
    EXPECT_EQ(fail_open.value(), 2);
    EXPECT_FALSE(limiter.check("a", k_start).allowed);  // recorded keys are still limited

    // Once their TATs pass, a full sweep makes room and the new key is limited again.
    const time_point later = k_start + seconds(2);
    EXPECT_TRUE(limiter.check("c", later).allowed);
    EXPECT_FALSE(limiter.check("c", later).allowed);
    EXPECT_EQ(limiter.fail_open_count(), 2U);
}

TEST(api_rate_limit_headers, allowed_decision_has_three_headers) {
    rate_decision decision;
    decision.allowed = true;
    decision.limit = 100;
    decision.remaining = 42;
    decision.reset_after = microseconds(1'500'000);
    const auto headers = rate_limit_headers(decision);
    ASSERT_EQ(headers.size(), 3U);
    EXPECT_EQ(header_value(headers, "RateLimit-Limit"), "100");
    EXPECT_EQ(header_value(headers, "RateLimit-Remaining"), "42");
    EXPECT_EQ(header_value(headers, "RateLimit-Reset"), "2");
    EXPECT_EQ(header_value(headers, "Retry-After"), "<absent>");
}

TEST(api_rate_limit_headers, denied_decision_adds_retry_after_rounded_up_and_at_least_one) {
    rate_decision decision;
    decision.allowed = false;
    decision.limit = 5;
    decision.reset_after = seconds(3);
    decision.retry_after = microseconds(1);
    auto headers = rate_limit_headers(decision);
    ASSERT_EQ(headers.size(), 4U);
    EXPECT_EQ(header_value(headers, "RateLimit-Remaining"), "0");
    EXPECT_EQ(header_value(headers, "RateLimit-Reset"), "3");
    EXPECT_EQ(header_value(headers, "Retry-After"), "1");

    decision.retry_after = microseconds(0);
    EXPECT_EQ(header_value(rate_limit_headers(decision), "Retry-After"), "1");
    decision.retry_after = microseconds(2'000'001);
    EXPECT_EQ(header_value(rate_limit_headers(decision), "Retry-After"), "3");
    decision.retry_after = seconds(2);
    EXPECT_EQ(header_value(rate_limit_headers(decision), "Retry-After"), "2");
}

TEST(api_rate_limit_headers, from_a_real_denial) {
    local_rate_limiter limiter(0.5, 2);
    limiter.check("k", k_start);
    limiter.check("k", k_start);
    const auto headers = rate_limit_headers(limiter.check("k", k_start + milliseconds(100)));
    EXPECT_EQ(header_value(headers, "RateLimit-Limit"), "2");
    EXPECT_EQ(header_value(headers, "RateLimit-Remaining"), "0");
    EXPECT_EQ(header_value(headers, "RateLimit-Reset"), "4");  // 3.9 s
    EXPECT_EQ(header_value(headers, "Retry-After"), "2");      // 1.9 s
}

}  // namespace
}  // namespace pm_agent::api
