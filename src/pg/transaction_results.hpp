#pragma once
/// What one pipelined transaction expects back from libpq, in order, and what it got.
///
/// A transaction is sent as: set_config (the statement timeout), then per caller statement an
/// optional Prepare and its query, then one Sync. libpq answers each query with its result(s)
/// and a null, and the Sync with PGRES_PIPELINE_SYNC (no null after it). After an error every
/// later query answers PGRES_PIPELINE_ABORTED; those are consumed up to the Sync so the
/// connection is clean again. Sans-I/O: fed results, no socket.

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "pg/pg_handles.hpp"
#include "pm_agent/pg/pool.hpp"

namespace pm_agent::pg {

class transaction_results {
  public:
    /// Starts a new transaction of `statements` caller statements.
    void reset(std::size_t statements);

    void expect_set_config();
    void expect_prepare(std::size_t statement, std::string name);
    void expect_query(std::size_t statement);
    void expect_sync();

    /// Feeds what PQgetResult returned (null: the end of the current query's results).
    /// Returns true once the Sync has been read: the transaction is complete.
    bool feed(result_handle result);

    /// The answer: one rows per caller statement, or the first error.
    outcome take();

    /// Names whose Prepare succeeded in this transaction (prepared statements live in the
    /// session, so they survive a rollback of the transaction that created them).
    const std::vector<std::string>& prepared() const { return prepared_; }

    /// True when the server's prepared statements are not what the connection recorded (one
    /// is missing, 26000, or already exists, 42P05: a DEALLOCATE, or a pooler that switched
    /// sessions). Forgetting the record would not fix it, so the connection must be replaced.
    bool session_diverged() const { return session_diverged_; }

    /// True when libpq answered out of order: the connection cannot be trusted any more.
    bool protocol_error() const { return protocol_error_; }

  private:
    enum class item_kind { set_config, prepare, query, sync };
    struct item {
        item_kind kind;
        std::size_t statement;
        std::string name;
    };

    void fail(std::size_t statement, const PGresult* result);

    std::vector<item> items_;
    std::size_t position_ = 0;
    bool got_result_ = false;  // the current item already gave its result
    std::vector<rows> rows_;
    std::optional<failure> error_;
    std::vector<std::string> prepared_;
    bool session_diverged_ = false;
    bool protocol_error_ = false;
};

}  // namespace pm_agent::pg
