#include "pm_agent/metrics/family.hpp"

#include <stdexcept>

#include "pm_agent/metrics/text_format.hpp"

namespace pm_agent::metrics {
namespace {

// Joins label values into a lookup key. 0xFF never occurs in UTF-8 and values are sanitised
// before they get here, so the separator keeps distinct combinations distinct.
constexpr char k_key_separator = '\xFF';

/// Appends `name{labels} ` (no braces when there are no labels), the part before the value.
void append_series(std::string& out, std::string_view name, std::string_view labels) {
    out += name;
    if (!labels.empty()) {
        out += '{';
        out += labels;
        out += '}';
    }
    out += ' ';
}

}  // namespace

std::string_view to_string(metric_type type) noexcept {
    switch (type) {
        case metric_type::counter:
            return "counter";
        case metric_type::gauge:
            return "gauge";
        case metric_type::histogram:
            return "histogram";
    }
    return "untyped";
}

family_base::family_base(metric_type type, std::string name, std::string help,
                         std::vector<std::string> label_names, std::size_t max_children,
                         counter* overflow)
    : type_(type),
      name_(std::move(name)),
      help_(std::move(help)),
      label_names_(std::move(label_names)),
      max_children_(max_children),
      overflow_(overflow) {}

void family_base::render(std::string& out) const {
    out += "# HELP ";
    out += name_;
    out += ' ';
    append_help(out, help_);
    out += "\n# TYPE ";
    out += name_;
    out += ' ';
    out += to_string(type_);
    out += '\n';
    render_samples(out);
}

family_base::slot family_base::find_or_reserve(std::span<const std::string_view> values) {
    if (values.size() != label_names_.size()) {
        throw std::invalid_argument("metric " + name_ + " takes " +
                                    std::to_string(label_names_.size()) + " label values, got " +
                                    std::to_string(values.size()));
    }
    scratch_key_.clear();
    for (const std::string_view value : values) {
        if (is_valid_utf8(value)) {
            scratch_key_ += value;
        } else {
            scratch_key_ += sanitize_utf8(value);
        }
        scratch_key_ += k_key_separator;
    }
    if (const auto it = index_.find(scratch_key_); it != index_.end()) {
        return {it->second, false};
    }
    if (labels_.size() >= max_children_ && !label_names_.empty()) {
        // Past the bound every new combination shares one child, so a label fed by something
        // unbounded cannot grow the scrape (or this process) without limit.
        if (overflow_ != nullptr) {
            overflow_->inc();
        }
        scratch_key_.clear();
        for (std::size_t i = 0; i < label_names_.size(); ++i) {
            scratch_key_ += k_overflow_label_value;
            scratch_key_ += k_key_separator;
        }
        if (const auto it = index_.find(scratch_key_); it != index_.end()) {
            return {it->second, false};
        }
    }
    // Render the label pairs once, here, so that rendering a scrape is only concatenation.
    std::string labels;
    std::size_t begin = 0;
    for (std::size_t i = 0; i < label_names_.size(); ++i) {
        const std::size_t end = scratch_key_.find(k_key_separator, begin);
        if (i != 0) {
            labels += ',';
        }
        labels += label_names_[i];
        labels += "=\"";
        append_label_value(labels, std::string_view(scratch_key_).substr(begin, end - begin));
        labels += '"';
        begin = end + 1;
    }
    const std::size_t index = labels_.size();
    labels_.push_back(std::move(labels));
    index_.emplace(scratch_key_, index);
    return {index, true};
}

template <>
void family<counter>::render_samples(std::string& out) const {
    for (std::size_t i = 0; i < children_.size(); ++i) {
        append_series(out, name(), rendered_labels(i));
        append_number(out, children_[i].value());
        out += '\n';
    }
}

template <>
void family<gauge>::render_samples(std::string& out) const {
    for (std::size_t i = 0; i < children_.size(); ++i) {
        append_series(out, name(), rendered_labels(i));
        append_number(out, children_[i].value());
        out += '\n';
    }
}

template <>
void family<histogram>::render_samples(std::string& out) const {
    const std::string bucket_name = name() + "_bucket";
    const std::string sum_name = name() + "_sum";
    const std::string count_name = name() + "_count";
    std::string labels;
    for (std::size_t i = 0; i < children_.size(); ++i) {
        const histogram& child = children_[i];
        const std::string& own_labels = rendered_labels(i);
        const auto counts = child.bucket_counts();
        std::uint64_t cumulative = 0;
        for (std::size_t b = 0; b < counts.size(); ++b) {
            cumulative += counts[b];
            labels = own_labels;
            if (!labels.empty()) {
                labels += ',';
            }
            labels += "le=\"";
            if (b < bounds_.size()) {
                append_number(labels, bounds_[b]);
            } else {
                labels += "+Inf";
            }
            labels += '"';
            append_series(out, bucket_name, labels);
            append_number(out, static_cast<double>(cumulative));
            out += '\n';
        }
        append_series(out, sum_name, own_labels);
        append_number(out, child.sum());
        out += '\n';
        append_series(out, count_name, own_labels);
        append_number(out, static_cast<double>(child.count()));
        out += '\n';
    }
}

}  // namespace pm_agent::metrics
