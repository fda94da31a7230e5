// Results: one JSON entry per run, appended to the results file, and a summary for people.

#include "report.hpp"

#include <sys/utsname.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>
#include <thread>

namespace pm_agent::bench {
namespace {

namespace json = boost::json;

/// Ids shown for each kind of verification failure.
constexpr std::size_t k_examples = 5;

double round3(double v) {
    return static_cast<double>(static_cast<long long>(v * 1000 + 0.5)) / 1000;
}

std::string utc_now() {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[32];
    std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S+00:00", &tm);
    return buf;
}

std::string machine() {
    utsname u{};
    uname(&u);
    return std::string(u.machine) + " " + std::to_string(std::thread::hardware_concurrency()) +
           " cores";
}

json::object latency(std::vector<std::int64_t>& samples) {
    const auto s = summarize(samples);
    return {{"count", s.count},        {"p50", round3(s.p50_ms)}, {"p95", round3(s.p95_ms)},
            {"p99", round3(s.p99_ms)}, {"max", round3(s.max_ms)}, {"mean", round3(s.mean_ms)}};
}

json::array strings(const std::vector<std::string>& items) {
    json::array out;
    for (const auto& item : items) {
        out.emplace_back(item);
    }
    return out;
}

/// json.dump(indent=2)-like text, so entries read the same as health_vs_nginx.sh's.
void pretty(std::ostream& os, const json::value& v, int depth) {
    const std::string pad(static_cast<std::size_t>(depth + 1) * 2, ' ');
    const std::string close_pad(static_cast<std::size_t>(depth) * 2, ' ');
    if (const auto* object = v.if_object(); object != nullptr && !object->empty()) {
        os << "{\n";
        bool first = true;
        for (const auto& [key, value] : *object) {
            os << (first ? "" : ",\n") << pad << json::serialize(json::string(key)) << ": ";
            pretty(os, value, depth + 1);
            first = false;
        }
        os << "\n" << close_pad << "}";
        return;
    }
    if (const auto* array = v.if_array(); array != nullptr && !array->empty()) {
        os << "[\n";
        bool first = true;
        for (const auto& value : *array) {
            os << (first ? "" : ",\n") << pad;
            pretty(os, value, depth + 1);
            first = false;
        }
        os << "\n" << close_pad << "]";
        return;
    }
    os << json::serialize(v);
}

double number(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_number() ? v->to_number<double>() : 0.0;
}

}  // namespace

json::object build_report(const options& opt, ledger& book, const run_timeline& r) {
    json::object e;
    e["scenario"] = opt.label.empty() ? "bench" : opt.label;
    e["tool"] = "pm-agent-bench";
    e["when"] = utc_now();
    e["machine"] = machine();
    e["config"] = json::object{{"url", opt.url},
                               {"mode", opt.mode == agent_mode::ws ? "ws" : "rest"},
                               {"agents", opt.agents},
                               {"concurrency", opt.concurrency},
                               {"submitters", opt.submitters},
                               {"rate", opt.rate},
                               {"batch", opt.batch},
                               {"think_ms", opt.think_ms},
                               {"payload_bytes", opt.payload_bytes},
                               {"heartbeat_ms", opt.heartbeat_ms},
                               {"duration_s", opt.duration_s},
                               {"drain_s", opt.drain_s}};
    e["setup_s"] = round3(r.setup_s);
    e["window_s"] = round3(r.window_s);
    e["drain_s"] = round3(r.drain_s);
    e["drained"] = r.drained;
    e["agents_registered"] = book.agents_registered;
    e["submit_requests"] = book.submit_requests;
    e["tasks_submitted"] = book.tasks_confirmed;
    e["tasks_delivered"] = book.tasks_delivered;
    e["tasks_completed"] = book.tasks_acknowledged;
    e["completed_in_window"] = r.acknowledged_in_window;
    const double window = r.window_s > 0 ? r.window_s : 1;
    e["throughput_per_s"] = round3(static_cast<double>(r.acknowledged_in_window) / window);
    e["submit_rate_per_s"] = round3(static_cast<double>(r.confirmed_in_window) / window);
    e["heartbeats_sent"] = book.heartbeats_sent;
    e["latency_ms"] = json::object{{"submit", latency(book.submit_ns)},
                                   {"dispatch", latency(book.dispatch_ns)},
                                   {"e2e", latency(book.e2e_ns)},
                                   {"heartbeat", latency(book.heartbeat_ns)}};
    // Loss can only be judged by the process that saw both the 202s and the completions.
    const bool checked = opt.submitters > 0 && opt.agents > 0;
    const auto v = book.verify(k_examples);
    json::object verification{{"checked", checked}};
    if (checked) {
        verification["lost"] = v.lost;
        verification["lost_ids"] = strings(v.lost_examples);
        verification["unconfirmed"] = v.unconfirmed;
        verification["unconfirmed_ids"] = strings(v.unconfirmed_examples);
    }
    verification["duplicated"] = v.duplicated;
    verification["duplicated_ids"] = strings(v.duplicated_examples);
    e["verification"] = std::move(verification);
    json::object errors;
    for (const auto& [kind, count] : book.errors()) {
        errors[kind] = count;
    }
    e["errors"] = std::move(errors);
    e["error_count"] = book.error_count();
    if (r.server_before.ok && r.server_after.ok) {
        json::object server{{"pid", opt.server_pid},
                            {"cpu_s", round3(r.server_after.cpu_s - r.server_before.cpu_s)},
                            {"cpu_window_s", round3(r.server_cpu_window_s)},
                            {"rss_before_kib", r.server_before.rss_kib},
                            {"rss_after_setup_kib", r.server_after_setup.rss_kib},
                            {"rss_after_kib", r.server_after.rss_kib}};
        if (book.agents_registered > 0) {
            server["rss_per_agent_kib"] =
                round3(static_cast<double>(r.server_after.rss_kib - r.server_before.rss_kib) /
                       static_cast<double>(book.agents_registered));
        }
        if (r.acknowledged_in_window > 0) {
            server["cpu_us_per_task"] =
                round3(r.server_cpu_window_s * 1e6 / static_cast<double>(r.acknowledged_in_window));
        }
        e["server"] = std::move(server);
    }
    e["client"] = json::object{{"cpu_s", round3(r.client_cpu_s)},
                               {"cpu_window_s", round3(r.client_cpu_window_s)}};
    return e;
}

std::string append_report(const std::string& path, const json::object& entry) {
    json::array entries;
    if (std::ifstream in(path); in) {
        std::stringstream text;
        text << in.rdbuf();
        if (!text.str().empty()) {
            boost::system::error_code ec;
            auto existing = json::parse(text.str(), ec);
            if (ec || !existing.is_array()) {
                return path + " does not hold a JSON array; not touching it";
            }
            entries = std::move(existing.get_array());
        }
    }
    entries.emplace_back(entry);
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        pretty(out, entries, 0);
        out << "\n";
        if (!out) {
            return "cannot write " + tmp;
        }
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        return "cannot replace " + path;
    }
    return {};
}

