#pragma once
/// The seam between the transport (Beast HTTP/WebSocket sessions) and the api layer. The
/// transport parses bytes into http_request values and runs sockets and timers; the
/// application decides everything else. Nothing here includes Beast or Asio.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "pm_agent/api/http_types.hpp"

namespace pm_agent::api {

/// One accepted WebSocket connection as the application sees it (implemented by the transport).
/// Calls are only valid on the worker's loop thread.
class ws_connection {
  public:
    virtual ~ws_connection() = default;
    /// Queues one text frame. Returns false only when the outbound queue is full: the transport
    /// then cuts the connection off as too slow and the session gets on_closed(). A frame sent
    /// to a connection that is already closing is dropped (true).
    virtual bool send(std::string text) = 0;
    /// Lets the outbound queue hold `frames` more than agents.outbound_queue_max: what one loop
    /// turn may owe a peer that reads (an agent's burst of tasks and the acks for as many
    /// completions), which says nothing about its reading.
    virtual void allow_outbound(std::size_t frames) = 0;
    /// Sends a close frame after the frames already queued, then ends the connection.
    virtual void close(std::uint16_t code, std::string_view reason) = 0;
};

/// The application's side of one WebSocket connection (implemented by the api layer).
class ws_session {
  public:
    virtual ~ws_session() = default;
    /// Called once the handshake completed, before any message.
    virtual void on_open() = 0;
    /// One complete text message (at most agents.read_message_max bytes, valid UTF-8 checked by
    /// the session codec).
    virtual void on_message(std::string_view text) = 0;
    /// The peer sent a ping or a pong: it is alive. A text message is liveness too, but the
    /// session judges it in on_message (an agent's `heartbeat` message is a heartbeat of its own,
    /// not a second one).
    virtual void on_alive() = 0;
    /// The connection is gone; the connection object must not be used after this returns.
    virtual void on_closed() = 0;
};

/// What an upgrade request resolves to: a refusal (401, 404, ...) or a session to run.
struct upgrade_result {
    std::optional<http_response> refusal;
    std::unique_ptr<ws_session> session;
};

/// Receives an upgrade decision.
using upgrade_callback = std::function<void(upgrade_result)>;

/// Live numbers the transport owns and the application reports (/api/v1/stats, /ready).
struct transport_state {
    std::int64_t http_connections = 0;
    std::int64_t ws_connections = 0;
    bool draining = false;
};

/// Everything the transport calls. One instance per worker; loop thread only.
class application {
  public:
    virtual ~application() = default;
    /// Answers one HTTP request; `done` is called exactly once (inline for most routes, later
    /// for a long poll). `route` in the response names the route template for metrics.
    virtual void handle(http_request&& request, respond_fn done) = 0;
    /// The client of a request not answered yet (a long poll) closed its connection: end it
    /// without handing it anything. Its `done` is still called exactly once, soon (at once for
    /// a poll already waiting; one still being authenticated ends when it gets that far), and
    /// the transport drops that answer.
    virtual void abandon(std::uint64_t connection_id) = 0;
    /// Whether `request` may wait for an event (a long poll), asked before handle(): only then
    /// does the transport watch its client meanwhile, to call abandon() if it leaves. Any
    /// other request is answered within the store's or Redis' deadline.
    virtual bool may_wait_for_event(const http_request& request) const = 0;
    /// Decides a WebSocket upgrade request, through `done` exactly once: inline when the answer
    /// is known at once, later when it needs the store (an agent registered on another worker).
    /// On success the session talks through `connection`, which lives until `done` has been
    /// called and then until the session's on_closed(). `request` is only valid during the call.
    virtual void upgrade(const http_request& request, ws_connection& connection,
                         upgrade_callback done) = 0;
    /// Runs due timers (leases, scheduled tasks, long-poll deadlines) and returns when it wants
    /// to be called again.
    virtual std::chrono::steady_clock::time_point tick(
        std::chrono::steady_clock::time_point now) = 0;
    /// SIGTERM/SIGINT: /ready turns 503 and agents are told to go elsewhere.
    virtual void begin_drain() = 0;
};

}  // namespace pm_agent::api
