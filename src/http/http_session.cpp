// One HTTP/1.1 connection: read a request within its limits and deadlines, hand it to the
// application, write the answer, repeat while keep-alive holds. Upgrades go to the WebSocket
// session. Every failure the client caused is answered with the API's JSON error shape.

#include <optional>

#include "http/transport_context.hpp"
#include "pm_agent/api/errors.hpp"

namespace pm_agent::http {
namespace {

using clock = std::chrono::steady_clock;
constexpr auto k_tuple = asio::as_tuple(asio::use_awaitable);
/// The first read of an idle connection asks for this much; the buffer only grows for a request
/// that needs more.
constexpr std::size_t k_first_read_bytes = 1024;
/// How long a refusal (431, 413, 503) may take to write before we just close.
constexpr auto k_refusal_write_timeout = std::chrono::seconds(2);

api::http_method parse_method(bhttp::verb verb) {
    switch (verb) {
        case bhttp::verb::get:
            return api::http_method::get;
        case bhttp::verb::head:
            return api::http_method::head;
        case bhttp::verb::post:
            return api::http_method::post;
        case bhttp::verb::put:
            return api::http_method::put;
        case bhttp::verb::patch:
            return api::http_method::patch;
        case bhttp::verb::delete_:
            return api::http_method::del;
        case bhttp::verb::options:
            return api::http_method::options;
        default:
            return api::http_method::other;
    }
}

std::string header_or_empty(const bhttp::request<bhttp::string_body>& req, std::string_view name) {
    auto it = req.find(name);
    return it == req.end() ? std::string() : std::string(it->value());
}

/// Beast request -> plain api request (the body is moved, not copied).
api::http_request to_api_request(bhttp::request<bhttp::string_body>& req, const std::string& peer) {
    api::http_request out;
    out.method = parse_method(req.method());
    out.method_text = std::string(req.method_string());
    std::string_view target = req.target();
    auto question = target.find('?');
    out.path = std::string(target.substr(0, question));
    if (question != std::string_view::npos) {
        out.query = std::string(target.substr(question + 1));
    }
    out.authorization = header_or_empty(req, "Authorization");
    out.idempotency_key = header_or_empty(req, "Idempotency-Key");
    out.forwarded_for = header_or_empty(req, "X-Forwarded-For");
    out.real_ip = header_or_empty(req, "X-Real-IP");
    out.request_id = header_or_empty(req, "X-Request-ID");
    out.content_type = header_or_empty(req, bhttp::to_string(bhttp::field::content_type));
    out.websocket_upgrade = websocket::is_upgrade(req);
    out.peer_address = peer;
    out.body = std::move(req.body());
    return out;
}

/// The application's answer, awaited: most routes answer inline; a long poll answers later and
/// wakes the session through a timer cancelled by the callback.
struct pending_answer {
    std::optional<api::http_response> response;
    asio::steady_timer* waiter = nullptr;
};

asio::awaitable<api::http_response> ask_application(transport_context& ctx,
                                                    api::http_request request) {
    auto pending = std::make_shared<pending_answer>();
    ctx.app.handle(std::move(request), [pending](api::http_response&& response) {
        pending->response = std::move(response);
        if (pending->waiter != nullptr) {
            pending->waiter->cancel();
        }
    });
    if (!pending->response) {
        asio::steady_timer waiter(co_await asio::this_coro::executor, clock::time_point::max());
        pending->waiter = &waiter;
        struct reset_waiter {
            pending_answer& p;
            ~reset_waiter() { p.waiter = nullptr; }
        } guard{*pending};
        while (!pending->response) {
            co_await waiter.async_wait(k_tuple);
        }
    }
    co_return std::move(*pending->response);
}

/// Parse failures the client caused, mapped to the status API.md gives them; nullopt when
/// there is nobody left to answer (peer gone, socket error).
std::optional<unsigned> status_for_parse_error(const beast::error_code& ec) {
    if (ec == bhttp::error::header_limit) {
        return 431;
    }
    if (ec == bhttp::error::body_limit) {
        return 413;
    }
    if (ec == beast::error::timeout) {
        return 408;
    }
    if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message) {
        return std::nullopt;
    }
    if (ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category()) {
        return 400;
    }
    return std::nullopt;
}

std::string_view parse_error_message(unsigned status) {
    switch (status) {
        case 431:
            return "request header exceeds server.header_limit_bytes";
        case 413:
            return "request body exceeds server.body_limit_bytes";
        case 408:
            return "request not received within server.read_timeout_s";
        default:
            return "malformed HTTP request";
    }
}

std::string peer_address_of(beast::tcp_stream& stream) {
    beast::error_code ec;
    auto endpoint = stream.socket().remote_endpoint(ec);
    if (ec) {
        return {};
    }
    auto address = endpoint.address();
    if (address.is_v6() && address.to_v6().is_v4_mapped()) {
        address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
    }
    return address.to_string();
}

/// Registered with the drain: an idle session is woken (its read cancelled) and exits; a busy
/// one finishes the request in hand and then closes.
class http_session_handle final : public drainable {
public:
    http_session_handle(transport_context& ctx, beast::tcp_stream& stream)
        : ctx_(ctx), stream_(stream) {
        ctx_.sessions.insert(this);
    }
    ~http_session_handle() override { ctx_.sessions.erase(this); }
    void drain() override {
        draining_ = true;
        if (idle_) {
            stream_.socket().cancel();
        }
    }
    void set_idle(bool idle) { idle_ = idle; }
    bool draining() const { return draining_ || ctx_.state.draining; }

private:
    transport_context& ctx_;
    beast::tcp_stream& stream_;
    bool idle_ = true;
    bool draining_ = false;
};

}  // namespace

