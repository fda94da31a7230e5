#pragma once
/// A metric family: one name, one help text, fixed label names, and one child (time series) per
/// combination of label values, with a bound on how many combinations it accepts.

#include <cstddef>
#include <deque>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "pm_agent/metrics/counter.hpp"
#include "pm_agent/metrics/gauge.hpp"
#include "pm_agent/metrics/histogram.hpp"

namespace pm_agent::metrics {

/// The Prometheus metric types this module renders.
enum class metric_type { counter, gauge, histogram };

/// The type's name as written after `# TYPE`.
std::string_view to_string(metric_type type) noexcept;

/// The label value every label takes in the child that absorbs combinations past the limit.
inline constexpr std::string_view k_overflow_label_value = "other";

/// What a family is apart from its children's type: identity, label bookkeeping, the cardinality
/// bound and the HELP/TYPE header of its rendering. Families are created by the registry only
/// and never move, so references to them and to their children stay valid for its lifetime.
class family_base {
  public:
    virtual ~family_base() = default;
    family_base(const family_base&) = delete;
    family_base& operator=(const family_base&) = delete;

    /// The metric name (for a histogram, without the _bucket/_sum/_count suffixes).
    const std::string& name() const noexcept { return name_; }
    /// The HELP text, unescaped.
    const std::string& help() const noexcept { return help_; }
    /// counter, gauge or histogram.
    metric_type type() const noexcept { return type_; }
    /// The label names fixed at registration.
    const std::vector<std::string>& label_names() const noexcept { return label_names_; }
    /// Number of children (the "other" child included once it exists).
    std::size_t size() const noexcept { return labels_.size(); }
    /// How many distinct label combinations are accepted before new ones map to "other".
    std::size_t max_children() const noexcept { return max_children_; }

    /// Appends `# HELP`, `# TYPE` and every child's samples, children in creation order.
    void render(std::string& out) const;

  protected:
    /// overflow: counted each time a lookup is redirected to the "other" child; may be null for
    /// a family that cannot overflow.
    family_base(metric_type type, std::string name, std::string help,
                std::vector<std::string> label_names, std::size_t max_children, counter* overflow);

    /// Where the child for a lookup lives: an existing index, or a new one (created) for which
    /// the derived class must append exactly one child before returning.
    struct slot {
        std::size_t index;
        bool created;
    };

    /// Finds or reserves the child for values (sanitised to valid UTF-8 first). Throws
    /// std::invalid_argument when values.size() differs from the number of label names: that is
    /// a programmer error, found by the first test that takes the path.
    slot find_or_reserve(std::span<const std::string_view> values);

    /// The child's label pairs, escaped and ready to print: `a="x",b="y"`, or empty.
    const std::string& rendered_labels(std::size_t index) const noexcept { return labels_[index]; }

    /// Appends the sample lines of every child.
    virtual void render_samples(std::string& out) const = 0;

  private:
    metric_type type_;
    std::string name_;
    std::string help_;
    std::vector<std::string> label_names_;
    std::size_t max_children_;
    counter* overflow_;
    std::unordered_map<std::string, std::size_t> index_;  // key: values joined by '\xff'
    std::vector<std::string> labels_;                     // per child index
    std::string scratch_key_;                             // reused so lookups do not allocate
};

/// A family whose children are Child (counter, gauge or histogram).
template <class Child>
class family final : public family_base {
  public:
    /// The child for these label values (one per label name, in registration order), created
    /// on first use. The reference stays valid for the registry's lifetime: cache it on hot
    /// paths. Past max_children() distinct combinations, new ones all share the child whose
    /// values are all "other", and the registry's pm_agent_metrics_overflow_total counts it.
    Child& with(std::initializer_list<std::string_view> values) {
        return with(std::span<const std::string_view>(values.begin(), values.size()));
    }

    /// As above, for values built at run time.
    Child& with(std::span<const std::string_view> values) {
        const slot found = find_or_reserve(values);
        if (found.created) {
            if constexpr (std::is_same_v<Child, histogram>) {
                children_.emplace_back(std::span<const double>(bounds_));
            } else {
                children_.emplace_back();
            }
        }
        return children_[found.index];
    }

    /// The only child of a family without labels (throws std::invalid_argument on one with).
    Child& get() { return with({}); }

    /// The upper bounds of a histogram family's buckets (empty for other types).
    const std::vector<double>& bounds() const noexcept { return bounds_; }

  private:
    friend class registry;

    family(metric_type type, std::string name, std::string help,
           std::vector<std::string> label_names, std::size_t max_children, counter* overflow,
           std::vector<double> bounds = {})
        : family_base(type, std::move(name), std::move(help), std::move(label_names), max_children,
                      overflow),
          bounds_(std::move(bounds)) {}

    void render_samples(std::string& out) const override;

    std::vector<double> bounds_;
    std::deque<Child> children_;  // a deque never moves its elements: references stay valid
};

template <>
void family<counter>::render_samples(std::string& out) const;
template <>
void family<gauge>::render_samples(std::string& out) const;
template <>
void family<histogram>::render_samples(std::string& out) const;

/// A family of counters.
using counter_family = family<counter>;
/// A family of gauges.
using gauge_family = family<gauge>;
/// A family of histograms sharing one set of buckets.
using histogram_family = family<histogram>;

}  // namespace pm_agent::metrics
