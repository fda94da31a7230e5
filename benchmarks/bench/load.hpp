#pragma once

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <string>

#include "ledger.hpp"
#include "net.hpp"
#include "options.hpp"

namespace pm_agent::bench {

/// The state every submitter and agent coroutine of one process shares (one thread: no locks).
struct load_context {
    load_context(asio::io_context& io_, const options& opt_, target server_, ledger& book_)
        : io(io_), opt(opt_), server(std::move(server_)), book(book_), setup_changed(io_) {}

    asio::io_context& io;
    const options& opt;
    target server;
    ledger& book;
    /// The submit request body, ready but for the timestamp: `prefix` + ns + `suffix`.
    std::string task_prefix;
    std::string task_suffix;

    bool submitting = true;
    /// After the drain: agents and submitters stop at their next turn.
    bool stopping = false;
    int submitters_active = 0;

    int setups_in_flight = 0;
    int agents_ready = 0;
    int agents_failed = 0;
    async_event setup_changed;
};

/// One keep-alive connection posting tasks until `submitting` turns false.
void spawn_submitter(load_context& ctx, int index);
/// One WebSocket agent: register, `ready` with --concurrency slots, complete every task pushed.
void spawn_ws_agent(load_context& ctx, int index);
/// One REST agent: register, then --concurrency long-polling slots, each on its own connection.
void spawn_rest_agent(load_context& ctx, int index);
/// Called once by every agent when it is registered (`ok`) or has given up.
void agent_setup_done(load_context& ctx, bool ok);

/// Server-side resource use, from /proc.
struct proc_sample {
    bool ok = false;
    double cpu_s = 0;
    long rss_kib = 0;
};
proc_sample sample_process(long pid);
/// This process's own CPU seconds (user + system).
double self_cpu_s();

/// The timeline of one run, for the report.
struct run_timeline {
    double setup_s = 0;
    double window_s = 0;
    double drain_s = 0;
    bool drained = false;
    std::uint64_t acknowledged_in_window = 0;
    std::uint64_t confirmed_in_window = 0;
    proc_sample server_before;
    proc_sample server_after_setup;
    proc_sample server_after;
    double server_cpu_window_s = 0;
    double client_cpu_s = 0;
    double client_cpu_window_s = 0;
};

/// Runs the whole scenario of `opt` on `io` and returns when it is over.
run_timeline run_load(asio::io_context& io, const options& opt, target server, ledger& book);

}  // namespace pm_agent::bench