asio::awaitable<beast::error_code> write_response(transport_context& ctx,
                                                  beast::tcp_stream& stream,
                                                  api::http_response& response,
                                                  unsigned http_version, bool keep_alive,
                                                  bool head_only, const std::string& request_id) {
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(response.status),
                                            http_version};
    res.set(bhttp::field::content_type, response.content_type);
    for (auto& [name, value] : response.headers) {
        res.set(name, value);
    }
    if (!request_id.empty()) {
        res.set("X-Request-ID", request_id);
    }
    res.keep_alive(keep_alive && !response.close);
    const auto body_size = response.body.size();
    if (!head_only) {
        res.body() = std::move(response.body);
    }
    res.content_length(body_size);
    stream.expires_after(ctx.options.read_timeout);
    beast::error_code ec;
    if (head_only) {
        bhttp::response_serializer<bhttp::string_body> serializer{res};
        auto [write_ec, n] = co_await bhttp::async_write_header(stream, serializer, k_tuple);
        ec = write_ec;
    } else {
        auto [write_ec, n] = co_await bhttp::async_write(stream, res, k_tuple);
        ec = write_ec;
    }
    co_return ec;
}

asio::awaitable<void> run_http_session(transport_context& ctx, tcp::socket socket,
                                       bool over_limit) {
    const auto started = clock::now();
    beast::tcp_stream stream(std::move(socket));
    const std::string peer = peer_address_of(stream);
    ++ctx.state.http_connections;
    ctx.metrics.http_active.inc();
    http_session_handle handle(ctx, stream);
    struct on_exit {
        transport_context& ctx;
        clock::time_point started;
        ~on_exit() {
            --ctx.state.http_connections;
            ctx.metrics.http_active.dec();
            ctx.metrics.http_connection_duration.observe(
                std::chrono::duration<double>(clock::now() - started).count());
        }
    } exit_guard{ctx, started};

    beast::flat_buffer buffer;
    for (;;) {
        // Idle: wait for the first byte of the next request under the keep-alive deadline.
        if (buffer.size() == 0) {
            handle.set_idle(true);
            if (handle.draining()) {
                break;
            }
            stream.expires_after(ctx.options.connection_timeout);
            auto [ec, n] = co_await stream.async_read_some(buffer.prepare(k_first_read_bytes),
                                                           k_tuple);
            if (ec) {
                break;  // closed by the peer, idle timeout or drain: nothing to answer
            }
            buffer.commit(n);
        }
        handle.set_idle(false);

        // Busy: the whole request (header + body) must arrive within read_timeout.
        bhttp::request_parser<bhttp::string_body> parser;
        parser.header_limit(static_cast<std::uint32_t>(ctx.options.header_limit_bytes));
        parser.body_limit(ctx.options.body_limit_bytes);
        stream.expires_after(ctx.options.read_timeout);
        auto [read_ec, read_n] = co_await bhttp::async_read(stream, buffer, parser, k_tuple);
        const auto request_started = clock::now();
        if (read_ec) {
            auto status = status_for_parse_error(read_ec);
            if (!status) {
                if (read_ec != bhttp::error::end_of_stream) {
                    ctx.metrics.connection_errors.inc();
                }
                break;
            }
            // The rest of an oversized or broken request is never read: answer and close.
            auto refusal = api::error_response(*status, api::error_code_for_status(*status),
                                               parse_error_message(*status));
            refusal.close = true;
            const std::string_view route = "unmatched";
            stream.expires_after(k_refusal_write_timeout);
            co_await write_response(ctx, stream, refusal, 11, false, false, {});
            ctx.metrics.requests.with({std::string(route), "other", std::to_string(*status)}).inc();
            break;
        }

        auto& req = parser.get();
        const unsigned version = req.version();
        const bool keep_alive = req.keep_alive();
        auto request = to_api_request(req, peer);
        if (request.websocket_upgrade) {
            co_await run_ws_session(ctx, std::move(stream), parser.release(), std::move(request),
                                    over_limit);
            co_return;
        }

        const std::string request_id = request.request_id;
        api::http_response response;
        if (over_limit) {
            response = api::error_response(503, "unavailable",
                                           "connection limit reached (server.max_connections)");
            response.headers.emplace_back("Retry-After", "1");
            response.close = true;
        } else {
            response = co_await ask_application(ctx, std::move(request));
        }
        const bool head_only = req.method() == bhttp::verb::head;
        const auto method = std::string(api::to_string(parse_method(req.method())));
        const auto status = std::to_string(response.status);
        const auto route = std::string(response.route);
        const bool keep = keep_alive && !response.close && !handle.draining();
        auto write_ec = co_await write_response(ctx, stream, response, version, keep, head_only,
                                                request_id);
        const double seconds = std::chrono::duration<double>(clock::now() - request_started).count();
        ctx.metrics.request_duration.with({route, method, status}).observe(seconds);
        ctx.metrics.requests.with({route, method, status}).inc();
        if (write_ec) {
            ctx.metrics.connection_errors.inc();
            break;
        }
        if (!keep) {
            break;
        }
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

}  // namespace pm_agent::http
