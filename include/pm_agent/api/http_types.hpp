#pragma once
/// Plain HTTP request/response values exchanged between the transport (Beast) and the api
/// layer, so that routing, auth and the JSON codec compile and test without Beast or Asio.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pm_agent::api {

/// The methods the API uses; anything else is `other` and answered 405 where a route exists.
enum class http_method : std::uint8_t { get, head, post, put, patch, del, options, other };

std::string_view to_string(http_method m);

/// One parsed request. Only the headers the API reads are kept, already extracted by the
/// transport, so a handler never walks a header list.
struct http_request {
    http_method method = http_method::get;
    std::string method_name;  ///< the method as sent, kept only when `method` is `other`
    std::string path;   ///< decoded path without the query
    std::string query;  ///< raw query string without '?'
    std::string authorization;
    std::string idempotency_key;
    std::string forwarded_for;  ///< X-Forwarded-For, as sent
    std::string real_ip;        ///< X-Real-IP, as sent
    std::string request_id;     ///< X-Request-ID, echoed back
    std::string content_type;
    std::string body;
    std::string peer_address;         ///< the TCP peer, without port
    std::uint64_t connection_id = 0;  ///< the transport's id of the connection (for abandon)
    bool websocket_upgrade = false;
};

/// One answer. `body` is sent as is with `content_type`.
struct http_response {
    unsigned status = 200;
    std::string body;
    std::string content_type = "application/json";
    std::vector<std::pair<std::string, std::string>> headers;
    bool close = false;  ///< close the connection after this response
    /// Route template for metrics labels (never the raw path): a string literal.
    std::string_view route = "unmatched";
};

/// Completion of an asynchronous handler; called exactly once, possibly before `handle` returns.
using respond_fn = std::function<void(http_response&&)>;

}  // namespace pm_agent::api
