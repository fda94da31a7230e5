// The ledger is what turns "numbers looked fine" into "every task was completed exactly once".

#include "ledger.hpp"

#include <gtest/gtest.h>

namespace pm_agent::bench {
namespace {

TEST(ledger, a_task_confirmed_delivered_and_acknowledged_once_is_clean) {
    ledger book;
    book.confirmed("t_1");
    EXPECT_EQ(book.outstanding, 1);
    EXPECT_EQ(book.delivered("t_1"), 1u);
    book.acknowledged("t_1");
    EXPECT_EQ(book.outstanding, 0);
    const auto v = book.verify(5);
    EXPECT_EQ(v.confirmed, 1u);
    EXPECT_EQ(v.lost, 0u);
    EXPECT_EQ(v.duplicated, 0u);
    EXPECT_EQ(v.unconfirmed, 0u);
}

TEST(ledger, a_completion_that_beats_the_202_answer_is_not_outstanding) {
    ledger book;
    book.delivered("t_1");
    book.acknowledged("t_1");
    book.confirmed("t_1");
    EXPECT_EQ(book.outstanding, 0);
    EXPECT_EQ(book.verify(5).lost, 0u);
}

TEST(ledger, a_confirmed_task_never_acknowledged_is_lost_by_id) {
    ledger book;
    book.confirmed("t_1");
    book.confirmed("t_2");
    book.delivered("t_2");
    book.acknowledged("t_2");
    const auto v = book.verify(5);
    EXPECT_EQ(v.lost, 1u);
    ASSERT_EQ(v.lost_examples.size(), 1u);
    EXPECT_EQ(v.lost_examples[0], "t_1");
    EXPECT_EQ(book.outstanding, 1);
}

TEST(ledger, a_second_delivery_or_acknowledgement_is_a_duplicate) {
    ledger book;
    book.confirmed("t_1");
    book.delivered("t_1");
    EXPECT_EQ(book.delivered("t_1"), 2u);
    book.acknowledged("t_1");
    book.confirmed("t_2");
    book.delivered("t_2");
    book.acknowledged("t_2");
    book.acknowledged("t_2");
    const auto v = book.verify(5);
    EXPECT_EQ(v.duplicated, 2u);
    EXPECT_EQ(v.lost, 0u);
}

TEST(ledger, a_delivery_no_submitter_was_told_about_is_unconfirmed) {
    ledger book;
    book.delivered("t_9");
    book.acknowledged("t_9");
    const auto v = book.verify(5);
    EXPECT_EQ(v.unconfirmed, 1u);
    EXPECT_EQ(v.unconfirmed_examples.at(0), "t_9");
}

TEST(ledger, examples_are_capped) {
    ledger book;
    for (int i = 0; i < 20; ++i) {
        book.confirmed("t_" + std::to_string(i));
    }
    const auto v = book.verify(3);
    EXPECT_EQ(v.lost, 20u);
    EXPECT_EQ(v.lost_examples.size(), 3u);
}

TEST(ledger, errors_are_counted_by_kind) {
    ledger book;
    book.error("submit_http_429");
    book.error("submit_http_429");
    book.error("ws_read: eof");
    EXPECT_EQ(book.error_count(), 3u);
    EXPECT_EQ(book.errors().at("submit_http_429"), 2u);
}

TEST(summarize, percentiles_are_nearest_rank_in_milliseconds) {
    std::vector<std::int64_t> samples;
    for (int i = 100; i >= 1; --i) {
        samples.push_back(i * 1'000'000LL);  // 1..100 ms, unsorted
    }
    const auto s = summarize(samples);
    EXPECT_EQ(s.count, 100u);
    EXPECT_DOUBLE_EQ(s.p50_ms, 50);
    EXPECT_DOUBLE_EQ(s.p95_ms, 95);
    EXPECT_DOUBLE_EQ(s.p99_ms, 99);
    EXPECT_DOUBLE_EQ(s.max_ms, 100);
    EXPECT_DOUBLE_EQ(s.mean_ms, 50.5);
}

TEST(summarize, no_samples_is_all_zero) {
    std::vector<std::int64_t> samples;
    const auto s = summarize(samples);
    EXPECT_EQ(s.count, 0u);
    EXPECT_EQ(s.p99_ms, 0);
}

}  // namespace
}  // namespace pm_agent::bench
