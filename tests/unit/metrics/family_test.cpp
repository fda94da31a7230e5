#include "pm_agent/metrics/registry.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pm_agent::metrics {
namespace {

double overflow_count(const registry& reg, std::string_view family_name) {
    // The overflow family is const from the outside; its values are read through render().
    const std::string text = reg.render();
    const std::string prefix =
        std::string(k_overflow_metric_name) + "{family=\"" + std::string(family_name) + "\"} ";
    const auto at = text.find(prefix);
    if (at == std::string::npos) {
        return -1;
    }
    return std::stod(text.substr(at + prefix.size()));
}

TEST(metrics_family, references_stay_valid_while_children_are_added) {
    registry reg;
    auto& family = reg.counter("x_total", "x", {"n"});
    counter& first = family.with({"0"});
    first.inc();
    for (int i = 1; i < 400; ++i) {
        family.with({std::to_string(i)}).inc();
    }
    first.inc();
    EXPECT_EQ(&first, &family.with({"0"}));
    EXPECT_EQ(family.with({"0"}).value(), 2);
    EXPECT_EQ(family.size(), 400U);
}

TEST(metrics_family, runtime_label_values_through_span) {
    registry reg;
    auto& family = reg.gauge("g", "g", {"a", "b"});
    const std::string a = "x";
    const std::string b = "y";
    const std::vector<std::string_view> values{a, b};
    family.with(values).set(4);
    EXPECT_EQ(family.with({"x", "y"}).value(), 4);
}

TEST(metrics_family, past_the_limit_new_combinations_map_to_other) {
    registry reg(3);
    auto& family = reg.counter("pm_agent_requests_total", "r", {"route", "code"});
    family.with({"/a", "200"}).inc();
    family.with({"/b", "200"}).inc();
    family.with({"/c", "200"}).inc();
    EXPECT_EQ(overflow_count(reg, "pm_agent_requests_total"), 0);

    counter& spill = family.with({"/d", "500"});
    spill.inc();
    family.with({"/e", "404"}).inc(2);
    EXPECT_EQ(&spill, &family.with({"/f", "200"}));
    EXPECT_EQ(spill.value(), 3);
    EXPECT_EQ(family.size(), 4U);  // three real children and "other"
    // Existing combinations still get their own child.
    EXPECT_EQ(family.with({"/a", "200"}).value(), 1);
    EXPECT_EQ(overflow_count(reg, "pm_agent_requests_total"), 3);

    const std::string text = reg.render();
    EXPECT_NE(text.find("pm_agent_requests_total{route=\"other\",code=\"other\"} 3\n"),
              std::string::npos);
    EXPECT_EQ(text.find("/d"), std::string::npos);
}

TEST(metrics_family, an_explicit_other_child_is_reused_by_overflow) {
    registry reg(2);
    auto& family = reg.gauge("g", "g", {"k"});
    gauge& other = family.with({"other"});
    family.with({"a"});
    EXPECT_EQ(&other, &family.with({"b"}));
    EXPECT_EQ(family.size(), 2U);
}

TEST(metrics_family, every_labelled_family_has_an_overflow_series_from_registration) {
    registry reg;
    reg.counter("a_total", "a", {"x"});
    reg.histogram("h_seconds", "h", {1}, {"y"});
    reg.gauge("plain", "no labels, cannot overflow");
    EXPECT_EQ(overflow_count(reg, "a_total"), 0);
    EXPECT_EQ(overflow_count(reg, "h_seconds"), 0);
    EXPECT_EQ(overflow_count(reg, "plain"), -1);
    EXPECT_EQ(reg.overflow().size(), 2U);
    EXPECT_EQ(reg.overflow().max_children(), std::numeric_limits<std::size_t>::max());
}

TEST(metrics_family, histogram_overflow_child_observes) {
    registry reg(1);
    auto& family = reg.histogram("h_seconds", "h", {1}, {"route"});
    family.with({"/a"}).observe(0.5);
    family.with({"/b"}).observe(2);
    const std::string text = reg.render();
    EXPECT_NE(text.find("h_seconds_bucket{route=\"other\",le=\"1\"} 0\n"), std::string::npos);
    EXPECT_NE(text.find("h_seconds_bucket{route=\"other\",le=\"+Inf\"} 1\n"), std::string::npos);
    EXPECT_EQ(overflow_count(reg, "h_seconds"), 1);
}

TEST(metrics_family, invalid_utf8_label_values_are_sanitised_and_share_a_child) {
    registry reg;
    auto& family = reg.counter("x_total", "x", {"v"});
    family.with({"bad\xFF"}).inc();
    family.with({"bad\xFE"}).inc();  // sanitises to the same text, so the same series
    EXPECT_EQ(family.size(), 1U);
    EXPECT_NE(reg.render().find("x_total{v=\"bad\xEF\xBF\xBD\"} 2\n"), std::string::npos);
}

TEST(metrics_family, values_containing_separator_like_text_stay_distinct) {
    registry reg;
    auto& family = reg.counter("x_total", "x", {"a", "b"});
    family.with({"ab", ""}).inc();
    family.with({"a", "b"}).inc(2);
    EXPECT_EQ(family.size(), 2U);
    EXPECT_EQ(family.with({"ab", ""}).value(), 1);
}

}  // namespace
}  // namespace pm_agent::metrics
