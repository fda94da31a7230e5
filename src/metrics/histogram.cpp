#include "pm_agent/metrics/histogram.hpp"

#include <algorithm>
#include <cmath>

namespace pm_agent::metrics {

histogram::histogram(std::span<const double> bounds)
    : bounds_(bounds), counts_(bounds.size() + 1) {}

void histogram::observe(double value) noexcept {
    if (std::isnan(value)) {
        return;
    }
    // lower_bound finds the first bound >= value; past the last bound it lands on +Inf.
    const auto bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
    ++counts_[static_cast<std::size_t>(bucket)];
    sum_ += value;
    ++count_;
}

}  // namespace pm_agent::metrics
