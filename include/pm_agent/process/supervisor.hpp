#pragma once
/// N identical worker processes under one supervisor process (server.workers > 1). Plain POSIX:
/// the supervisor forks the workers before any thread exists, reserves the shared port, restarts
/// a worker that crashed (restart_policy), forwards SIGTERM/SIGINT and waits for the drain.
/// It never starts a thread and never uses spdlog: its few lines go straight to stderr.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "pm_agent/process/restart_policy.hpp"

namespace pm_agent::process {

/// What the supervisor needs to know (filled from config by the wiring in main.cpp).
struct supervisor_options {
    int workers = 2;
    std::string host = "127.0.0.1";  ///< numeric address, as the workers bind it
    std::uint16_t port = 0;          ///< 0: the supervisor picks a free port for all workers
    /// Each worker drains within this after SIGTERM; past it plus kill_grace it is SIGKILLed.
    std::chrono::seconds shutdown_timeout{25};
    std::chrono::seconds kill_grace{5};
    restart_options restart;
    std::string log_level = "info";  ///< the supervisor's own lines below it are not written
    bool log_json = false;
};

/// Handed to a worker in its own process, right after fork().
struct worker_context {
    int index = 0;           ///< slot 0..workers-1 (a restarted worker keeps its slot)
    std::uint16_t port = 0;  ///< the shared port, concrete even when options.port was 0
    /// Call once the worker listens; the supervisor logs `event=listening` when all have.
    std::function<void()> listening;
};

/// The body of one worker process; its return value is the process's exit code.
using worker_main = std::function<int(const worker_context&)>;

/// Runs the supervisor until every worker has exited; returns the process exit code: 0 after a
/// clean shutdown, non-zero when the port cannot be reserved, a worker keeps failing at start
/// (that worker's exit code when it had one) or a worker had to be killed.
int run_supervised(const supervisor_options& options, const worker_main& worker);

}  // namespace pm_agent::process
