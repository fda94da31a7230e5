#pragma once
// Private to the transport (src/http, src/ws): the state every session of one worker shares.
// This is the only header besides the session files that includes Beast.

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <chrono>
#include <functional>
#include <unordered_map>
#include <unordered_set>

#include "pm_agent/api/application.hpp"
#include "pm_agent/http/server.hpp"
#include "pm_agent/metrics/registry.hpp"

namespace pm_agent::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace websocket = boost::beast::websocket;  // only for is_upgrade()
using tcp = asio::ip::tcp;

/// Transport metrics, registered once per worker.
struct transport_metrics {
    explicit transport_metrics(metrics::registry& registry);

    metrics::gauge& http_active;
    metrics::gauge& ws_active;
    metrics::counter& connection_errors;
    metrics::counter& connections_rejected;
    metrics::histogram& http_connection_duration;
    metrics::histogram& ws_connection_duration;
    metrics::histogram_family& request_duration;  ///< route, method, code
    metrics::counter_family& requests;            ///< route, method, code
};

/// Something the drain must reach: an idle HTTP session or a WebSocket connection.
class drainable {
  public:
    virtual ~drainable() = default;
    /// Draining: finish what is in hand, then close (WebSocket: close code 1001).
    virtual void drain() = 0;
    /// Periodic pass: HTTP enforces its read/idle deadline; WebSocket pings, or closes a silent
    /// peer with 4000.
    virtual void sweep(std::chrono::steady_clock::time_point now) {}
};

/// Counters and histogram children of one (route, method, status), looked up once and cached:
/// the per-request cost is one hash probe.
struct request_series {
    metrics::histogram* duration;
    metrics::counter* count;
};

struct request_series_key {
    const char* route;  ///< the route template literal's address (templates are static)
    api::http_method method;
    unsigned status;
    bool operator==(const request_series_key&) const = default;
};

struct request_series_key_hash {
    std::size_t operator()(const request_series_key& k) const noexcept {
        return std::hash<const void*>{}(k.route) ^ (static_cast<std::size_t>(k.method) << 20) ^
               (static_cast<std::size_t>(k.status) << 4);
    }
};

/// Shared by the listener and all sessions of one worker; lives as long as the io_context.
struct transport_context {
    asio::io_context& ioc;
    const server_options& options;
    api::application& app;
    api::transport_state& state;
    transport_metrics metrics;
    std::unordered_set<drainable*> sessions{};    ///< every live HTTP session
    std::unordered_set<drainable*> websockets{};  ///< every live WebSocket connection
    /// Where every WebSocket read lands (one loop thread: one buffer serves all connections).
    std::vector<char> read_scratch = std::vector<char>(64 * 1024);

    std::unordered_map<request_series_key, request_series, request_series_key_hash> series{};
    std::uint64_t connection_ids = 0;  ///< last HTTP connection id handed out

    std::int64_t open_connections() const { return state.http_connections + state.ws_connections; }

    /// The metrics children for one answered request (created on first use).
    request_series& series_for(std::string_view route, api::http_method method, unsigned status);
};

/// Logs an exception that escaped a coroutine instead of losing it (never asio::detached).
void log_coroutine_exception(std::exception_ptr error, const char* what);

/// Runs one HTTP connection: requests, keep-alive, limits, and the hand-off to WebSocket.
/// `over_limit` connections are answered 503 (HTTP) or close 1013 (WebSocket) and closed.
asio::awaitable<void> run_http_session(transport_context& ctx, tcp::socket socket, bool over_limit);

/// Takes over an upgrade request: asks the application, then spawns the coroutine that answers
/// a refusal over HTTP, or accepts and serves the agent until it closes (`over_limit`: accept
/// and close at once with 1013). The HTTP session ends right after, so its frame and buffers
/// are not kept for the life of the agent.
void start_ws_session(transport_context& ctx, tcp::socket socket,
                      bhttp::request<bhttp::string_body> request, const api::http_request& plain,
                      bool over_limit);

/// Writes an api response on a plain HTTP stream (also used to refuse an upgrade).
asio::awaitable<beast::error_code> write_response(tcp::socket& socket, api::http_response& response,
                                                  unsigned http_version, bool keep_alive,
                                                  bool head_only, const std::string& request_id);

}  // namespace pm_agent::http
