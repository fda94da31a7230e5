#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "net.hpp"

namespace pm_agent::bench {

/// One answer of the server, or the transport error that prevented it.
struct http_answer {
    beast::error_code ec;
    unsigned status = 0;
    std::string body;
    /// Seconds from `Retry-After`, 0 when absent.
    double retry_after_s = 0;
};

/// One keep-alive HTTP/1.1 connection, one request at a time. Connects on first use and again
/// after the server closed it or a transport error.
class http_client {
  public:
    http_client(asio::io_context& io, target& server, std::string bearer);
    ~http_client();
    http_client(const http_client&) = delete;
    http_client& operator=(const http_client&) = delete;

    /// POSTs `body` (JSON) to `path`.
    asio::awaitable<http_answer> post(std::string_view path, std::string body);
    void set_bearer(std::string bearer);

  private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace pm_agent::bench
