#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>

namespace pm_agent::bench {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
inline constexpr auto k_tuple = asio::as_tuple(asio::use_awaitable);

/// CLOCK_MONOTONIC in nanoseconds. It is system-wide, so a task stamped by a submitting process
/// can be timed by an agent process on the same machine.
inline std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

/// The server, parsed from `http://host:port` and resolved once at start-up.
struct target {
    std::string host_header;
    tcp::endpoint endpoint;
    /// Bind each connection to 127.0.0.X first: one source address has ~28k ephemeral ports.
    bool spread_sources = false;
    /// The X of the next connection's source address.
    unsigned next_source = 0;
};

/// Parses and resolves `url`; the error names what is wrong.
std::optional<target> parse_target(const std::string& url, bool bind_source, std::string& error);

/// Opens `socket` to the server, from the next 127.0.0.X (X cycling 1..250) when the server is
/// on loopback.
asio::awaitable<beast::error_code> connect_to(tcp::socket& socket, target& server);

/// A wake-up for coroutines on one thread: waiters re-check their condition after every
/// notify, so a notify that comes before the wait is never lost.
class async_event {
  public:
    explicit async_event(asio::io_context& io)
        : timer_(io, asio::steady_timer::time_point::max()) {}
    asio::awaitable<void> wait() { co_await timer_.async_wait(k_tuple); }
    void notify() { timer_.cancel(); }

  private:
    asio::steady_timer timer_;
};

/// Completion handler for co_spawn: a coroutine that throws is a bug of this tool; say so.
void report_exception(std::exception_ptr e);

}  // namespace pm_agent::bench
