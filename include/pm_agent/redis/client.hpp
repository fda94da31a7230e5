#pragma once
/// An asynchronous Redis client on the worker's loop (DESIGN.md §2 Redis).
///
/// hiredis' redisAsyncContext, driven by the loop through hiredis' event hooks (addRead,
/// delRead, addWrite, delWrite, cleanup) mapped to async_wait on the connection's socket: no
/// hiredis call here ever blocks and the client has no thread of its own. Host names are
/// resolved by Asio before redisAsyncConnect (which would resolve them synchronously).
///
/// A small pool of command connections (commands pipeline naturally on each: many may be in
/// flight) plus one dedicated subscriber connection for pub/sub. Every connection reconnects
/// by itself with jittered exponential back-off; after a reconnect the subscriber subscribes
/// again and tells the caller (messages sent while it was away are lost: resynchronise).
///
/// Threading: loop thread only. Callbacks are never called inline from command(): always from
/// the loop, later.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pm_agent/store/unique_function.hpp"

namespace boost::asio {
class io_context;
}
namespace pm_agent::metrics {
class registry;
}

namespace pm_agent::redis {

/// Client settings (built from config::redis_config by the wiring).
struct client_options {
    /// redis://[:password@]host:port[/db]; a secret: never logged.
    std::string url;
    /// Command connections (the subscriber connection comes on top).
    std::size_t pool_size = 4;
    /// A command not answered within this fails (nullopt). Also the connect timeout.
    std::chrono::milliseconds timeout{200};
    /// Reconnect back-off after a failed or lost connection: doubles from min to max, jittered.
    std::chrono::milliseconds reconnect_min{100};
    std::chrono::milliseconds reconnect_max{5000};
};

/// An owned copy of a hiredis reply.
struct reply {
    enum class type : std::uint8_t { string, integer, array, nil, status, error };
    type kind = type::nil;
    std::string str;              ///< string, status and error replies
    std::int64_t integer = 0;     ///< integer replies
    std::vector<reply> elements;  ///< array replies

    bool is_error() const noexcept { return kind == type::error; }
};

/// nullopt: no answer (no connection, timed out, or the connection was lost with the command
/// in flight; the command may or may not have run). A Redis error reply is a reply of
/// type::error.
using reply_callback = store::unique_function<void(std::optional<reply>)>;
/// One pub/sub message.
using message_callback =
    store::unique_function<void(std::string_view channel, std::string_view payload)>;

/// Point-in-time numbers (also exported as metrics).
struct client_status {
    std::size_t connected = 0;  ///< usable command connections
    std::size_t in_flight = 0;  ///< commands sent and not yet answered
    bool subscribed = false;    ///< the subscriber connection is up and subscribed
};

/// Why `url` is not a usable redis:// URL ("" when it is), for start-up checks: the message
/// names the problem, never the password.
std::string url_error(std::string_view url);

class client {
  public:
    /// Registers the pm_agent_redis_* metrics. `ioc` and `registry` must outlive the client.
    /// Throws std::invalid_argument for a URL it cannot parse.
    client(boost::asio::io_context& ioc, client_options options, metrics::registry& registry);
    /// Closes every connection; callbacks of commands in flight are dropped uncalled. May run
    /// inside a command's reply callback; not inside on_message or on_subscribed.
    ~client();
    client(const client&) = delete;
    client& operator=(const client&) = delete;

    /// Starts connecting (asynchronously; reconnects with back-off forever).
    void start();

    /// Sends one command (binary-safe arguments, e.g. {"SET", key, value, "EX", "300"}) on a
    /// connected command connection (the same one for every command of a loop turn, the next one
    /// the turn after); `done` exactly once, from the loop. Fails at
    /// once (still from the loop) with nullopt when no connection is up. A command that times
    /// out gets nullopt and its connection is dropped and reconnected (a late reply is never
    /// delivered). An empty command, or a pub/sub one (SUBSCRIBE, UNSUBSCRIBE, MONITOR and their
    /// variants, which would turn the connection into a push channel), gets an error reply.
    void command(std::vector<std::string> args, reply_callback done);

    /// Subscribes the subscriber connection to `channels` (once; call before or after start()).
    /// `on_message` gets every message; `on_subscribed` is called each time the subscription is
    /// (re)established, the first time included.
    void subscribe(std::vector<std::string> channels, message_callback on_message,
                   store::unique_function<void()> on_subscribed);

    /// True when at least one command connection is usable.
    bool healthy() const;
    client_status status() const;

  private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace pm_agent::redis
