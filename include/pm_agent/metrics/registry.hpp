#pragma once
/// The process' metrics: it owns every family and renders them for `/metrics`.
///
/// Threading: one worker process is one loop thread, and the registry, its families and their
/// children are used from that thread only, without atomics or locks. The one value written by
/// another thread (the async logger's drop count) reaches it through a gauge callback that reads
/// an atomic at render time (gauge.hpp).

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "pm_agent/metrics/family.hpp"

namespace pm_agent::metrics {

/// Name of the registry's own counter of lookups redirected to an "other" child, labelled by
/// the family that overflowed.
inline constexpr std::string_view k_overflow_metric_name = "pm_agent_metrics_overflow_total";

/// Owns metric families and renders them in the Prometheus text format 0.0.4.
///
/// Registration validates names as Prometheus and `promtool check metrics` expect them, and
/// throws std::invalid_argument on a mistake: that is a programmer error met at start-up.
/// - names match [a-zA-Z_][a-zA-Z0-9_]* (colons are reserved for recording rules);
/// - counters end in "_total", other types do not; a name does not repeat its own type
///   ("queue_gauge"); only histograms generate "_bucket",
///   "_sum" and "_count" series, so no other family's name may end like that or collide with
///   any series name another family renders;
/// - label names are valid, distinct, not "__"-prefixed, and a histogram has no "le" label;
/// - histogram bounds are finite and strictly increasing (a trailing +Inf is accepted and
///   dropped, the +Inf bucket is always rendered).
/// Registering an existing name again with the same type, label names (and bounds) returns the
/// existing family, so two components may share one; anything else under that name throws.
class registry {
  public:
    /// Children a labelled family accepts before mapping new label combinations to "other".
    static constexpr std::size_t k_default_max_children = 500;

    /// max_children_per_family: the cardinality bound of every labelled family.
    explicit registry(std::size_t max_children_per_family = k_default_max_children);
    registry(const registry&) = delete;
    registry& operator=(const registry&) = delete;
    ~registry();

    /// Registers (or finds) a counter family. A family without labels has its one child from
    /// the start, so it renders 0 before the first increment.
    counter_family& counter(std::string name, std::string help,
                            std::vector<std::string> label_names = {});

    /// Registers (or finds) a gauge family.
    gauge_family& gauge(std::string name, std::string help,
                        std::vector<std::string> label_names = {});

    /// Registers (or finds) a histogram family whose children share these bucket bounds.
    histogram_family& histogram(std::string name, std::string help, std::vector<double> buckets,
                                std::vector<std::string> label_names = {});

    /// As above, for bounds held in an array such as k_default_latency_buckets.
    histogram_family& histogram(std::string name, std::string help, std::span<const double> buckets,
                                std::vector<std::string> label_names = {});

    /// The exposition text of every family, in registration order.
    std::string render() const;

    /// Appends the exposition text to out, so a caller can reuse one buffer between scrapes.
    void render(std::string& out) const;

    /// The registry's pm_agent_metrics_overflow_total family (registered first).
    const counter_family& overflow() const noexcept { return *overflow_; }

  private:
    template <class Family>
    Family& add(metric_type type, std::string name, std::string help,
                std::vector<std::string> label_names, std::vector<double> buckets);

    std::size_t max_children_;
    std::vector<std::unique_ptr<family_base>> families_;
    std::unordered_map<std::string, family_base*> by_name_;
    std::unordered_set<std::string> series_names_;  // every name any family renders a line for
    counter_family* overflow_ = nullptr;
};

}  // namespace pm_agent::metrics
