// A pool connection's transactions: sending one pipelined transaction in one write, flushing
// without blocking, and reading its results as the socket becomes readable.

#include <libpq-fe.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "pg/connection.hpp"

namespace pm_agent::pg {

namespace asio = boost::asio;

namespace {

// The timeout is set per transaction (is_local = true: SET LOCAL semantics), so no session
// state survives it; that keeps the pool usable behind PgBouncer in transaction mode.
constexpr const char* k_set_timeout_sql = "SELECT set_config('statement_timeout', $1, true)";
constexpr const char* k_set_timeout_name = "pm_set_statement_timeout";

// The server answers within statement_timeout or cancels the statement; past this margin the
// connection itself is presumed stuck.
constexpr std::chrono::seconds k_answer_margin{1};

}  // namespace

void connection::run(std::vector<statement> statements) {
    auto self = shared_from_this();  // a synchronous failure may make the owner drop us
    phase_ = phase::busy;
    // statement_timeout 0 is PostgreSQL's "no limit": then nothing here limits the wait either.
    if (settings_.statement_timeout.count() > 0) {
        arm_deadline(settings_.statement_timeout + k_answer_margin, phase::busy);
    }
    send_statements(statements);
    if (phase_ != phase::busy) {
        return;
    }
    flush();
}

void connection::send_statements(const std::vector<statement>& statements) {
    PGconn* conn = conn_.get();
    results_.reset(statements.size());

    const std::string timeout =
        std::to_string(std::max<std::int64_t>(settings_.statement_timeout.count(), 0));
    std::vector<const char*> values{timeout.c_str()};
    std::vector<std::string> preparing;  // names prepared earlier in this same pipeline
    // Every transaction starts with it, prepared like any named statement.
    if (!send_one(k_set_timeout_name, k_set_timeout_sql, values, 0, preparing)) {
        return;
    }
    results_.expect_set_config();

    // libpq wants NUL-terminated strings; a string_view is not, so each is copied once.
    std::string sql;
    std::string name;
    for (std::size_t i = 0; i < statements.size(); ++i) {
        const statement& stmt = statements[i];
        values.clear();
        for (const auto& param : stmt.params) {
            values.push_back(param ? param->c_str() : nullptr);
        }
        sql.assign(stmt.sql);
        name.assign(stmt.name);
        if (!send_one(name.c_str(), sql.c_str(), values, i, preparing)) {
            return;
        }
        results_.expect_query(i);
    }
    if (PQpipelineSync(conn) != 1) {
        lose(failure_kind::connection, libpq_error());
        return;
    }
    results_.expect_sync();
}

bool connection::send_one(const char* name, const char* sql, const std::vector<const char*>& values,
                          std::size_t index, std::vector<std::string>& preparing) {
    PGconn* conn = conn_.get();
    const int count = static_cast<int>(values.size());
    int sent = 0;
    if (settings_.prepared_statements && *name != '\0') {
        if (!prepared_.contains(name) &&
            std::find(preparing.begin(), preparing.end(), name) == preparing.end()) {
            // Types are left to the server (paramTypes null), as for unnamed statements.
            if (PQsendPrepare(conn, name, sql, 0, nullptr) != 1) {
                lose(failure_kind::connection, libpq_error());
                return false;
            }
            results_.expect_prepare(index, name);
            preparing.emplace_back(name);
        }
        sent = PQsendQueryPrepared(conn, name, count, values.data(), nullptr, nullptr, 0);
    } else {
        sent = PQsendQueryParams(conn, sql, count, nullptr, values.data(), nullptr, nullptr, 0);
    }
    if (sent != 1) {
        lose(failure_kind::connection, libpq_error());
        return false;
    }
    return true;
}

void connection::flush() {
    const int pending = PQflush(conn_.get());
    if (pending < 0) {
        lose(failure_kind::connection, libpq_error());
        return;
    }
    flush_pending_ = pending == 1;
    if (flush_pending_) {
        // Reads stay armed meanwhile: the server may be blocked writing results we must consume
        // before it reads more of ours.
        arm_write();
    }
}

void connection::arm_read() {
    if (read_armed_ || phase_ == phase::closed) {
        return;
    }
    read_armed_ = true;
    socket_.async_wait(asio::posix::stream_descriptor::wait_read,
                       [self = shared_from_this()](const boost::system::error_code& ec) {
                           self->on_readable(ec);
                       });
}

void connection::arm_write() {
    if (write_armed_ || phase_ == phase::closed) {
        return;
    }
    write_armed_ = true;
    socket_.async_wait(asio::posix::stream_descriptor::wait_write,
                       [self = shared_from_this()](const boost::system::error_code& ec) {
                           self->on_writable(ec);
                       });
}

void connection::on_readable(const boost::system::error_code& ec) {
    if (phase_ == phase::closed) {
        return;
    }
    read_armed_ = false;
    if (ec) {
        lose(failure_kind::connection, "socket wait failed: " + ec.message());
        return;
    }
    // EOF and read errors make PQconsumeInput fail and the status bad: never reused.
    if (PQconsumeInput(conn_.get()) != 1 || PQstatus(conn_.get()) != CONNECTION_OK) {
        lose(failure_kind::connection, libpq_error());
        return;
    }
    while (PGnotify* notice = PQnotifies(conn_.get())) {
        PQfreemem(notice);  // no LISTEN here; freed so they do not pile up
    }
    if (flush_pending_) {
        flush();
        if (phase_ == phase::closed) {
            return;
        }
    }
    if (phase_ == phase::busy) {
        read_results();
        if (phase_ == phase::closed) {
            return;
        }
    }
    arm_read();
}

void connection::on_writable(const boost::system::error_code& ec) {
    if (phase_ == phase::closed) {
        return;
    }
    write_armed_ = false;
    if (ec) {
        lose(failure_kind::connection, "socket wait failed: " + ec.message());
        return;
    }
    if (flush_pending_) {
        flush();
    }
}

void connection::read_results() {
    while (phase_ == phase::busy) {
        if (PQisBusy(conn_.get()) == 1) {
            return;  // PQgetResult would block: wait for the socket
        }
        const bool complete = results_.feed(result_handle(PQgetResult(conn_.get())));
        if (results_.protocol_error()) {
            lose(failure_kind::connection, "results out of order");
            return;
        }
        if (complete) {
            if (results_.session_diverged()) {
                lose(failure_kind::connection, "prepared statements out of step with the server");
                return;
            }
            for (const std::string& name : results_.prepared()) {
                prepared_.insert(name);
            }
            phase_ = phase::idle;
            ++deadline_generation_;
            deadline_.cancel();
            // Last: the owner may start the next transaction on this connection from here.
            listener_.on_finished(*this, results_.take());
            return;
        }
    }
}

void connection::lose(failure_kind kind, std::string_view error) {
    if (phase_ == phase::closed) {
        return;
    }
    const std::string message(error);  // error may point into conn_, which close() frees
    close();
    listener_.on_lost(*this, kind, message);
}

}  // namespace pm_agent::pg
