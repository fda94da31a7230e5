#pragma once
/// A counter child: one time series of a counter family.

namespace pm_agent::metrics {

/// A value that only goes up. Owned by its family (see family.hpp); callers keep a reference.
/// Not thread-safe: it lives on the worker's loop thread like everything in this module.
class counter {
  public:
    counter() = default;
    // Not copyable: `auto c = family.get();` would silently count into a copy.
    counter(const counter&) = delete;
    counter& operator=(const counter&) = delete;

    /// Adds delta. A negative or NaN delta is ignored: a counter never goes down, and the data
    /// path does not throw.
    void inc(double delta = 1) noexcept {
        if (delta >= 0) {
            value_ += delta;
        }
    }

    /// The current total.
    double value() const noexcept { return value_; }

  private:
    double value_ = 0;
};

}  // namespace pm_agent::metrics
