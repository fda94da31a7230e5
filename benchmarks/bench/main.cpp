// pm-agent-bench: submitters and agents against a pm-agent-server (or the baseline), one thread.
// Parses the command line, runs the load, reports. Exit 0: clean run; 1: errors, lost or
// duplicated tasks (all reported); 2: bad command line.

#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>

#include "load.hpp"
#include "report.hpp"

namespace {

using pm_agent::bench::agent_mode;

/// One process can hold as many connections as its fd limit allows: raise soft to hard.
void raise_fd_limit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
}

rlim_t fd_limit() {
    rlimit limit{};
    getrlimit(RLIMIT_NOFILE, &limit);
    return limit.rlim_cur;
}

}  // namespace

int main(int argc, char** argv) {
    pm_agent::bench::options opt;
    CLI::App app{"pm-agent-bench: load generator for pm-agent-server (submitters + agents)"};
    std::string mode = "ws";
    app.add_option("--url", opt.url, "server base URL, http://host:port")->capture_default_str();
    app.add_option("--agents", opt.agents, "agents (0: submit only)")
        ->check(CLI::Range(0, 1'000'000))
        ->capture_default_str();
    app.add_option("--submitters", opt.submitters, "submitting connections (0: agents only)")
        ->check(CLI::Range(0, 100'000))
        ->capture_default_str();
    app.add_option("--duration", opt.duration_s, "seconds of submitting")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--max-outstanding", opt.max_outstanding,
                   "submitters wait while this many tasks are unfinished (0 = no cap)");
    app.add_option("--rate", opt.rate, "tasks/s over all submitters, 0 = as fast as possible")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    app.add_option("--mode", mode, "agent transport")
        ->check(CLI::IsMember({"ws", "rest"}))
        ->capture_default_str();
    app.add_option("--concurrency", opt.concurrency, "slots per agent (max_concurrency, ready)")
        ->check(CLI::Range(1, 100'000))
        ->capture_default_str();
    app.add_option("--think-ms", opt.think_ms, "agent work time per task")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    app.add_option("--payload-bytes", opt.payload_bytes, "padding in each task payload")
        ->capture_default_str();
    app.add_option("--batch", opt.batch, "tasks per submit request (>1: /api/v1/tasks/batch)")
        ->check(CLI::Range(1, 1000))
        ->capture_default_str();
    app.add_option("--heartbeat-ms", opt.heartbeat_ms, "agent heartbeat period, 0 = none")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    app.add_option("--drain", opt.drain_s, "longest wait for outstanding tasks after --duration")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    app.add_option("--connect-parallel", opt.connect_parallel, "agents being set up at once")
        ->check(CLI::Range(1, 100'000))
        ->capture_default_str();
    app.add_option("--server-pid", opt.server_pid, "sample this process's CPU and RSS");
    app.add_option("--barrier-dir", opt.barrier_dir,
                   "after set-up, create DIR/<pid>.ready and wait for --barrier-count of them");
    app.add_option("--barrier-count", opt.barrier_count, "client processes meeting at the barrier")
        ->check(CLI::Range(1, 10'000));
    app.add_option("--token", opt.token, "bearer token for submitting (and registering)");
    app.add_option("--registration-token", opt.registration_token,
                   "bearer token for registering agents, if not --token");
    app.add_option("--out", opt.out, "append the JSON entry to this file (a JSON array)");
    app.add_option("--label", opt.label, "scenario name in the JSON entry");
    bool no_bind = false;
    app.add_flag("--no-source-spread", no_bind,
                 "do not bind connections to 127.0.0.X (X = 1..250) before connecting");
    bool agents_only = false;
    bool submitters_only = false;
    app.add_flag("--agents-only", agents_only, "same as --submitters 0");
    app.add_flag("--submitters-only", submitters_only, "same as --agents 0");
    CLI11_PARSE(app, argc, argv);

    opt.mode = mode == "rest" ? agent_mode::rest : agent_mode::ws;
    opt.bind_source = !no_bind;
    if (opt.registration_token.empty()) {
        opt.registration_token = opt.token;
    }
    opt.progress = isatty(STDOUT_FILENO) != 0;
    if (agents_only && submitters_only) {
        std::cerr << "pm-agent-bench: --agents-only and --submitters-only exclude each other\n";
        return 2;
    }
    if (!opt.barrier_dir.empty() &&
        (opt.barrier_count < 1 || !std::filesystem::is_directory(opt.barrier_dir))) {
        std::cerr << "pm-agent-bench: --barrier-dir needs an existing directory and "
                     "--barrier-count\n";
        return 2;
    }
    if (agents_only) {
        opt.submitters = 0;
    }
    if (submitters_only) {
        opt.agents = 0;
    }
    raise_fd_limit();
    const long per_agent = opt.mode == agent_mode::ws ? 1 : opt.concurrency + 1;
    const long needed = opt.agents * per_agent + opt.submitters + 16;
    if (static_cast<rlim_t>(needed) > fd_limit()) {
        std::cerr << "pm-agent-bench: " << needed << " connections need more than this "
                  << "process's fd limit of " << fd_limit()
                  << "; split the agents over several processes (see benchmarks/README.md)\n";
        return 2;
    }
    std::string error;
    auto server = pm_agent::bench::parse_target(opt.url, opt.bind_source, error);
    if (!server) {
        std::cerr << "pm-agent-bench: " << error << "\n";
        return 2;
    }

    pm_agent::bench::ledger book;
    boost::asio::io_context io(1);
    const auto timeline = pm_agent::bench::run_load(io, opt, std::move(*server), book);
    const auto entry = pm_agent::bench::build_report(opt, book, timeline);
    pm_agent::bench::print_summary(entry);
    if (!opt.out.empty()) {
        if (auto failure = pm_agent::bench::append_report(opt.out, entry); !failure.empty()) {
            std::cerr << "pm-agent-bench: " << failure << "\n";
            return 1;
        }
    }
    return pm_agent::bench::run_clean(entry) ? 0 : 1;
}
