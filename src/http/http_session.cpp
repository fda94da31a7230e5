// One HTTP/1.1 connection: read a request within its limits and deadlines, hand it to the
// application, write the answer, repeat while keep-alive holds. Upgrades go to the WebSocket
// session. Every failure the client caused is answered with the API's JSON error shape.

#include <array>
#include <ctime>
#include <optional>
#include <span>

#include "http/transport_context.hpp"
#include "pm_agent/api/errors.hpp"
#include "pm_agent/http/request_framing.hpp"

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

/// Beast request -> plain api request in one pass over the header fields (the body is moved,
/// not copied), noting on the way what the framing checks need.
api::http_request to_api_request(bhttp::request<bhttp::string_body>& req, const std::string& peer,
                                 std::uint64_t connection_id, request_framing& framing) {
    api::http_request out;
    out.method = parse_method(req.method());
    if (out.method == api::http_method::other) {
        out.method_name = std::string(req.method_string());
    }
    const std::string_view target = origin_form(req.target());
    auto question = target.find('?');
    out.path = std::string(target.substr(0, question));
    if (out.path.empty()) {
        out.path = "/";
    }
    if (question != std::string_view::npos) {
        out.query = std::string(target.substr(question + 1));
    }
    framing.version = req.version();
    for (const auto& field : req) {
        switch (field.name()) {
            case bhttp::field::host:
                ++framing.host_fields;
                break;
            case bhttp::field::transfer_encoding:
                if (framing.transfer_encoding_fields++ == 0) {
                    framing.transfer_encoding = field.value();
                }
                break;
            case bhttp::field::authorization:
                out.authorization = std::string(field.value());
                break;
            case bhttp::field::content_type:
                out.content_type = std::string(field.value());
                break;
            case bhttp::field::unknown: {
                const auto name = field.name_string();
                if (beast::iequals(name, "X-Forwarded-For")) {
                    out.forwarded_for = std::string(field.value());
                } else if (beast::iequals(name, "Idempotency-Key")) {
                    out.idempotency_key = std::string(field.value());
                } else if (beast::iequals(name, "X-Request-ID")) {
                    out.request_id = std::string(field.value());
                } else if (beast::iequals(name, "X-Real-IP")) {
                    out.real_ip = std::string(field.value());
                }
                break;
            }
            default:
                break;
        }
    }
    out.websocket_upgrade = websocket::is_upgrade(req);
    out.peer_address = peer;
    out.connection_id = connection_id;
    out.body = std::move(req.body());
    return out;
}

/// The application's answer, awaited. Most routes answer inline; a long poll answers later and
/// wakes the session through `waiter`. Lives in the session's frame, which outlives every
/// callback: the session waits for the answer even when its client has left (abandon()
/// makes it come soon), and the service answers its waiters before the transport is torn down.
struct pending_answer {
    std::optional<api::http_response> response;
    asio::steady_timer* waiter = nullptr;
};

/// Watches the socket of a request the application answers later: the client closing it
/// means nobody waits for the answer any more. Shared with the wait handler, which may run
/// after the request finished.
struct peer_watch {
    bool gone = false;
    asio::steady_timer* waiter = nullptr;
};

