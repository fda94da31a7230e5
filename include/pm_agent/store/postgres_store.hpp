#pragma once
/// The PostgreSQL store (DESIGN.md §2-§3): every task and agent lives in the database, so a 2xx
/// answer means committed, and any number of workers share one database.
///
/// Group commit: operations that arrive during one loop turn are sent together as one
/// transaction in one round trip (pg::pool pipelines them); submissions of several requests
/// become one multi-row INSERT. While every connection is busy, arriving operations wait and go
/// out together when one frees up, so batches grow with load. Claims use FOR UPDATE SKIP LOCKED,
/// and every worker runs the reaper, so workers never block each other on a task.

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "pm_agent/config/config.hpp"
#include "pm_agent/store/store.hpp"

namespace boost::asio {
class io_context;
}
namespace pm_agent::pg {
class pool;
}

namespace pm_agent::store {

/// Settings of the PostgreSQL store beyond the queue and agents sections.
struct postgres_options {
    /// reap() does its work at most this often (a reap between two polls is answered empty);
    /// it also reports queues with pending tasks so that idle consumers here claim what other
    /// workers queued. Zero: every reap() call runs (tests).
    std::chrono::milliseconds poll_interval{200};
    /// Most operations sent in one transaction.
    std::size_t max_batch = 256;
    /// Group-commit transactions in flight at once. Normally one: the next batch grows while
    /// the last one commits, and small concurrent batches only contend for the same rows and
    /// pay each statement twice (measured on 2 cores: 4.7k vs 3.6k tasks/s end to end). A
    /// second one starts when at least `parallel_rows` submitted tasks wait, since big batches
    /// are already amortized and gain from a second core (46k vs 23k tasks/s batch submit).
    /// Reads never wait for these: they run on the pool's other connections.
    std::size_t max_in_flight = 2;
    std::size_t parallel_rows = 500;
    /// Heartbeats without a status change are written to the database at most this often per
    /// agent (DESIGN.md §3: never a PostgreSQL write per heartbeat): in between, a heartbeat
    /// only takes the agent's cancel notices (a read when there are none), and reap() writes
    /// the latest heartbeat of every such agent in one statement once per interval. So the
    /// stored last_heartbeat and lease lag the agent by at most this; keep it well below
    /// heartbeat_timeout and lease_timeout. Zero: every heartbeat is written (the contract
    /// suite's exact semantics).
    std::chrono::milliseconds heartbeat_write_interval{0};
    /// This worker's name in pm_workers, the row whose liveness stands for the agents attached
    /// here (store::set_attached). Empty: "host:pid".
    std::string worker_name;
};

/// The store on `db`; `ioc` (the worker's loop) and `db` must outlive it.
std::unique_ptr<store> make_postgres_store(boost::asio::io_context& ioc, pg::pool& db,
                                           const config::queue_config& queue,
                                           const config::agents_config& agents,
                                           postgres_options options = {});

/// Applies the schema migrations not yet applied (blocking libpq: for the `migrate` command and
/// start-up, never on a running loop). Concurrent callers serialize on an advisory lock.
/// Returns an error message, or "" on success; `applied` gets the versions it applied.
std::string migrate_database(const std::string& url, std::vector<int>* applied = nullptr);

/// For tests: drops every pm_ table, function and the migrations record (blocking libpq).
std::string reset_database(const std::string& url);

}  // namespace pm_agent::store
