// The lease book: what a worker decides from tokens it holds, when it asks Redis and for how
// many. Pure: times are made up, Redis' answers are gcra_take() on a local TAT.
#include "pm_agent/api/rate_lease.hpp"

#include <gtest/gtest.h>

namespace pm_agent::api {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using time_point = rate_lease_book::time_point;

const time_point k_t0{std::chrono::seconds(1000)};
constexpr std::int64_t k_redis_t0 = 5'000'000'000;

// Redis' side: one bucket, gcra_take() on its own clock.
struct bucket {
    gcra_policy policy;
    std::optional<std::int64_t> tat;
    gcra_grant take(std::int64_t wanted, time_point now) {
        const std::int64_t at =
            k_redis_t0 + std::chrono::duration_cast<microseconds>(now - k_t0).count();
        gcra_grant g = gcra_take(tat, at, wanted, policy);
        tat = g.tat_us;
        return g;
    }
};

// One ask for the `waiting` requests and its answer, as the shared limiter does it.
std::vector<rate_decision> ask(rate_lease_book& book, bucket& b, std::size_t waiting,
                               time_point now) {
    const std::int64_t asked = book.want("k", waiting);
    return book.grant("k", asked, b.take(asked, now), waiting, now);
}

TEST(api_rate_lease, a_client_sending_now_and_then_asks_for_one_token_each_time) {
    bucket b{make_gcra_policy(10, 100)};
    rate_lease_book book(b.policy, 25, milliseconds(100));
    for (int i = 0; i < 5; ++i) {
        const time_point now = k_t0 + milliseconds(500) * i;
        EXPECT_FALSE(book.take("k", now));
        EXPECT_EQ(book.want("k", 1), 1);
        const auto d = ask(book, b, 1, now);
        ASSERT_EQ(d.size(), 1u);
        EXPECT_TRUE(d[0].allowed);
        EXPECT_EQ(d[0].remaining, 99);  // refilled in between
    }
}

TEST(api_rate_lease, a_busy_client_asks_for_more_each_time_up_to_the_cap) {
    bucket b{make_gcra_policy(1e6, 1e6)};
    rate_lease_book book(b.policy, 64, milliseconds(100));
    std::vector<std::int64_t> asks;
    time_point now = k_t0;
    int round_trips = 0, allowed = 0;
    for (int i = 0; i < 1000; ++i) {
        now += microseconds(10);
        if (auto d = book.take("k", now)) {
            allowed += d->allowed ? 1 : 0;
            continue;
        }
        // Busy: by the time a round trip is out, another request waits behind this one.
        asks.push_back(book.want("k", 2));
        ++round_trips;
        for (const rate_decision& d : ask(book, b, 2, now)) {
            allowed += d.allowed ? 1 : 0;
        }
        ++i;
    }
    EXPECT_EQ(allowed, 1000);
    ASSERT_GE(asks.size(), 7u);
    EXPECT_EQ((std::vector<std::int64_t>(asks.begin(), asks.begin() + 7)),
              (std::vector<std::int64_t>{2, 4, 8, 16, 32, 64, 64}));
    EXPECT_LT(round_trips, 25);  // for 1000 requests
}

TEST(api_rate_lease, a_lease_answers_with_what_remains_beside_it) {
    bucket b{make_gcra_policy(1, 50)};
    rate_lease_book book(b.policy, 8, milliseconds(100));
    // Three waiting at once on a bucket of 50: 3 asked, 3 granted, 47 left.
    auto d = ask(book, b, 3, k_t0);
    EXPECT_EQ(d[0].remaining, 49);
    EXPECT_EQ(d[2].remaining, 47);
    // The next ask is for 6, one request waits: 5 stay as the lease.
    EXPECT_EQ(book.want("k", 1), 6);
    d = ask(book, b, 1, k_t0);
    EXPECT_EQ(d[0].remaining, 46);  // 41 in the bucket + 5 held here
    for (int i = 4; i >= 0; --i) {
        const auto t = book.take("k", k_t0 + microseconds(1));
        ASSERT_TRUE(t);
        EXPECT_TRUE(t->allowed);
        EXPECT_EQ(t->remaining, 41 + i);
    }
    EXPECT_FALSE(book.take("k", k_t0 + microseconds(2)));
}

TEST(api_rate_lease, tokens_left_when_the_lease_lapses_are_not_spent_and_the_ask_shrinks) {
    bucket b{make_gcra_policy(1e3, 1e4)};
    rate_lease_book book(b.policy, 16, milliseconds(100));
    ask(book, b, 8, k_t0);  // all 8 used: the next ask is 16
    ASSERT_EQ(book.want("k", 1), 16);
    ask(book, b, 1, k_t0);  // 15 held
    ASSERT_TRUE(book.take("k", k_t0 + milliseconds(99)));
    EXPECT_FALSE(book.take("k", k_t0 + milliseconds(100)));
    EXPECT_EQ(book.want("k", 1), 8);
}

TEST(api_rate_lease, an_empty_bucket_refuses_here_until_its_next_token) {
    bucket b{make_gcra_policy(10, 4)};  // 100 ms per token
    rate_lease_book book(b.policy, 1, milliseconds(100));
    auto d = ask(book, b, 6, k_t0);  // six wait for a bucket of four
    ASSERT_EQ(d.size(), 6u);
    EXPECT_TRUE(d[3].allowed);
    EXPECT_FALSE(d[4].allowed);
    EXPECT_EQ(d[4].retry_after, milliseconds(100));
    EXPECT_EQ(d[5].reset_after, milliseconds(400));
    const auto refused = book.take("k", k_t0 + milliseconds(30));
    ASSERT_TRUE(refused);
    EXPECT_FALSE(refused->allowed);
    EXPECT_EQ(refused->retry_after, milliseconds(70));
    EXPECT_EQ(refused->reset_after, milliseconds(370));
    EXPECT_FALSE(book.take("k", k_t0 + milliseconds(100)));  // a token is due: ask Redis
    EXPECT_TRUE(ask(book, b, 1, k_t0 + milliseconds(100))[0].allowed);
}

TEST(api_rate_lease, with_a_cap_of_one_nothing_is_held_but_refusals) {
    bucket b{make_gcra_policy(10, 100)};
    rate_lease_book book(b.policy, 1, milliseconds(100));
    for (int i = 0; i < 10; ++i) {
        EXPECT_EQ(book.want("k", 3), 3);
        ask(book, b, 3, k_t0);
        EXPECT_FALSE(book.take("k", k_t0));
    }
    EXPECT_EQ(book.size(), 0u);
}

TEST(api_rate_lease, keys_held_stay_bounded) {
    bucket b{make_gcra_policy(10, 1)};
    rate_lease_book book(b.policy, 4, milliseconds(100), 2000);
    for (int i = 0; i < 10000; ++i) {
        const std::string key = "k" + std::to_string(i);
        const time_point now = k_t0 + microseconds(i);
        book.grant(key, 2, gcra_take(std::nullopt, k_redis_t0, 2, b.policy), 1, now);
        ASSERT_LE(book.size(), 2000u);
    }
    // Past their refusals and leases, keys are swept to make room.
    const time_point later = k_t0 + std::chrono::seconds(1);
    book.grant("new", 2, gcra_take(std::nullopt, k_redis_t0, 2, b.policy), 1, later);
    EXPECT_TRUE(book.take("new", later));
}

// Requests of one client reaching `book` at `now`, one after another: taken from the lease, or
// (when it is spent) all that are left go to Redis in one ask, as the shared limiter queues
// them. The number allowed.
int send(rate_lease_book& book, bucket& b, int requests, time_point now) {
    int allowed = 0;
    for (int i = 0; i < requests; ++i) {
        if (auto d = book.take("k", now)) {
            allowed += d->allowed ? 1 : 0;
            continue;
        }
        for (const rate_decision& d : ask(book, b, static_cast<std::size_t>(requests - i), now)) {
            allowed += d.allowed ? 1 : 0;
        }
        break;
    }
    return allowed;
}

// Tokens leased before the client went quiet are spent after the bucket refilled: what the
// fleet's leases hold is admitted on top of a full burst, so fleet_lease_size() keeps it within
// a twentieth of the burst. (A quarter of the burst, the earlier size, let 2,246 through with two workers.)
TEST(api_rate_lease, tokens_leased_before_a_pause_keep_a_burst_within_1_05x) {
    for (const int workers : {2, 4}) {
        bucket b{make_gcra_policy(1000, 2000)};
        std::vector<rate_lease_book> books;
        for (int w = 0; w < workers; ++w) {
            books.emplace_back(b.policy, fleet_lease_size(b.policy, workers), milliseconds(1000));
        }
        // Busy for two seconds at the limit, spread over the workers: the asks grow.
        time_point now = k_t0;
        for (int i = 0; i < 2000; ++i) {
            now += milliseconds(1);
            send(books[static_cast<std::size_t>(i % workers)], b, 1, now);
        }
        // Quiet until those leases lapse, then two requests on each worker: each keeps the rest
        // of a fresh lease.
        now += milliseconds(1100);
        for (auto& book : books) {
            send(book, b, 2, now);
        }
        // The bucket is full again before those lapse; then a burst on every worker.
        now += milliseconds(600);
        int allowed = 0;
        for (auto& book : books) {
            allowed += send(book, b, 3000, now);
        }
        EXPECT_LE(allowed, 2100) << workers << " workers";
        EXPECT_GE(allowed, 2000) << workers << " workers";  // the bucket was full
    }
}

}  // namespace
}  // namespace pm_agent::api
