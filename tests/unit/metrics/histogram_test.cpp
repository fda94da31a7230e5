#include "pm_agent/metrics/histogram.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

namespace pm_agent::metrics {
namespace {

TEST(metrics_histogram, observations_land_in_the_first_bucket_whose_bound_is_not_smaller) {
    const std::vector<double> bounds{1, 2, 5};
    histogram h(bounds);
    for (const double v : {-3.0, 0.0, 1.0, 1.5, 2.0, 4.9, 5.0, 5.1, 1e9}) {
        h.observe(v);
    }
    const std::vector<std::uint64_t> counts(h.bucket_counts().begin(), h.bucket_counts().end());
    EXPECT_EQ(counts, (std::vector<std::uint64_t>{3, 2, 2, 2}));
    EXPECT_EQ(h.count(), 9U);
    EXPECT_DOUBLE_EQ(h.sum(), -3 + 0 + 1 + 1.5 + 2 + 4.9 + 5 + 5.1 + 1e9);
}

TEST(metrics_histogram, nan_is_ignored) {
    const std::vector<double> bounds{1};
    histogram h(bounds);
    h.observe(0.5);
    h.observe(std::nan(""));
    EXPECT_EQ(h.count(), 1U);
    EXPECT_EQ(h.sum(), 0.5);
    EXPECT_EQ(h.bucket_counts()[0], 1U);
    EXPECT_EQ(h.bucket_counts()[1], 0U);
}

TEST(metrics_histogram, infinities_land_in_the_outer_buckets) {
    const std::vector<double> bounds{1};
    histogram h(bounds);
    h.observe(std::numeric_limits<double>::infinity());
    h.observe(-std::numeric_limits<double>::infinity());
    EXPECT_EQ(h.count(), 2U);
    EXPECT_EQ(h.bucket_counts()[0], 1U);
    EXPECT_EQ(h.bucket_counts()[1], 1U);
}

TEST(metrics_histogram, without_bounds_everything_is_in_inf) {
    histogram h(std::span<const double>{});
    h.observe(3);
    ASSERT_EQ(h.bucket_counts().size(), 1U);
    EXPECT_EQ(h.bucket_counts()[0], 1U);
}

TEST(metrics_histogram, default_latency_buckets_are_increasing_seconds) {
    for (std::size_t i = 1; i < k_default_latency_buckets.size(); ++i) {
        EXPECT_LT(k_default_latency_buckets[i - 1], k_default_latency_buckets[i]);
    }
    EXPECT_EQ(k_default_latency_buckets.front(), 0.0005);
    EXPECT_EQ(k_default_latency_buckets.back(), 10);
}

}  // namespace
}  // namespace pm_agent::metrics
