// The run's timeline: server sample, agent set-up (bounded parallelism), the submit window, the
// drain, the final sample. Submitters and agents report into the ledger; this only watches it.

#include "load.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace pm_agent::bench {
namespace {

using clock = std::chrono::steady_clock;
/// How often the timeline looks at the counters: fine enough for set-up and drain times.
constexpr auto k_poll = std::chrono::milliseconds(10);

double seconds(clock::duration d) {
    return std::chrono::duration<double>(d).count();
}

asio::awaitable<void> sleep_for(asio::io_context& io, clock::duration d) {
    asio::steady_timer timer(io, d);
    co_await timer.async_wait(k_tuple);
}

/// One line per second while stdout is a terminal.
class progress_printer {
  public:
    progress_printer(const load_context& ctx, const char* phase, clock::time_point start)
        : ctx_(ctx), phase_(phase), start_(start), next_(start + std::chrono::seconds(1)) {}

    void tick() {
        const auto now = clock::now();
        if (!ctx_.opt.progress || now < next_) {
            return;
        }
        next_ += std::chrono::seconds(1);
        const auto& b = ctx_.book;
        std::printf(
            "%-6s t=%5.1fs agents=%d/%d submitted=%llu completed=%llu (+%llu/s) outstanding=%lld "
            "errors=%llu\n",
            phase_, seconds(now - start_), ctx_.agents_ready, ctx_.opt.agents,
            static_cast<unsigned long long>(b.tasks_confirmed),
            static_cast<unsigned long long>(b.tasks_acknowledged),
            static_cast<unsigned long long>(b.tasks_acknowledged - last_acknowledged_),
            static_cast<long long>(b.outstanding),
            static_cast<unsigned long long>(b.error_count()));
        std::fflush(stdout);
        last_acknowledged_ = b.tasks_acknowledged;
    }

  private:
    const load_context& ctx_;
    const char* phase_;
    clock::time_point start_;
    clock::time_point next_;
    std::uint64_t last_acknowledged_ = 0;
};

asio::awaitable<void> launch_agents(load_context& ctx) {
    for (int i = 0; i < ctx.opt.agents; ++i) {
        while (ctx.setups_in_flight >= ctx.opt.connect_parallel) {
            co_await ctx.setup_changed.wait();
        }
        ++ctx.setups_in_flight;
        if (ctx.opt.mode == agent_mode::ws) {
            spawn_ws_agent(ctx, i);
        } else {
            spawn_rest_agent(ctx, i);
        }
    }
}

/// --barrier-dir: says this process is set up, then waits for the others (file count; a
/// directory is the one thing processes started by a shell script can all see).
asio::awaitable<void> pass_barrier(load_context& ctx) {
    namespace fs = std::filesystem;
    const fs::path dir = ctx.opt.barrier_dir;
    std::error_code ec;
    std::ofstream(dir / (std::to_string(getpid()) + ".ready")).put('\n');
    for (;;) {
        int ready = 0;
        for (const auto& entry : fs::directory_iterator(dir, ec)) {
            ready += entry.path().extension() == ".ready" ? 1 : 0;
        }
        if (ec || ready >= ctx.opt.barrier_count) {
            co_return;
        }
        co_await sleep_for(ctx.io, k_poll);
    }
}

/// What "nothing is left" means depends on which roles this process plays.
bool drained(const load_context& ctx) {
    if (ctx.submitters_active > 0) {
        return false;
    }
    if (ctx.opt.submitters > 0 && ctx.agents_ready > 0) {
        return ctx.book.outstanding == 0;
    }
    return ctx.book.agent_in_flight == 0;
}

asio::awaitable<void> orchestrate(load_context& ctx, run_timeline& r) {
    const auto& opt = ctx.opt;
    const double cpu_start = self_cpu_s();
    r.server_before = sample_process(opt.server_pid);

    const auto setup_start = clock::now();
    asio::co_spawn(ctx.io, launch_agents(ctx), report_exception);
    progress_printer setup_progress(ctx, "setup", setup_start);
    while (ctx.agents_ready + ctx.agents_failed < opt.agents) {
        co_await sleep_for(ctx.io, k_poll);
        setup_progress.tick();
    }
    r.setup_s = seconds(clock::now() - setup_start);
    if (!opt.barrier_dir.empty()) {
        co_await pass_barrier(ctx);
    }
    r.server_after_setup = sample_process(opt.server_pid);

    // Heartbeats timed while other agents were still being set up measure the set-up, not the
    // steady state: keep only the window's.
    ctx.book.heartbeat_ns.clear();
    ctx.book.heartbeats_sent = 0;
    const double cpu_window_start = self_cpu_s();
    const std::uint64_t acknowledged_before = ctx.book.tasks_acknowledged;
    const std::uint64_t confirmed_before = ctx.book.tasks_confirmed;
    const auto window_start = clock::now();
    const auto window_end = window_start + std::chrono::duration_cast<clock::duration>(
                                               std::chrono::duration<double>(opt.duration_s));
    if (opt.agents == 0 || ctx.agents_ready > 0) {
        for (int i = 0; i < opt.submitters; ++i) {
            spawn_submitter(ctx, i);
        }
    }
    progress_printer run_progress(ctx, "run", window_start);
    while (clock::now() < window_end) {
        co_await sleep_for(ctx.io, k_poll);
        run_progress.tick();
    }
    ctx.submitting = false;
    r.window_s = seconds(clock::now() - window_start);
    r.acknowledged_in_window = ctx.book.tasks_acknowledged - acknowledged_before;
    r.confirmed_in_window = ctx.book.tasks_confirmed - confirmed_before;
    r.client_cpu_window_s = self_cpu_s() - cpu_window_start;
    const auto server_window_end = sample_process(opt.server_pid);
    r.server_cpu_window_s = server_window_end.cpu_s - r.server_after_setup.cpu_s;

    const auto drain_start = clock::now();
    const auto drain_end = drain_start + std::chrono::duration_cast<clock::duration>(
                                             std::chrono::duration<double>(opt.drain_s));
    while (!(r.drained = drained(ctx)) && clock::now() < drain_end) {
        co_await sleep_for(ctx.io, k_poll);
        run_progress.tick();
    }
    r.drain_s = seconds(clock::now() - drain_start);
    // Sampled while every agent is still connected: the idle scenario's RSS per agent.
    r.server_after = sample_process(opt.server_pid);
    r.client_cpu_s = self_cpu_s() - cpu_start;
    ctx.stopping = true;
    ctx.io.stop();
}

}  // namespace

