#include "pm_agent/metrics/registry.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>

#include "pm_agent/metrics/text_format.hpp"

namespace pm_agent::metrics {
namespace {

[[noreturn]] void reject(const std::string& name, const std::string& why) {
    throw std::invalid_argument("metric " + name + ": " + why);
}

/// The names a family's sample lines use: its own, or for a histogram the three series.
std::vector<std::string> series_of(metric_type type, const std::string& name) {
    if (type == metric_type::histogram) {
        return {name + "_bucket", name + "_sum", name + "_count"};
    }
    return {name};
}

void validate_name(metric_type type, const std::string& name) {
    if (!is_valid_metric_name(name) || name.find(':') != std::string::npos) {
        reject(name, "name must match [a-zA-Z_][a-zA-Z0-9_]*");
    }
    const bool ends_total = name.ends_with("_total");
    if (type == metric_type::counter && !ends_total) {
        reject(name, "a counter's name must end in _total");
    }
    if (type != metric_type::counter && ends_total) {
        reject(name, "only a counter's name may end in _total");
    }
    // promtool's lint: the name need not repeat what # TYPE already says.
    const std::string type_word = "_" + std::string(to_string(type));
    if (name.ends_with(type_word) || name.find(type_word + "_") != std::string::npos) {
        reject(name, "the name must not repeat its type");
    }
    if (type != metric_type::histogram &&
        (name.ends_with("_bucket") || name.ends_with("_sum") || name.ends_with("_count"))) {
        reject(name, "_bucket, _sum and _count are the series of histograms");
    }
}

void validate_labels(metric_type type, const std::string& name,
                     const std::vector<std::string>& label_names) {
    for (std::size_t i = 0; i < label_names.size(); ++i) {
        const std::string& label = label_names[i];
        if (!is_valid_label_name(label)) {
            reject(name, "label name \"" + label + "\" is invalid");
        }
        if (type == metric_type::histogram && label == "le") {
            reject(name, "\"le\" is the bucket label of a histogram");
        }
        for (std::size_t j = 0; j < i; ++j) {
            if (label_names[j] == label) {
                reject(name, "label name \"" + label + "\" is repeated");
            }
        }
    }
}

std::vector<double> validate_buckets(const std::string& name, std::vector<double> buckets) {
    if (!buckets.empty() && buckets.back() == std::numeric_limits<double>::infinity()) {
        buckets.pop_back();
    }
    for (std::size_t i = 0; i < buckets.size(); ++i) {
        if (!std::isfinite(buckets[i])) {
            reject(name, "bucket bounds must be finite");
        }
        if (i != 0 && !(buckets[i - 1] < buckets[i])) {
            reject(name, "bucket bounds must be strictly increasing");
        }
    }
    return buckets;
}

}  // namespace

registry::registry(std::size_t max_children_per_family) : max_children_(max_children_per_family) {
    // One child per labelled family, known at registration: bounded by the code, not by data.
    overflow_ = &add<counter_family>(
        metric_type::counter, std::string(k_overflow_metric_name),
        "Label combinations mapped to the \"other\" child because the family reached its limit.",
        {"family"}, {});
}

registry::~registry() = default;

counter_family& registry::counter(std::string name, std::string help,
                                  std::vector<std::string> label_names) {
    return add<counter_family>(metric_type::counter, std::move(name), std::move(help),
                               std::move(label_names), {});
}

gauge_family& registry::gauge(std::string name, std::string help,
                              std::vector<std::string> label_names) {
    return add<gauge_family>(metric_type::gauge, std::move(name), std::move(help),
                             std::move(label_names), {});
}

histogram_family& registry::histogram(std::string name, std::string help,
                                      std::vector<double> buckets,
                                      std::vector<std::string> label_names) {
    return add<histogram_family>(metric_type::histogram, std::move(name), std::move(help),
                                 std::move(label_names), std::move(buckets));
}

histogram_family& registry::histogram(std::string name, std::string help,
                                      std::span<const double> buckets,
                                      std::vector<std::string> label_names) {
    return histogram(std::move(name), std::move(help),
                     std::vector<double>(buckets.begin(), buckets.end()), std::move(label_names));
}

template <class Family>
Family& registry::add(metric_type type, std::string name, std::string help,
                      std::vector<std::string> label_names, std::vector<double> buckets) {
    validate_name(type, name);
    validate_labels(type, name, label_names);
    buckets = validate_buckets(name, std::move(buckets));

    if (const auto it = by_name_.find(name); it != by_name_.end()) {
        // The type decides the child type, so an equal type makes the downcast safe.
        if (it->second->type() != type) {
            reject(name, "already registered with another type");
        }
        auto& existing = static_cast<Family&>(*it->second);
        if (existing.label_names() != label_names || existing.bounds() != buckets) {
            reject(name, "already registered with other labels or buckets");
        }
        return existing;
    }
    const std::vector<std::string> series = series_of(type, name);
    for (const std::string& taken : series) {
        if (series_names_.contains(taken) || by_name_.contains(taken)) {
            reject(name, "its series " + taken + " collides with another family");
        }
    }
    if (series_names_.contains(name)) {
        reject(name, "collides with a series of another family");
    }

    const bool labelled = !label_names.empty();
    // The overflow family itself holds one child per family, so it needs no bound of its own.
    const bool is_overflow_family = overflow_ == nullptr;
    const std::size_t max_children =
        is_overflow_family ? std::numeric_limits<std::size_t>::max() : max_children_;
    metrics::counter* overflow =
        labelled && !is_overflow_family ? &overflow_->with({name}) : nullptr;

    auto owned =
        std::unique_ptr<Family>(new Family(type, name, std::move(help), std::move(label_names),
                                           max_children, overflow, std::move(buckets)));
    Family& created = *owned;
    if (!labelled) {
        created.get();
    }
    families_.push_back(std::move(owned));
    by_name_.emplace(name, &created);
    for (const std::string& taken : series) {
        series_names_.insert(taken);
    }
    return created;
}

std::string registry::render() const {
    std::string out;
    render(out);
    return out;
}

void registry::render(std::string& out) const {
    for (const auto& family : families_) {
        family->render(out);
    }
}

}  // namespace pm_agent::metrics
