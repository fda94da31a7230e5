#pragma once
/// An asynchronous PostgreSQL connection pool on the worker's loop (DESIGN.md §2).
///
/// Each connection is a libpq connection in non-blocking pipeline mode whose socket is watched
/// by the loop: no libpq call here ever blocks. A transaction is a list of statements sent in
/// one write and ended by one Sync, so it costs one round trip and commits (or rolls back) as
/// one implicit transaction block. Nothing is kept in the session between transactions (works
/// through PgBouncer in transaction mode); named prepared statements are used only when
/// pool_options::prepared_statements is set.
///
/// Threading: loop thread only. Completions are never called inline from transact(): always
/// from the loop, later.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pm_agent/store/unique_function.hpp"

struct pg_result;  // libpq's PGresult

namespace boost::asio {
class io_context;
}
namespace pm_agent::metrics {
class registry;
}

namespace pm_agent::pg {

/// Pool settings (built from config::database_config by the wiring).
struct pool_options {
    std::string url;       ///< libpq URI or key=value conninfo; a secret: never logged
    std::size_t size = 8;  ///< connections
    /// A transaction not answered within this is abandoned: its connection is dropped and the
    /// caller gets failure_kind::timeout. Also set as the server-side statement_timeout of each
    /// transaction (SET LOCAL semantics, so nothing outlives the transaction).
    std::chrono::milliseconds statement_timeout{5000};
    bool prepared_statements = true;  ///< false for PgBouncer in transaction mode
    /// Transactions queued while every connection is busy; past it transact() fails at once with
    /// failure_kind::overloaded (bounded waiters: memory and latency stay bounded).
    std::size_t max_waiters = 4096;
    /// A queued transaction that found no connection within this fails (unavailable): while the
    /// database is down no caller waits longer than this.
    std::chrono::milliseconds queue_timeout{2000};
    std::chrono::milliseconds connect_timeout{3000};
    /// Reconnect back-off after a failed connection attempt: doubles from min to max.
    std::chrono::milliseconds reconnect_min{100};
    std::chrono::milliseconds reconnect_max{5000};
};

/// One statement: SQL with numbered parameter references ($1 is the first) and text-format
/// parameters (nullopt is SQL NULL).
struct statement {
    /// Non-empty: the statement may be prepared on each connection under this name. One name is
    /// always the same SQL. Must outlive the transaction (use string literals).
    std::string_view name;
    /// Must outlive the transaction (use string literals).
    std::string_view sql;
    std::vector<std::optional<std::string>> params;
};

/// The result of one statement, text format. Move-only; owns its PGresult.
class rows {
  public:
    rows() = default;
    explicit rows(pg_result* result);
    rows(rows&&) noexcept;
    rows& operator=(rows&&) noexcept;
    ~rows();

    std::size_t size() const;  ///< rows returned
    int columns() const;
    /// The text of one field ("" for NULL); valid while this object lives.
    std::string_view get(std::size_t row, int column) const;
    bool is_null(std::size_t row, int column) const;
    /// Rows affected by an INSERT/UPDATE/DELETE (PQcmdTuples), 0 otherwise.
    std::uint64_t affected() const;

  private:
    pg_result* result_ = nullptr;
};

enum class failure_kind : std::uint8_t {
    connection,  ///< no usable connection, or it broke during the transaction (outcome unknown)
    timeout,     ///< not answered within statement_timeout (connection dropped)
    overloaded,  ///< too many transactions waiting for a connection
    statement,   ///< one statement failed: the whole transaction was rolled back
};

/// Why a transaction did not commit.
struct failure {
    failure_kind kind = failure_kind::connection;
    /// For failure_kind::statement: the index (into the statements passed) of the one that
    /// failed; the statements after it were not run.
    std::size_t statement_index = 0;
    std::string sqlstate;  ///< e.g. "23505" (unique_violation); empty when not from the server
    std::string message;   ///< the server's primary message; for logs, not for clients
};

/// A transaction's answer: on success one rows per statement, in order.
struct outcome {
    std::vector<rows> results;
    std::optional<failure> error;
};

using completion = store::unique_function<void(outcome)>;

/// Point-in-time pool numbers (also exported as metrics).
struct pool_status {
    std::size_t connected = 0;  ///< usable connections (idle or busy)
    std::size_t busy = 0;       ///< with a transaction in flight
    std::size_t waiting = 0;    ///< transactions queued for a connection
};

class pool {
  public:
    /// Registers the pool's metrics (pm_agent_db_*). `ioc` and `registry` must outlive the pool.
    pool(boost::asio::io_context& ioc, pool_options options, metrics::registry& registry);
    /// Closes every connection; queued and in-flight transactions are dropped uncalled.
    ~pool();
    pool(const pool&) = delete;
    pool& operator=(const pool&) = delete;

    /// Starts connecting every connection (asynchronously; reconnects with back-off forever).
    void start();

    /// Runs `statements` as one transaction in one round trip; `done` is called exactly once,
    /// from the loop. FIFO: transactions start in the order they were submitted.
    void transact(std::vector<statement> statements, completion done);

    /// True when at least one connection is usable.
    bool healthy() const;
    pool_status status() const;

  private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace pm_agent::pg