void agent_setup_done(load_context& ctx, bool ok) {
    --ctx.setups_in_flight;
    if (ok) {
        ++ctx.agents_ready;
        ++ctx.book.agents_registered;
    } else {
        ++ctx.agents_failed;
    }
    ctx.setup_changed.notify();
}

proc_sample sample_process(long pid) {
    proc_sample s;
    if (pid <= 0) {
        return s;
    }
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) {
        return s;
    }
    // The command name may hold spaces and parentheses: fields are counted after the last ')'.
    const auto close = line.rfind(')');
    if (close == std::string::npos) {
        return s;
    }
    std::istringstream fields(line.substr(close + 2));
    std::string field;
    unsigned long long utime = 0;
    unsigned long long stime = 0;
    for (int index = 3; fields >> field; ++index) {
        if (index == 14) {
            utime = std::stoull(field);
        } else if (index == 15) {
            stime = std::stoull(field);
            break;
        }
    }
    s.cpu_s = static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    while (std::getline(status, line)) {
        if (line.rfind("VmRSS:", 0) == 0) {
            s.rss_kib = std::stol(line.substr(6));
            s.ok = true;
        }
    }
    return s;
}

double self_cpu_s() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    auto tv = [](const timeval& t) {
        return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
    };
    return tv(usage.ru_utime) + tv(usage.ru_stime);
}

run_timeline run_load(asio::io_context& io, const options& opt, target server, ledger& book) {
    load_context ctx(io, opt, std::move(server), book);
    ctx.task_prefix = R"({"type":"bench","payload":{"t":)";
    ctx.task_suffix = opt.payload_bytes > 0
                          ? R"(,"pad":")" + std::string(opt.payload_bytes, 'x') + R"("}})"
                          : std::string("}}");
    run_timeline r;
    asio::co_spawn(io, orchestrate(ctx, r), report_exception);
    io.run();
    return r;
}

}  // namespace pm_agent::bench
