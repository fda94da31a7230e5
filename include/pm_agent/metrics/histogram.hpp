#pragma once
/// A histogram child: counts of observations per fixed bucket, their sum and their number.

#include <array>
#include <cstdint>
#include <span>
#include <vector>

namespace pm_agent::metrics {

/// Default upper bounds for latencies in seconds: 0.5 ms .. 10 s, roughly 1-2.5-5 per decade.
inline constexpr std::array<double, 14> k_default_latency_buckets{
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

/// Distribution of observed values over fixed buckets. Owned by its family, which validates the
/// bounds (finite, strictly increasing) and keeps them alive. Not thread-safe: it lives on the
/// worker's loop thread.
class histogram {
  public:
    /// bounds: the finite upper bounds, strictly increasing; the +Inf bucket is implicit. The
    /// span must outlive the histogram (the family owns it).
    explicit histogram(std::span<const double> bounds);
    histogram(const histogram&) = delete;
    histogram& operator=(const histogram&) = delete;

    /// Counts value in the first bucket whose bound is >= value (Prometheus' `le`). NaN is
    /// ignored: it would poison the sum for the life of the process.
    void observe(double value) noexcept;

    /// Number of observations.
    std::uint64_t count() const noexcept { return count_; }
    /// Sum of observations.
    double sum() const noexcept { return sum_; }
    /// The finite upper bounds.
    std::span<const double> bounds() const noexcept { return bounds_; }
    /// Observations per bucket, not cumulative; bounds().size() + 1 entries, the last being the
    /// +Inf bucket. The renderer accumulates them.
    std::span<const std::uint64_t> bucket_counts() const noexcept { return counts_; }

  private:
    std::span<const double> bounds_;
    std::vector<std::uint64_t> counts_;
    double sum_ = 0;
    std::uint64_t count_ = 0;
};

}  // namespace pm_agent::metrics
