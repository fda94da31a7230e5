#pragma once

#include <cstdint>
#include <string>

namespace pm_agent::bench {

/// How the agents fetch their work.
enum class agent_mode { ws, rest };

/// The command line of pm-agent-bench, validated once in main.
struct options {
    std::string url = "http://127.0.0.1:8000";
    int agents = 4;
    int submitters = 64;
    double duration_s = 10;
    /// Tasks per second over all submitters; 0 = each submitter as fast as its answers come.
    double rate = 0;
    /// Most tasks confirmed and not yet acknowledged; submitters wait above it (0: no cap).
    /// A closed loop: without it, a server that accepts submits faster than it completes them
    /// builds an ever-growing backlog and the window measures the imbalance, not the exchange.
    std::int64_t max_outstanding = 0;
    agent_mode mode = agent_mode::ws;
    /// Slots per agent: `max_concurrency` at registration and the `ready` grant.
    int concurrency = 64;
    double think_ms = 0;
    std::size_t payload_bytes = 0;
    /// Tasks per submit request; 1 uses POST /api/v1/tasks, more uses /api/v1/tasks/batch.
    int batch = 1;
    /// Each agent sends a heartbeat this often and times its answer; 0 = no heartbeats.
    double heartbeat_ms = 0;
    /// After --duration, the longest wait for outstanding tasks to complete.
    double drain_s = 10;
    /// Most connections being set up at once (a burst of 10,000 SYNs overflows the backlog).
    int connect_parallel = 256;
    long server_pid = 0;
    /// Several client processes start their windows together: after its set-up each creates
    /// `<barrier_dir>/<pid>.ready` and waits until `barrier_count` such files exist.
    std::string barrier_dir;
    int barrier_count = 0;
    /// Bearer token of submit requests.
    std::string token;
    /// Bearer token of agent registration (REST register, WebSocket upgrade); defaults to `token`.
    std::string registration_token;
    std::string out;
    std::string label;
    bool bind_source = true;
    bool progress = false;
};

}  // namespace pm_agent::bench
