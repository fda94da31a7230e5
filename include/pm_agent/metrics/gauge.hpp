#pragma once
/// A gauge child: one time series of a gauge family, either a stored value or a callback.

#include <functional>
#include <utility>

namespace pm_agent::metrics {

/// A value that goes up and down. Owned by its family (see family.hpp); callers keep a
/// reference. Not thread-safe: it lives on the worker's loop thread.
///
/// A value owned elsewhere (a queue's size, a pool's idle count, a number kept by another thread
/// such as the async logger's drop count) is exposed by binding a callback instead of copying it
/// into the gauge on every change. The callback runs on the thread that renders the registry, so
/// a value written by another thread must be read through an atomic inside the callback.
class gauge {
  public:
    gauge() = default;
    // Not copyable: a copy would be set and read by nobody.
    gauge(const gauge&) = delete;
    gauge& operator=(const gauge&) = delete;

    /// Stores value (hidden while a callback is bound).
    void set(double value) noexcept { value_ = value; }
    /// Adds delta to the stored value.
    void inc(double delta = 1) noexcept { value_ += delta; }
    /// Subtracts delta from the stored value.
    void dec(double delta = 1) noexcept { value_ -= delta; }

    /// The callback's result when one is bound, else the stored value.
    double value() const { return callback_ ? callback_() : value_; }

    /// Makes value() return callback() from now on; an empty function unbinds. The callback must
    /// not throw and must stay callable while the registry can render: an owner that dies before
    /// the registry unbinds in its destructor.
    void bind(std::function<double()> callback) { callback_ = std::move(callback); }

    /// True while a callback is bound.
    bool is_bound() const noexcept { return static_cast<bool>(callback_); }

  private:
    double value_ = 0;
    std::function<double()> callback_;
};

}  // namespace pm_agent::metrics