void print_summary(const json::object& e) {
    const auto& cfg = e.at("config").as_object();
    std::printf(
        "pm-agent-bench %s: mode=%s agents=%lld x %lld slots, submitters=%lld, batch=%lld\n",
        e.at("scenario").as_string().c_str(), cfg.at("mode").as_string().c_str(),
        static_cast<long long>(number(cfg, "agents")),
        static_cast<long long>(number(cfg, "concurrency")),
        static_cast<long long>(number(cfg, "submitters")),
        static_cast<long long>(number(cfg, "batch")));
    std::printf("  set-up %.2f s (%lld agents registered), window %.2f s, drain %.2f s%s\n",
                number(e, "setup_s"), static_cast<long long>(number(e, "agents_registered")),
                number(e, "window_s"), number(e, "drain_s"),
                e.at("drained").as_bool() ? "" : " (NOT drained)");
    std::printf(
        "  throughput %.1f tasks/s completed (submitted %.1f/s); %lld submitted, %lld "
        "completed in all\n",
        number(e, "throughput_per_s"), number(e, "submit_rate_per_s"),
        static_cast<long long>(number(e, "tasks_submitted")),
        static_cast<long long>(number(e, "tasks_completed")));
    std::printf("  latency ms      count      p50      p95      p99      max\n");
    for (const char* kind : {"submit", "dispatch", "e2e", "heartbeat"}) {
        const auto& l = e.at("latency_ms").as_object().at(kind).as_object();
        if (number(l, "count") == 0) {
            continue;
        }
        std::printf("    %-10s %8lld %8.3f %8.3f %8.3f %8.3f\n", kind,
                    static_cast<long long>(number(l, "count")), number(l, "p50"), number(l, "p95"),
                    number(l, "p99"), number(l, "max"));
    }
    const auto& v = e.at("verification").as_object();
    if (v.at("checked").as_bool()) {
        std::printf("  verification: lost %lld, duplicated %lld, unconfirmed %lld\n",
                    static_cast<long long>(number(v, "lost")),
                    static_cast<long long>(number(v, "duplicated")),
                    static_cast<long long>(number(v, "unconfirmed")));
        for (const char* key : {"lost_ids", "duplicated_ids", "unconfirmed_ids"}) {
            if (!v.at(key).as_array().empty()) {
                std::printf("    %s: %s\n", key, json::serialize(v.at(key)).c_str());
            }
        }
    } else {
        std::printf(
            "  verification: not checked (this process does not both submit and run agents); "
            "duplicated %lld\n",
            static_cast<long long>(number(v, "duplicated")));
    }
    const auto& errors = e.at("errors").as_object();
    if (errors.empty()) {
        std::printf("  errors: none\n");
    }
    for (const auto& [kind, count] : errors) {
        std::printf("  error %s: %s\n", std::string(kind).c_str(), json::serialize(count).c_str());
    }
    if (const auto* s = e.if_contains("server")) {
        const auto& server = s->as_object();
        std::printf("  server: cpu %.2f s in window (%.1f us/task), rss %lld -> %lld KiB",
                    number(server, "cpu_window_s"), number(server, "cpu_us_per_task"),
                    static_cast<long long>(number(server, "rss_before_kib")),
                    static_cast<long long>(number(server, "rss_after_kib")));
        if (server.contains("rss_per_agent_kib")) {
            std::printf(" (%.2f KiB per agent)", number(server, "rss_per_agent_kib"));
        }
        std::printf("\n");
    }
    const auto& client = e.at("client").as_object();
    std::printf("  client: cpu %.2f s in window, %.2f s in all\n", number(client, "cpu_window_s"),
                number(client, "cpu_s"));
    std::fflush(stdout);
}

bool run_clean(const json::object& e) {
    const auto& v = e.at("verification").as_object();
    return number(e, "error_count") == 0 && number(v, "lost") == 0 &&
           number(v, "duplicated") == 0 && number(v, "unconfirmed") == 0 &&
           e.at("drained").as_bool();
}

}  // namespace pm_agent::bench
