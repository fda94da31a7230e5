#pragma once
/// One libpq connection of the pool, driven by the loop: resolve, connect, then run one
/// pipelined transaction at a time. It never blocks: the socket is watched with
/// stream_descriptor::async_wait and libpq is only asked to do what the socket allows.
///
/// Ownership: the pool holds it by shared_ptr and every pending handler holds one too, so a
/// handler that runs after close() (with operation_aborted, or already queued) finds the object
/// alive and closed, and does nothing. After close() the listener is never called again.
/// The object is one physical connection: a lost or failed one is not reopened, the pool makes
/// a new one.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "pg/conninfo.hpp"
#include "pg/pg_handles.hpp"
#include "pg/transaction_results.hpp"
#include "pm_agent/pg/pool.hpp"

namespace pm_agent::pg {

class connection;

/// What a connection tells its owner. Each call is the last thing the connection does in the
/// handler that makes it, so the owner may close the connection or start a transaction on it
/// from inside the call.
class connection_listener {
  public:
    virtual ~connection_listener() = default;
    /// Connected and idle: ready for run().
    virtual void on_connected(connection& conn) = 0;
    /// The attempt failed (the connection is closed).
    virtual void on_connect_failed(connection& conn, std::string_view error) = 0;
    /// The transaction given to run() is answered; the connection is idle again.
    virtual void on_finished(connection& conn, outcome answer) = 0;
    /// A connected connection broke or timed out and is closed. The transaction in flight, if
    /// any, is lost with `kind` (connection or timeout).
    virtual void on_lost(connection& conn, failure_kind kind, std::string_view error) = 0;
};

/// Settings shared by the pool's connections.
struct connection_settings {
    conninfo info;
    std::chrono::milliseconds connect_timeout;
    std::chrono::milliseconds statement_timeout;
    bool prepared_statements;
};

class connection : public std::enable_shared_from_this<connection> {
  public:
    /// `slot` identifies the connection to its listener. Both references must outlive it.
    connection(boost::asio::io_context& ioc, const connection_settings& settings,
               connection_listener& listener, std::size_t slot);
    ~connection();
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    std::size_t slot() const { return slot_; }

    /// Resolves the host names, then connects (within connect_timeout).
    void start();

    /// Sends `statements` as one transaction; the connection must be idle (on_connected or
    /// on_finished said so). The answer comes through on_finished or on_lost.
    void run(std::vector<statement> statements);

    /// Closes without calling the listener again; pending handlers become no-ops.
    void close();

  private:
    enum class phase { resolving, connecting, idle, busy, closed };

    // Connecting (connection_connect.cpp).
    void resolve_next();
    void begin_connect();
    void wait_connect_step(PostgresPollingStatusType wanted);
    void on_connect_step(const boost::system::error_code& ec);
    void become_connected();
    void fail_connect(std::string_view error);

    // Running transactions (connection_pipeline.cpp).
    void send_statements(const std::vector<statement>& statements);
    /// Queues one statement of the pipeline: when prepared statements are on and `name` is not
    /// empty, prepared under it first (once per session; `preparing` holds the names prepared
    /// earlier in this pipeline, a failed Prepare is charged to caller statement `index`), else
    /// sent unnamed. False: the connection was lost.
    bool send_one(const char* name, const char* sql, const std::vector<const char*>& values,
                  std::size_t index, std::vector<std::string>& preparing);
    void flush();
    void arm_read();
    void arm_write();
    void on_readable(const boost::system::error_code& ec);
    void on_writable(const boost::system::error_code& ec);
    void read_results();
    void lose(failure_kind kind, std::string_view error);

    void arm_deadline(std::chrono::steady_clock::duration after, phase expected);
    void release_socket();
    std::string libpq_error() const;

    boost::asio::io_context& ioc_;
    const connection_settings& settings_;
    connection_listener& listener_;
    std::size_t slot_;

    phase phase_ = phase::resolving;
    conn_handle conn_;
    // Wraps libpq's socket for readiness only: released, never closed, because the fd is libpq's.
    boost::asio::posix::stream_descriptor socket_;
    boost::asio::ip::tcp::resolver resolver_;
    boost::asio::steady_timer deadline_;
    std::uint64_t deadline_generation_ = 0;  // a fired timer whose generation is stale is ignored

    std::size_t resolving_ = 0;                        // index into settings_.info.names()
    std::vector<std::vector<std::string>> addresses_;  // per name
    std::string resolve_error_;                        // why the last name did not resolve

    bool read_armed_ = false;
    bool write_armed_ = false;
    bool flush_pending_ = false;
    std::unordered_set<std::string> prepared_;  // names prepared in this session
    transaction_results results_;
};

/// libpq's messages end with a newline and may span lines; logs want one line, no quotes.
std::string one_line(std::string_view text);

}  // namespace pm_agent::pg
