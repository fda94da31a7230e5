// The HTTP side of submitters and REST agents on Beast.

#include "http_client.hpp"

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <charconv>

namespace pm_agent::bench {

namespace http = beast::http;

struct http_client::impl {
    impl(asio::io_context& io, target& s, std::string b)
        : socket(io), server(s), bearer(std::move(b)) {}

    tcp::socket socket;
    target& server;
    std::string bearer;
    beast::flat_buffer buffer;
    bool connected = false;

    void drop() {
        beast::error_code ignored;
        socket.close(ignored);
        connected = false;
        buffer.clear();
    }
};

http_client::http_client(asio::io_context& io, target& server, std::string bearer)
    : impl_(std::make_unique<impl>(io, server, std::move(bearer))) {}

http_client::~http_client() = default;

void http_client::set_bearer(std::string bearer) {
    impl_->bearer = std::move(bearer);
}

asio::awaitable<http_answer> http_client::post(std::string_view path, std::string body) {
    auto& s = *impl_;
    http_answer answer;
    if (!s.connected) {
        s.socket = tcp::socket(s.socket.get_executor());
        if (auto ec = co_await connect_to(s.socket, s.server)) {
            answer.ec = ec;
            s.drop();
            co_return answer;
        }
        s.connected = true;
    }
    http::request<http::string_body> request{http::verb::post, path, 11};
    request.set(http::field::host, s.server.host_header);
    request.set(http::field::content_type, "application/json");
    if (!s.bearer.empty()) {
        request.set(http::field::authorization, "Bearer " + s.bearer);
    }
    request.body() = std::move(body);
    request.prepare_payload();
    auto [write_ec, written] = co_await http::async_write(s.socket, request, k_tuple);
    if (write_ec) {
        answer.ec = write_ec;
        s.drop();
        co_return answer;
    }
    http::response<http::string_body> response;
    auto [read_ec, read] = co_await http::async_read(s.socket, s.buffer, response, k_tuple);
    if (read_ec) {
        answer.ec = read_ec;
        s.drop();
        co_return answer;
    }
    answer.status = response.result_int();
    if (auto it = response.find(http::field::retry_after); it != response.end()) {
        const auto value = it->value();
        double seconds = 0;
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
        if (ec == std::errc()) {
            answer.retry_after_s = seconds;
        }
    }
    if (!response.keep_alive()) {
        s.drop();
    }
    answer.body = std::move(response.body());
    co_return answer;
}

}  // namespace pm_agent::bench
