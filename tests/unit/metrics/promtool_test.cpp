// Validates the registry's output with Prometheus' own checker, `promtool check metrics`, which
// parses the exposition text and lints it (exit 0 only when both pass).

#include <gtest/gtest.h>
#include <unistd.h>

#include <sys/wait.h>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include "pm_agent/metrics/registry.hpp"

namespace pm_agent::metrics {
namespace {

bool promtool_available() {
    return std::system("command -v promtool >/dev/null 2>&1") == 0;
}

/// Exit status of `promtool check metrics < text`; its report goes to the test's output.
int promtool_check(const std::string& text) {
    const auto path = std::filesystem::temp_directory_path() /
                      ("pm_agent_metrics_" + std::to_string(::getpid()) + ".prom");
    {
        std::ofstream file(path, std::ios::binary);
        file << text;
    }
    const std::string command = "promtool check metrics < '" + path.string() + "'";
    const int status = std::system(command.c_str());
    std::filesystem::remove(path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(metrics_promtool, render_of_every_kind_passes_promtool_check_metrics) {
    if (!promtool_available()) {
        GTEST_SKIP() << "promtool is not installed";
    }
    registry reg(2);
    reg.counter("pm_agent_connection_errors_total", "Connection errors.").get().inc(3);
    auto& requests = reg.counter("pm_agent_requests_total", "Requests \"served\"\\ by route.",
                                 {"route", "method", "code"});
    requests.with({"/api/v1/tasks", "POST", "202"}).inc();
    requests.with({"/api/v1/tasks/{id}", "GET", "404"}).inc();
    requests.with({"/api/v1/agents", "GET", "200"}).inc();  // past the limit: "other"
    requests.with({"/api/v1/stats", "GET", "200"}).inc();
    auto& escaped = reg.gauge("pm_agent_escaping", "Label values that need escaping.", {"v"});
    escaped.with({"/weird \"route\"\\\nx"}).set(1);
    escaped.with({"caf\xC3\xA9 \xFF"}).set(2);  // invalid UTF-8 is replaced

    reg.gauge("pm_agent_task_queue_size", "Pending tasks.").get().set(12);
    auto& active = reg.gauge("pm_agent_active_connections", "Open connections.", {"kind"});
    active.with({"ws"}).set(5);
    active.with({"http"}).bind([] { return 2.0; });
    reg.gauge("pm_agent_special_nan", "Special values.", {"v"})
        .with({"nan"})
        .set(std::numeric_limits<double>::quiet_NaN());
    reg.gauge("pm_agent_special_inf", "Special values.")
        .get()
        .set(-std::numeric_limits<double>::infinity());
    reg.gauge("pm_agent_never_set", "A labelled family with no child yet.", {"x"});

    auto& latency = reg.histogram("pm_agent_request_duration_seconds", "Request latency.",
                                  k_default_latency_buckets, {"route"});
    latency.with({"/api/v1/tasks"}).observe(0.003);
    latency.with({"/api/v1/tasks"}).observe(42);
    reg.histogram("pm_agent_dispatch_latency_seconds", "Dispatch latency.",
                  std::vector<double>{1e-05, 0.001, 0.1, 100000000});
    reg.histogram("pm_agent_bytes", "Sizes.", std::vector<double>{1024, 1048576}).get().observe(7);

    const std::string text = reg.render();
    EXPECT_EQ(promtool_check(text), 0) << text;
}

TEST(metrics_promtool, the_checker_rejects_broken_text) {
    // Guards the test above against a promtool_check that always answers 0.
    if (!promtool_available()) {
        GTEST_SKIP() << "promtool is not installed";
    }
    EXPECT_NE(promtool_check("# TYPE x counter\nx{a=\"unterminated} 1\n"), 0);
}

}  // namespace
}  // namespace pm_agent::metrics
