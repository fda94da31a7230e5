// A pool connection's life up to "connected": asynchronous DNS, then PQconnectStartParams and
// PQconnectPoll driven by the socket's readiness, bounded by connect_timeout.

#include <spdlog/spdlog.h>
#include <boost/asio/error.hpp>

#include <algorithm>
#include <utility>

#include "pg/connection.hpp"

namespace pm_agent::pg {

namespace asio = boost::asio;

namespace {

void log_notice(void*, const PGresult* result) {
    const char* severity = PQresultErrorField(result, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char* message = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
    const std::string_view level = severity != nullptr ? severity : "NOTICE";
    // NOTICE and below are chatter; a WARNING, or an error that arrived outside any query (a
    // backend terminated by an administrator), is worth seeing.
    const bool serious =
        level == "WARNING" || level == "ERROR" || level == "FATAL" || level == "PANIC";
    spdlog::log(serious ? spdlog::level::warn : spdlog::level::debug,
                "event=db_notice severity={} message=\"{}\"", level,
                one_line(message != nullptr ? message : ""));
}

}  // namespace

std::string one_line(std::string_view text) {
    std::string line;
    line.reserve(text.size());
    for (const char c : text) {
        if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
            if (!line.empty() && line.back() != ' ') {
                line += ' ';
            }
        } else if (c == '"') {
            line += '\'';
        } else {
            line += c;
        }
    }
    while (!line.empty() && line.back() == ' ') {
        line.pop_back();
    }
    return line;
}

connection::connection(asio::io_context& ioc, const connection_settings& settings,
                       connection_listener& listener, std::size_t slot)
    : ioc_(ioc),
      settings_(settings),
      listener_(listener),
      slot_(slot),
      socket_(ioc),
      resolver_(ioc),
      deadline_(ioc) {}

connection::~connection() {
    // The fd belongs to libpq: hand it back before PQfinish closes it.
    release_socket();
}

void connection::start() {
    auto self = shared_from_this();  // a synchronous failure may make the owner drop us
    phase_ = phase::resolving;
    arm_deadline(settings_.connect_timeout, phase::resolving);
    addresses_.assign(settings_.info.names().size(), {});
    resolving_ = 0;
    resolve_next();
}

void connection::resolve_next() {
    const auto& names = settings_.info.names();
    if (resolving_ >= names.size()) {
        begin_connect();
        return;
    }
    // The port is irrelevant (only addresses are kept); a numeric one avoids a services lookup.
    resolver_.async_resolve(
        names[resolving_], "5432", asio::ip::tcp::resolver::numeric_service,
        [self = shared_from_this()](const boost::system::error_code& ec,
                                    asio::ip::tcp::resolver::results_type results) {
            if (self->phase_ != phase::resolving) {
                return;  // closed, or timed out meanwhile
            }
            auto& found = self->addresses_[self->resolving_];
            if (ec) {
                self->resolve_error_ = ec.message();
            }
            for (const auto& entry : results) {
                std::string address = entry.endpoint().address().to_string();
                if (std::find(found.begin(), found.end(), address) == found.end()) {
                    found.push_back(std::move(address));
                }
            }
            ++self->resolving_;
            self->resolve_next();
        });
}

void connection::begin_connect() {
    phase_ = phase::connecting;
    std::optional<connect_params> params = settings_.info.resolve(addresses_);
    if (!params) {
        fail_connect("could not resolve host name: " + resolve_error_);
        return;
    }
    // expand_dbname = 0: the URL was already expanded by PQconninfoParse.
    conn_.reset(PQconnectStartParams(params->keywords(), params->values(), 0));
    if (!conn_) {
        fail_connect("out of memory");
        return;
    }
    if (PQstatus(conn_.get()) == CONNECTION_BAD) {
        fail_connect(libpq_error());
        return;
    }
    // libpq prints notices and warnings on stderr by default, past the async logger.
    PQsetNoticeReceiver(conn_.get(), &log_notice, nullptr);
    // libpq: before the first PQconnectPoll, behave as if it had returned POLLING_WRITING.
    wait_connect_step(PGRES_POLLING_WRITING);
}

void connection::wait_connect_step(PostgresPollingStatusType wanted) {
    // The socket may change between steps (libpq tries the next host or address on a new one,
    // possibly under the same number), so it is re-read and re-registered every time.
    release_socket();
    const int fd = PQsocket(conn_.get());
    if (fd < 0) {
        fail_connect("no socket: " + libpq_error());
        return;
    }
    boost::system::error_code ec;
    socket_.assign(fd, ec);
    if (ec) {
        fail_connect("cannot watch the socket: " + ec.message());
        return;
    }
    const auto wait = wanted == PGRES_POLLING_READING ? asio::posix::stream_descriptor::wait_read
                                                      : asio::posix::stream_descriptor::wait_write;
    socket_.async_wait(wait, [self = shared_from_this()](const boost::system::error_code& ec) {
        self->on_connect_step(ec);
    });
}

void connection::on_connect_step(const boost::system::error_code& ec) {
    if (phase_ != phase::connecting) {
        return;
    }
    if (ec) {
        fail_connect("socket wait failed: " + ec.message());
        return;
    }
    switch (PQconnectPoll(conn_.get())) {
        case PGRES_POLLING_OK:
            become_connected();
            return;
        case PGRES_POLLING_READING:
            wait_connect_step(PGRES_POLLING_READING);
            return;
        case PGRES_POLLING_WRITING:
            wait_connect_step(PGRES_POLLING_WRITING);
            return;
        default:
            fail_connect(libpq_error());
            return;
    }
}

void connection::become_connected() {
    // PQconnectPoll may have switched sockets on its last step too.
    release_socket();
    const int fd = PQsocket(conn_.get());
    boost::system::error_code ec;
    if (fd >= 0) {
        socket_.assign(fd, ec);
    }
    if (fd < 0 || ec) {
        fail_connect("cannot watch the socket");
        return;
    }
    if (PQsetnonblocking(conn_.get(), 1) != 0 || PQenterPipelineMode(conn_.get()) != 1) {
        fail_connect("cannot enter non-blocking pipeline mode: " + libpq_error());
        return;
    }
    phase_ = phase::idle;
    ++deadline_generation_;
    deadline_.cancel();
    arm_read();  // watched while idle too, so a server that hangs up is noticed at once
    listener_.on_connected(*this);
}

void connection::fail_connect(std::string_view error) {
    const std::string message(error);  // error may point into conn_, which close() frees
    close();
    listener_.on_connect_failed(*this, message);
}

void connection::close() {
    if (phase_ == phase::closed) {
        return;
    }
    phase_ = phase::closed;
    ++deadline_generation_;
    deadline_.cancel();
    resolver_.cancel();
    release_socket();
    conn_.reset();
}

void connection::arm_deadline(std::chrono::steady_clock::duration after, phase expected) {
    const std::uint64_t generation = ++deadline_generation_;
    deadline_.expires_after(after);
    deadline_.async_wait(
        [self = shared_from_this(), generation, expected](const boost::system::error_code& ec) {
            // A cancelled or superseded deadline, or one whose phase has passed, is void: the
            // timer may have fired in the same turn the awaited event arrived.
            if (ec || generation != self->deadline_generation_ || self->phase_ == phase::closed) {
                return;
            }
            if (expected == phase::busy) {
                if (self->phase_ == phase::busy) {
                    self->lose(failure_kind::timeout, "no answer within statement_timeout + 1 s");
                }
                return;
            }
            if (self->phase_ == phase::resolving || self->phase_ == phase::connecting) {
                self->fail_connect("connect_timeout reached");
            }
        });
}

void connection::release_socket() {
    if (socket_.is_open()) {
        // release() cancels the pending waits (operation_aborted) and gives the fd back.
        socket_.release();
    }
    read_armed_ = false;
    write_armed_ = false;
}

std::string connection::libpq_error() const {
    if (!conn_) {
        return "no connection";
    }
    return one_line(PQerrorMessage(conn_.get()));
}

}  // namespace pm_agent::pg
