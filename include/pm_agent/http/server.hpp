#pragma once
/// The worker's network front: one io_context on the calling thread, an acceptor, HTTP/1.1
/// sessions and WebSocket sessions (Beast), signal handling and the graceful drain. Everything
/// above the bytes is the api::application's business.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace pm_agent::api {
class application;
struct transport_state;
}  // namespace pm_agent::api
namespace pm_agent::metrics {
class registry;
}
namespace boost::asio {
class io_context;
}

namespace pm_agent::http {

/// Transport limits and timings (filled from config by the wiring in main.cpp).
struct server_options {
    std::string host = "127.0.0.1";
    std::uint16_t port = 8000;
    bool reuse_port = false;  ///< SO_REUSEPORT, for several worker processes on one port
    int max_connections = 10000;
    std::chrono::seconds connection_timeout{60};  ///< idle keep-alive connection
    std::chrono::seconds read_timeout{10};        ///< whole request header + body
    std::size_t header_limit_bytes = 8192;
    std::size_t body_limit_bytes = 1048576;
    std::chrono::seconds shutdown_timeout{25};
    // WebSocket
    std::size_t ws_read_message_max = 1048576;
    std::size_t ws_outbound_queue_max = 256;
    std::chrono::seconds ws_ping_interval{15};
    std::chrono::seconds ws_silence_timeout{45};
    bool ws_permessage_deflate = false;  ///< offer RFC 7692 compression to agents that ask
};

/// One worker's server. Construct, bind(), then run() on the thread that owns the loop.
class server {
  public:
    /// `ioc` is the worker's loop (shared with its database and Redis clients); it must be
    /// single-threaded and outlive the server.
    server(server_options options, api::application& app, api::transport_state& state,
           metrics::registry& registry, boost::asio::io_context& ioc);
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    /// Binds and listens; returns the bound port (useful with port 0). Throws std::system_error
    /// with a readable message at start-up when the address cannot be bound.
    std::uint16_t bind();

    /// Runs the loop until SIGTERM/SIGINT has drained the worker (or shutdown_timeout passed).
    void run();

  private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace pm_agent::http