/// Whether a readable socket was closed by the peer (as opposed to holding pipelined bytes).
bool peer_closed(tcp::socket& socket) {
    char byte = 0;
    const auto n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/// The application's answer, or nullopt when the client went away before it came (the
/// application was told to abandon the request, and its answer was dropped).
asio::awaitable<std::optional<api::http_response>> ask_application(transport_context& ctx,
                                                                   tcp::socket& socket,
                                                                   api::http_request request,
                                                                   pending_answer& pending) {
    pending.response.reset();
    const auto connection_id = request.connection_id;
    // Asked before the request is handed over: a long poll may wait for a store round trip
    // (its agent's authentication) before it waits for tasks, and must be watched from the start.
    const bool may_wait = ctx.app.may_wait_for_event(request);
    // Captures one pointer: fits std::function's small buffer, so no allocation per request.
    ctx.app.handle(std::move(request), [p = &pending](api::http_response&& response) {
        p->response = std::move(response);
        if (p->waiter != nullptr) {
            p->waiter->cancel();
        }
    });
    if (pending.response) {
        co_return std::move(pending.response);
    }
    asio::steady_timer waiter(co_await asio::this_coro::executor, clock::time_point::max());
    pending.waiter = &waiter;
    struct reset_waiter {
        pending_answer& p;
        ~reset_waiter() { p.waiter = nullptr; }
    } guard{pending};
    if (!may_wait) {
        // Answered within the store's (or Redis') deadline: not worth an epoll_ctl per request
        // to watch the client meanwhile.
        while (!pending.response) {
            co_await waiter.async_wait(k_tuple);
        }
        co_return std::move(pending.response);
    }
    auto watch = std::make_shared<peer_watch>();
    watch->waiter = &waiter;
    socket.async_wait(tcp::socket::wait_read, [watch, &socket](const beast::error_code& ec) {
        if (!ec && watch->waiter != nullptr && peer_closed(socket)) {
            watch->gone = true;
            watch->waiter->cancel();
        }
    });
    while (!pending.response && !watch->gone) {
        co_await waiter.async_wait(k_tuple);
    }
    watch->waiter = nullptr;
    if (watch->gone) {
        if (!pending.response) {
            ctx.app.abandon(connection_id);
        }
        // The answer still comes (at once, or when the poll gets to wait): `pending` must
        // outlive the callback that writes it.
        while (!pending.response) {
            co_await waiter.async_wait(k_tuple);
        }
        co_return std::nullopt;
    }
    beast::error_code ignored;
    socket.cancel(ignored);  // stop watching; the handler sees operation_aborted
    co_return std::move(pending.response);
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

std::string peer_address_of(tcp::socket& socket) {
    beast::error_code ec;
    auto endpoint = socket.remote_endpoint(ec);
    if (ec) {
        return {};
    }
    auto address = endpoint.address();
    if (address.is_v6() && address.to_v6().is_v4_mapped()) {
        address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
    }
    return address.to_string();
}

/// The session as the server's sweep and drain see it. Deadlines are enforced by the sweep (a
/// few times a second) instead of arming a timer per read and write: that keeps timer syscalls
/// off the request path.
class http_session_handle final : public drainable {
  public:
    http_session_handle(transport_context& ctx, tcp::socket& socket) : ctx_(ctx), socket_(socket) {
        ctx_.sessions.insert(this);
    }
    ~http_session_handle() override { ctx_.sessions.erase(this); }

    void drain() override {
        draining_ = true;
        if (idle_) {
            beast::error_code ignored;
            socket_.cancel(ignored);
        }
    }
    void sweep(clock::time_point now) override {
        if (now >= deadline_ && !expired_) {
            expired_ = true;
            beast::error_code ignored;
            socket_.cancel(ignored);
        }
    }

    /// Idle: waiting for the next request under the keep-alive deadline.
    void set_idle(std::chrono::seconds timeout) {
        idle_ = true;
        deadline_ = clock::now() + timeout;
    }
    /// Busy: reading or answering a request under the read deadline. A long poll waiting for
    /// the application is not limited (its own wait_s bounds it).
    void set_busy(std::chrono::seconds timeout) {
        idle_ = false;
        deadline_ = clock::now() + timeout;
    }
    void set_waiting() { deadline_ = clock::time_point::max(); }
    bool expired() const { return expired_; }
    bool draining() const { return draining_ || ctx_.state.draining; }

  private:
    transport_context& ctx_;
    tcp::socket& socket_;
    clock::time_point deadline_ = clock::time_point::max();
    bool idle_ = true;
    bool draining_ = false;
    bool expired_ = false;
};

/// The Date header's value (RFC 9110 §6.6.1: an origin server with a clock sends one),
/// formatted once a second per thread.
std::string_view http_date() {
    thread_local std::time_t formatted_second = -1;
    thread_local std::array<char, 40> text{};
    thread_local std::size_t length = 0;
    const std::time_t now = std::time(nullptr);
    if (now != formatted_second) {
        std::tm utc{};
        gmtime_r(&now, &utc);
        length = std::strftime(text.data(), text.size(), "%a, %d %b %Y %H:%M:%S GMT", &utc);
        formatted_second = now;
    }
    return {text.data(), length};
}

}  // namespace

asio::awaitable<beast::error_code> write_response(tcp::socket& socket, api::http_response& response,
                                                  unsigned http_version, bool keep_alive,
                                                  bool head_only, const std::string& request_id) {
    // The head is written by hand into one string and sent with the body in one gathered
    // write: Beast's fields and serializer cost several allocations per response.
    std::string head;
    head.reserve(224 + request_id.size());
    head += http_version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    head += std::to_string(response.status);
    head.push_back(' ');
    head += bhttp::obsolete_reason(static_cast<bhttp::status>(response.status));
    head += "\r\nDate: ";
    head += http_date();
    if (response.status != 204) {  // RFC 9110 §8.6, §15.3.5: a 204 has no content headers
        head += "\r\nContent-Type: ";
        head += response.content_type;
        head += "\r\nContent-Length: ";
        head += std::to_string(response.body.size());
    }
    for (const auto& [name, value] : response.headers) {
        head += "\r\n";
        head += name;
        head += ": ";
        head += value;
    }
    if (!request_id.empty()) {
        head += "\r\nX-Request-ID: ";
        head += request_id;
    }
    const bool keep = keep_alive && !response.close;
    if (!keep) {
        head += "\r\nConnection: close";
    } else if (http_version == 10) {
        head += "\r\nConnection: keep-alive";
    }
    head += "\r\n\r\n";
    std::array<asio::const_buffer, 2> buffers{asio::buffer(head), asio::buffer(response.body)};
    auto [ec, n] =
        co_await asio::async_write(socket, std::span(buffers.data(), head_only ? 1 : 2), k_tuple);
    co_return ec;
}

request_series& transport_context::series_for(std::string_view route, api::http_method method,
                                              unsigned status) {
    const request_series_key key{route.data(), method, status};
    auto it = series.find(key);
    if (it == series.end()) {
        const auto code = std::to_string(status);
        const auto method_label = api::to_string(method);
        request_series entry{&metrics.request_duration.with({route, method_label, code}),
                             &metrics.requests.with({route, method_label, code})};
        it = series.emplace(key, entry).first;
    }
    return it->second;
}

namespace {

/// Whether the buffered bytes may be a request whose client waits for "100 Continue" before
/// its body (RFC 9110 §10.1.1): a header that ends the buffer and names Expect. Checked on
/// the raw bytes so that other requests are read in one go, as before.
bool may_expect_continue(const beast::flat_buffer& buffer) {
    const std::string_view data(static_cast<const char*>(buffer.data().data()), buffer.size());
    if (!data.ends_with("\r\n\r\n")) {
        return false;
    }
    constexpr std::string_view k_name = "\nexpect:";
    for (std::size_t at = data.find('\n'); at != std::string_view::npos;
         at = data.find('\n', at + 1)) {
        if (beast::iequals(data.substr(at, k_name.size()), k_name)) {
            return true;
        }
    }
    return false;
}

/// Reads one request into `parser`; a client that asked for it is sent "100 Continue" once
/// its header has been accepted (a refused one gets the final answer instead).
asio::awaitable<beast::error_code> read_request(tcp::socket& socket, beast::flat_buffer& buffer,
                                                bhttp::request_parser<bhttp::string_body>& parser) {
    if (may_expect_continue(buffer)) {
        auto [ec, n] = co_await bhttp::async_read_header(socket, buffer, parser, k_tuple);
        if (ec || parser.is_done()) {
            co_return ec;
        }
        const auto& req = parser.get();
        if (req.version() >= 11 && beast::iequals(req[bhttp::field::expect], "100-continue")) {
            static constexpr std::string_view k_continue = "HTTP/1.1 100 Continue\r\n\r\n";
            auto [wec, wn] = co_await asio::async_write(socket, asio::buffer(k_continue), k_tuple);
            if (wec) {
                co_return wec;
            }
        }
    }
    auto [ec, n] = co_await bhttp::async_read(socket, buffer, parser, k_tuple);
    co_return ec;
}

/// Answers a request the session will not serve, in the API's error shape, for the caller to
/// close the connection after it: what else the client sent is never read.
asio::awaitable<void> write_refusal(transport_context& ctx, http_session_handle& handle,
                                    tcp::socket& socket, unsigned status, std::string_view message,
                                    unsigned version, api::http_method method,
                                    const std::string& request_id) {
    auto refusal = api::error_response(status, api::error_code_for_status(status), message);
    refusal.close = true;
    handle.set_busy(k_refusal_write_timeout);
    co_await write_response(socket, refusal, version, false, false, request_id);
    ctx.series_for(refusal.route, method, status).count->inc();
}

}  // namespace

asio::awaitable<void> run_http_session(transport_context& ctx, tcp::socket socket,
                                       bool over_limit) {
    const auto started = clock::now();
    const std::string peer = peer_address_of(socket);
    const std::uint64_t connection_id = ++ctx.connection_ids;
    ++ctx.state.http_connections;
    ctx.metrics.http_active.inc();
    http_session_handle handle(ctx, socket);
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

    pending_answer pending;
    beast::flat_buffer buffer;
    for (;;) {
        // Idle: wait for the first byte of the next request under the keep-alive deadline.
        if (buffer.size() == 0) {
            handle.set_idle(ctx.options.connection_timeout);
            if (handle.draining()) {
                break;
            }
            auto [ec, n] =
                co_await socket.async_read_some(buffer.prepare(k_first_read_bytes), k_tuple);
            if (ec) {
                break;  // closed by the peer, idle timeout or drain: nothing to answer
            }
            buffer.commit(n);
        }

        // Busy: the whole request (header + body) must arrive within read_timeout.
        handle.set_busy(ctx.options.read_timeout);
        bhttp::request_parser<bhttp::string_body> parser;
        parser.header_limit(static_cast<std::uint32_t>(ctx.options.header_limit_bytes));
        parser.body_limit(ctx.options.body_limit_bytes);
        const auto read_ec = co_await read_request(socket, buffer, parser);
        const auto request_started = clock::now();
        if (read_ec) {
            auto status =
                handle.expired() ? std::optional<unsigned>(408) : status_for_parse_error(read_ec);
            if (!status) {
                if (read_ec != bhttp::error::end_of_stream) {
                    ctx.metrics.connection_errors.inc();
                }
                break;
            }
            // The rest of an oversized or broken request is never read: answer and close.
            co_await write_refusal(ctx, handle, socket, *status, parse_error_message(*status), 11,
                                   api::http_method::other, {});
            break;
        }

        auto& req = parser.get();
        const unsigned version = req.version();
        const bool keep_alive = req.keep_alive();
        request_framing framing;
        auto request = to_api_request(req, peer, connection_id, framing);
        if (auto refusal = check_framing(framing)) {
            // Where this request's body ended is in doubt: answer and close.
            co_await write_refusal(ctx, handle, socket, refusal->status, refusal->message, version,
                                   request.method, request.request_id);
            break;
        }
        if (request.websocket_upgrade) {
            start_ws_session(ctx, std::move(socket), parser.release(), request, over_limit);
            co_return;
        }

        const auto method = request.method;
        const std::string request_id = request.request_id;
        api::http_response response;
        if (over_limit) {
            response = api::error_response(503, "unavailable",
                                           "connection limit reached (server.max_connections)");
            response.headers.emplace_back("Retry-After", "1");
            response.close = true;
        } else {
            handle.set_waiting();
            auto answer = co_await ask_application(ctx, socket, std::move(request), pending);
            if (!answer) {
                break;  // the client left while a long poll waited
            }
            response = std::move(*answer);
        }
        const auto status = response.status;
        const auto route = response.route;
        const bool keep = keep_alive && !response.close && !handle.draining();
        handle.set_busy(ctx.options.read_timeout);
        auto write_ec = co_await write_response(socket, response, version, keep,
                                                method == api::http_method::head, request_id);
        auto& series = ctx.series_for(route, method, status);
        series.duration->observe(
            std::chrono::duration<double>(clock::now() - request_started).count());
        series.count->inc();
        if (write_ec) {
            ctx.metrics.connection_errors.inc();
            break;
        }
        if (!keep || handle.expired()) {
            break;
        }
    }
    beast::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_send, ignored);
}

}  // namespace pm_agent::http
