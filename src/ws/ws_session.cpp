// One WebSocket connection to an agent. One reader (this coroutine) and one writer (a coroutine
// started when frames are queued and ended when the queue is empty), so at most one write —
// message, ping or close — is in flight (beast#1207). Nothing is buffered while the agent is idle.

#include <vector>

#include "http/transport_context.hpp"
#include "pm_agent/api/errors.hpp"

namespace pm_agent::http {
namespace {

using clock = std::chrono::steady_clock;
constexpr auto k_tuple = asio::as_tuple(asio::use_awaitable);
/// Upgrade handshake and close handshake deadline: a peer that never answers our close frame is
/// cut off after this.
constexpr auto k_handshake_timeout = std::chrono::seconds(5);
/// API.md: an agent silent past heartbeat_timeout_s is closed with this application code.
constexpr std::uint16_t k_close_heartbeat_timeout = 4000;

class ws_connection_impl final : public api::ws_connection,
                                 public drainable,
                                 public std::enable_shared_from_this<ws_connection_impl> {
public:
    ws_connection_impl(transport_context& ctx, tcp::socket&& socket)
        : ctx_(ctx), ws_(std::move(socket)), last_rx_(clock::now()) {}

    websocket::stream<tcp::socket>& stream() { return ws_; }

    bool send(std::string text) override {
        if (closed_ || close_request_) {
            return false;
        }
        if (outbox_.size() - outbox_head_ >= ctx_.options.ws_outbound_queue_max) {
            // A consumer that stops reading: cut it off; its session requeues its tasks.
            ctx_.metrics.connection_errors.inc();
            abort();
            return false;
        }
        outbox_.push_back(std::move(text));
        kick_writer();
        return true;
    }

    void close(std::uint16_t code, std::string_view reason) override {
        if (closed_ || close_request_) {
            return;
        }
        close_request_ = websocket::close_reason(static_cast<websocket::close_code>(code), reason);
        kick_writer();
    }

    void drain() override { close(websocket::close_code::going_away, "server draining"); }

    void sweep(clock::time_point now) override {
        if (closed_ || close_request_) {
            return;
        }
        if (now - last_rx_ >= ctx_.options.ws_silence_timeout) {
            close(k_close_heartbeat_timeout, "heartbeat timeout");
            return;
        }
        ping_due_ = true;
        kick_writer();
    }

    void mark_alive() { last_rx_ = clock::now(); }

    /// Tears the TCP connection down at once; the pending read and write complete with errors.
    void abort() {
        beast::error_code ignored;
        ws_.next_layer().close(ignored);
        closed_ = true;
    }

    void set_closed() { closed_ = true; }

private:
    void kick_writer() {
        if (writing_ || closed_) {
            return;
        }
        writing_ = true;
        asio::co_spawn(ws_.get_executor(), write_loop(shared_from_this()),
                       [](std::exception_ptr e) { log_coroutine_exception(e, "ws writer"); });
    }

    static asio::awaitable<void> write_loop(std::shared_ptr<ws_connection_impl> self) {
        co_await self->drain_outbox();
        self->writing_ = false;
    }

    asio::awaitable<void> drain_outbox() {
        while (!closed_) {
            if (outbox_head_ < outbox_.size()) {
                std::string frame = std::move(outbox_[outbox_head_++]);
                if (outbox_head_ == outbox_.size()) {
                    outbox_.clear();
                    outbox_head_ = 0;
                }
                auto [ec, n] = co_await ws_.async_write(asio::buffer(frame), k_tuple);
                if (ec) {
                    abort();
                    break;
                }
                continue;
            }
            if (close_request_) {
                auto reason = *close_request_;
                auto [ec] = co_await ws_.async_close(reason, k_tuple);
                abort();
                break;
            }
            if (ping_due_) {
                ping_due_ = false;
                auto [ec] = co_await ws_.async_ping({}, k_tuple);
                if (ec) {
                    abort();
                    break;
                }
                continue;
            }
            break;
        }
        // An idle agent keeps no outbound buffer.
        std::vector<std::string>().swap(outbox_);
        outbox_head_ = 0;
    }

    transport_context& ctx_;
    websocket::stream<tcp::socket> ws_;
    std::vector<std::string> outbox_;
    std::size_t outbox_head_ = 0;
    std::optional<websocket::close_reason> close_request_;
    clock::time_point last_rx_;
    bool writing_ = false;
    bool ping_due_ = false;
    bool closed_ = false;
};

void configure(websocket::stream<tcp::socket>& ws, const server_options& options) {
    websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = k_handshake_timeout;
    timeouts.idle_timeout = websocket::stream_base::none();  // our own sweep pings and times out
    timeouts.keep_alive_pings = false;
    ws.set_option(timeouts);
    ws.read_message_max(options.ws_read_message_max);
    ws.auto_fragment(false);
    ws.text(true);
    if (options.ws_permessage_deflate) {
        websocket::permessage_deflate deflate;
        deflate.server_enable = true;
        ws.set_option(deflate);
    }
}

}  // namespace

namespace {

/// Answers a refused upgrade over plain HTTP and closes.
asio::awaitable<void> refuse_upgrade(transport_context& ctx,
                                     std::shared_ptr<ws_connection_impl> conn,
                                     api::http_response refusal, unsigned version,
                                     std::string request_id) {
    auto& socket = conn->stream().next_layer();
    refusal.close = true;
    co_await write_response(ctx, socket, refusal, version, false, false, request_id);
    beast::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_send, ignored);
}

/// Past max_connections: complete the handshake only to say "try again later" (1013).
asio::awaitable<void> refuse_over_limit(std::shared_ptr<ws_connection_impl> conn,
                                        bhttp::request<bhttp::string_body> request) {
    auto& ws = conn->stream();
    auto [ec] = co_await ws.async_accept(request, k_tuple);
    if (!ec) {
        auto [close_ec] = co_await ws.async_close(
            websocket::close_reason(websocket::close_code::try_again_later,
                                    "connection limit reached"),
            k_tuple);
    }
}

/// Serves an accepted agent connection until it closes. This frame lives as long as the agent:
/// it holds only the connection, the session and the read loop's empty buffer.
asio::awaitable<void> serve_ws(transport_context& ctx, std::shared_ptr<ws_connection_impl> conn,
                               bhttp::request<bhttp::string_body> request,
                               std::unique_ptr<api::ws_session> session) {
    auto& ws = conn->stream();
    auto [accept_ec] = co_await ws.async_accept(request, k_tuple);
    if (accept_ec) {
        ctx.metrics.connection_errors.inc();
        co_return;
    }
    request = {};  // the upgrade request is not kept for the life of the connection

    const auto started = clock::now();
    ++ctx.state.ws_connections;
    ctx.metrics.ws_active.inc();
    ctx.websockets.insert(conn.get());
    ws.control_callback([raw = conn.get(), s = session.get()](websocket::frame_type, std::string_view) {
        raw->mark_alive();
        s->on_alive();
    });
    session->on_open();
    if (ctx.state.draining) {
        conn->drain();
    }
    for (;;) {
        beast::flat_buffer buffer;
        auto [ec, n] = co_await ws.async_read(buffer, k_tuple);
        if (ec) {
            if (ec != websocket::error::closed && ec != asio::error::operation_aborted &&
                ec != asio::error::eof) {
                ctx.metrics.connection_errors.inc();
            }
            break;
        }
        conn->mark_alive();
        session->on_alive();
        if (!ws.got_text()) {
            conn->close(websocket::close_code::unknown_data, "binary frames are not accepted");
            continue;
        }
        const auto data = buffer.cdata();
        session->on_message(
            std::string_view(static_cast<const char*>(data.data()), data.size()));
    }
    conn->set_closed();
    ws.control_callback();
    session->on_closed();
    ctx.websockets.erase(conn.get());
    --ctx.state.ws_connections;
    ctx.metrics.ws_active.dec();
    ctx.metrics.ws_connection_duration.observe(
        std::chrono::duration<double>(clock::now() - started).count());
}

}  // namespace

void start_ws_session(transport_context& ctx, tcp::socket socket,
                      bhttp::request<bhttp::string_body> request, const api::http_request& plain,
                      bool over_limit) {
    auto conn = std::make_shared<ws_connection_impl>(ctx, std::move(socket));
    auto on_error = [](std::exception_ptr e) { log_coroutine_exception(e, "ws session"); };
    configure(conn->stream(), ctx.options);
    if (over_limit) {
        asio::co_spawn(ctx.ioc, refuse_over_limit(conn, std::move(request)), on_error);
        return;
    }
    auto decision = ctx.app.upgrade(plain, *conn);
    if (decision.refusal) {
        asio::co_spawn(ctx.ioc,
                       refuse_upgrade(ctx, conn, std::move(*decision.refusal), request.version(),
                                      plain.request_id),
                       on_error);
        return;
    }
    asio::co_spawn(ctx.ioc,
                   serve_ws(ctx, std::move(conn), std::move(request), std::move(decision.session)),
                   on_error);
}

}  // namespace pm_agent::http
