#include "pm_agent/metrics/registry.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <stdexcept>

namespace pm_agent::metrics {
namespace {

std::string render_one(const family_base& family) {
    std::string out;
    family.render(out);
    return out;
}

TEST(metrics_registry, counter_without_labels_renders_zero_before_first_increment) {
    registry reg;
    auto& requests = reg.counter("pm_agent_requests_total", "Requests served.");
    EXPECT_EQ(render_one(requests),
              "# HELP pm_agent_requests_total Requests served.\n"
              "# TYPE pm_agent_requests_total counter\n"
              "pm_agent_requests_total 0\n");
    requests.get().inc();
    requests.with({}).inc(2.5);
    EXPECT_EQ(requests.get().value(), 3.5);
    EXPECT_EQ(render_one(requests),
              "# HELP pm_agent_requests_total Requests served.\n"
              "# TYPE pm_agent_requests_total counter\n"
              "pm_agent_requests_total 3.5\n");
}

TEST(metrics_registry, counter_ignores_negative_and_nan_increments) {
    registry reg;
    auto& c = reg.counter("c_total", "c").get();
    c.inc(2);
    c.inc(-1);
    c.inc(std::numeric_limits<double>::quiet_NaN());
    EXPECT_EQ(c.value(), 2);
}

TEST(metrics_registry, counter_with_labels_renders_children_in_creation_order) {
    registry reg;
    auto& family = reg.counter("pm_agent_tasks_total", "Task outcomes.", {"queue", "outcome"});
    EXPECT_EQ(render_one(family),
              "# HELP pm_agent_tasks_total Task outcomes.\n"
              "# TYPE pm_agent_tasks_total counter\n");
    family.with({"default", "succeeded"}).inc(3);
    family.with({"batch", "failed"}).inc();
    family.with({"default", "succeeded"}).inc();
    EXPECT_EQ(family.size(), 2U);
    EXPECT_EQ(render_one(family),
              "# HELP pm_agent_tasks_total Task outcomes.\n"
              "# TYPE pm_agent_tasks_total counter\n"
              "pm_agent_tasks_total{queue=\"default\",outcome=\"succeeded\"} 4\n"
              "pm_agent_tasks_total{queue=\"batch\",outcome=\"failed\"} 1\n");
}

TEST(metrics_registry, gauge_without_and_with_labels) {
    registry reg;
    auto& queue = reg.gauge("pm_agent_task_queue_size", "Pending tasks.");
    queue.get().set(10);
    queue.get().inc(5);
    queue.get().dec();
    queue.get().dec(0.5);
    EXPECT_EQ(render_one(queue),
              "# HELP pm_agent_task_queue_size Pending tasks.\n"
              "# TYPE pm_agent_task_queue_size gauge\n"
              "pm_agent_task_queue_size 13.5\n");

    auto& active = reg.gauge("pm_agent_active_connections", "Open connections.", {"kind"});
    active.with({"ws"}).inc();
    active.with({"http"}).set(-2);
    EXPECT_EQ(render_one(active),
              "# HELP pm_agent_active_connections Open connections.\n"
              "# TYPE pm_agent_active_connections gauge\n"
              "pm_agent_active_connections{kind=\"ws\"} 1\n"
              "pm_agent_active_connections{kind=\"http\"} -2\n");
}

TEST(metrics_registry, callback_gauge_is_evaluated_at_render_time) {
    registry reg;
    double owned_elsewhere = 7;
    auto& g = reg.gauge("pm_agent_outbound_queue_size", "Queued frames.").get();
    g.set(1);
    g.bind([&owned_elsewhere] { return owned_elsewhere; });
    EXPECT_TRUE(g.is_bound());
    EXPECT_NE(reg.render().find("pm_agent_outbound_queue_size 7\n"), std::string::npos);
    owned_elsewhere = 9;
    EXPECT_NE(reg.render().find("pm_agent_outbound_queue_size 9\n"), std::string::npos);
    g.set(3);  // hidden while bound
    EXPECT_EQ(g.value(), 9);
    g.bind({});
    EXPECT_FALSE(g.is_bound());
    EXPECT_NE(reg.render().find("pm_agent_outbound_queue_size 3\n"), std::string::npos);
}

TEST(metrics_registry, histogram_without_labels_renders_cumulative_buckets_sum_and_count) {
    registry reg;
    auto& family = reg.histogram("pm_agent_dispatch_seconds", "Dispatch latency.", {0.1, 1, 10});
    auto& h = family.get();
    h.observe(0.05);
    h.observe(0.1);  // on the bound: le is inclusive
    h.observe(0.5);
    h.observe(20);
    EXPECT_EQ(render_one(family),
              "# HELP pm_agent_dispatch_seconds Dispatch latency.\n"
              "# TYPE pm_agent_dispatch_seconds histogram\n"
              "pm_agent_dispatch_seconds_bucket{le=\"0.1\"} 2\n"
              "pm_agent_dispatch_seconds_bucket{le=\"1\"} 3\n"
              "pm_agent_dispatch_seconds_bucket{le=\"10\"} 3\n"
              "pm_agent_dispatch_seconds_bucket{le=\"+Inf\"} 4\n"
              "pm_agent_dispatch_seconds_sum 20.65\n"
              "pm_agent_dispatch_seconds_count 4\n");
}

TEST(metrics_registry, histogram_with_labels_puts_le_last) {
    registry reg;
    auto& family = reg.histogram("pm_agent_request_duration_seconds", "Request latency.", {0.5, 1},
                                 {"route", "method"});
    family.with({"/api/v1/tasks", "POST"}).observe(0.75);
    EXPECT_EQ(render_one(family),
              "# HELP pm_agent_request_duration_seconds Request latency.\n"
              "# TYPE pm_agent_request_duration_seconds histogram\n"
              "pm_agent_request_duration_seconds_bucket{route=\"/api/v1/tasks\",method=\"POST\","
              "le=\"0.5\"} 0\n"
              "pm_agent_request_duration_seconds_bucket{route=\"/api/v1/tasks\",method=\"POST\","
              "le=\"1\"} 1\n"
              "pm_agent_request_duration_seconds_bucket{route=\"/api/v1/tasks\",method=\"POST\","
              "le=\"+Inf\"} 1\n"
              "pm_agent_request_duration_seconds_sum{route=\"/api/v1/tasks\",method=\"POST\"} "
              "0.75\n"
              "pm_agent_request_duration_seconds_count{route=\"/api/v1/tasks\",method=\"POST\"} "
              "1\n");
}

TEST(metrics_registry, histogram_accepts_default_buckets_and_drops_a_trailing_inf) {
    registry reg;
    auto& latency = reg.histogram("lat_seconds", "l", k_default_latency_buckets);
    EXPECT_EQ(latency.bounds().size(), k_default_latency_buckets.size());
    auto& explicit_inf =
        reg.histogram("b_seconds", "b", {1, std::numeric_limits<double>::infinity()});
    EXPECT_EQ(explicit_inf.bounds(), std::vector<double>{1});
    const std::string text = render_one(explicit_inf);
    EXPECT_EQ(text.find("le=\"+Inf\""), text.rfind("le=\"+Inf\""));  // rendered exactly once
}

TEST(metrics_registry, label_values_and_help_are_escaped_in_the_output) {
    registry reg;
    auto& family = reg.gauge("g", "first line\nsecond \\ line", {"path"});
    family.with({"C:\\dir \"x\"\ny"}).set(1);
    EXPECT_EQ(render_one(family),
              "# HELP g first line\\nsecond \\\\ line\n"
              "# TYPE g gauge\n"
              "g{path=\"C:\\\\dir \\\"x\\\"\\ny\"} 1\n");
}

TEST(metrics_registry, render_lists_families_in_registration_order_and_appends) {
    registry reg;
    reg.gauge("zeta", "z");
    reg.counter("alpha_total", "a");
    const std::string text = reg.render();
    const auto overflow = text.find("# HELP pm_agent_metrics_overflow_total");
    const auto zeta = text.find("# HELP zeta z");
    const auto alpha = text.find("# HELP alpha_total a");
    ASSERT_NE(zeta, std::string::npos);
    ASSERT_NE(alpha, std::string::npos);
    EXPECT_EQ(overflow, 0U);
    EXPECT_LT(zeta, alpha);

    std::string buffer = "prefix\n";
    reg.render(buffer);
    EXPECT_EQ(buffer, "prefix\n" + text);
}

TEST(metrics_registry, registering_the_same_family_twice_returns_it) {
    registry reg;
    auto& first = reg.counter("x_total", "x", {"a"});
    auto& second = reg.counter("x_total", "x again", {"a"});
    EXPECT_EQ(&first, &second);
    auto& h1 = reg.histogram("h_seconds", "h", {1, 2});
    auto& h2 = reg.histogram("h_seconds", "h", {1, 2});
    EXPECT_EQ(&h1, &h2);
}

TEST(metrics_registry, conflicting_registrations_throw) {
    registry reg;
    reg.counter("x_total", "x", {"a"});
    EXPECT_THROW(reg.counter("x_total", "x", {"b"}), std::invalid_argument);
    reg.gauge("y", "y");
    EXPECT_THROW(reg.histogram("y", "y", {1}), std::invalid_argument);
    reg.histogram("h_seconds", "h", {1, 2});
    EXPECT_THROW(reg.histogram("h_seconds", "h", {1, 3}), std::invalid_argument);
    // A histogram's series may not collide with other families, either way round.
    reg.histogram("q", "q", {1});
    EXPECT_THROW(reg.gauge("q_bucket", "b"), std::invalid_argument);
    reg.histogram("r_bucket", "r", {1});
    EXPECT_THROW(reg.histogram("r", "r", {1}), std::invalid_argument);
}

TEST(metrics_registry, invalid_names_labels_and_buckets_throw) {
    registry reg;
    EXPECT_THROW(reg.gauge("bad-name", "x"), std::invalid_argument);
    EXPECT_THROW(reg.gauge("rule:name", "x"), std::invalid_argument);
    EXPECT_THROW(reg.counter("requests", "no _total"), std::invalid_argument);
    EXPECT_THROW(reg.gauge("things_total", "gauge named like a counter"), std::invalid_argument);
    EXPECT_THROW(reg.gauge("task_count", "reserved suffix"), std::invalid_argument);
    EXPECT_THROW(reg.gauge("queue_gauge", "type in name"), std::invalid_argument);
    EXPECT_THROW(reg.counter("x_counter_total", "type in name"), std::invalid_argument);
    EXPECT_NO_THROW(reg.gauge("pm_agent_counter_depth", "only its own type is checked"));
    EXPECT_THROW(reg.gauge("g1", "x", {"__reserved"}), std::invalid_argument);
    EXPECT_THROW(reg.gauge("g2", "x", {"a", "a"}), std::invalid_argument);
    EXPECT_THROW(reg.gauge("g3", "x", {"bad label"}), std::invalid_argument);
    EXPECT_THROW(reg.histogram("h1", "x", {1}, {"le"}), std::invalid_argument);
    EXPECT_THROW(reg.histogram("h2", "x", {2, 1}), std::invalid_argument);
    EXPECT_THROW(reg.histogram("h3", "x", {1, 1}), std::invalid_argument);
    EXPECT_THROW(reg.histogram("h4", "x", {std::numeric_limits<double>::quiet_NaN()}),
                 std::invalid_argument);
    EXPECT_THROW(reg.histogram("h5", "x", {-std::numeric_limits<double>::infinity(), 1}),
                 std::invalid_argument);
}

TEST(metrics_registry, wrong_number_of_label_values_throws) {
    registry reg;
    auto& family = reg.counter("x_total", "x", {"a", "b"});
    EXPECT_THROW(family.with({"only one"}), std::invalid_argument);
    EXPECT_THROW(family.get(), std::invalid_argument);
    auto& plain = reg.counter("y_total", "y");
    EXPECT_THROW(plain.with({"unexpected"}), std::invalid_argument);
}

}  // namespace
}  // namespace pm_agent::metrics
