// One WebSocket connection to an agent, framed by our own sans-I/O codec (ws/frame_codec.hpp)
// on a plain socket after Beast parsed the upgrade request. Why not Beast's websocket::stream:
// it keeps ~2 KiB of buffers per connection even while idle, and writes one message per
// syscall. Here an idle agent waits for readability with no buffer at all (reads go into one
// scratch buffer per worker), and the single writer sends every queued frame in one gathered
// write. One reader (serve_ws) and at most one writer (write_loop) per connection.
// permessage-deflate (agents.permessage_deflate) is negotiated without context takeover, so no
// compression state is kept between messages either.

#include <array>
#include <vector>

#include "http/transport_context.hpp"
#include "pm_agent/api/errors.hpp"
#include "pm_agent/ws/frame_codec.hpp"

namespace pm_agent::http {
namespace {

using clock = std::chrono::steady_clock;
constexpr auto k_tuple = asio::as_tuple(asio::use_awaitable);
/// A peer that does not answer our close frame is cut off after this.
constexpr auto k_close_timeout = std::chrono::seconds(5);
/// API.md: an agent silent past heartbeat_timeout_s is closed with this application code.
constexpr std::uint16_t k_close_heartbeat_timeout = 4000;
constexpr std::uint16_t k_close_going_away = 1001;
constexpr std::uint16_t k_close_try_again_later = 1013;

/// One queued frame: its header kept apart from the payload, so a message is never copied to
/// prepend a header.
struct outbound {
    std::array<char, ws::k_max_frame_header> header{};
    std::uint8_t header_size = 0;
    std::string payload;
};

/// Text messages at least this long are compressed when permessage-deflate was negotiated;
/// shorter ones are not worth a deflate stream.
constexpr std::size_t k_deflate_min_bytes = 128;

outbound make_frame(ws::opcode op, std::string payload, bool compressed = false) {
    outbound frame;
    frame.header_size =
        static_cast<std::uint8_t>(ws::write_frame_header(frame.header.data(), op, payload.size()));
    if (compressed) {
        frame.header[0] = static_cast<char>(frame.header[0] | 0x40);  // RSV1: compressed
    }
    frame.payload = std::move(payload);
    return frame;
}

class ws_connection_impl final : public api::ws_connection,
                                 public drainable,
                                 public std::enable_shared_from_this<ws_connection_impl> {
  public:
    ws_connection_impl(transport_context& ctx, tcp::socket&& socket, bool deflate)
        : ctx_(ctx),
          socket_(std::move(socket)),
          decoder_(ctx.options.ws_read_message_max, deflate),
          last_rx_(clock::now()),
          next_ping_(last_rx_ + ctx.options.ws_ping_interval),
          deflate_(deflate) {}

    tcp::socket& socket() { return socket_; }
    ws::frame_decoder& decoder() { return decoder_; }

    bool send(std::string text) override {
        if (state_ != state::open) {
            return true;  // closing: nothing more reaches the peer
        }
        if (outbox_.size() >= ctx_.options.ws_outbound_queue_max + allowance_) {
            // A consumer that stops reading: cut it off; its session requeues its tasks.
            ctx_.metrics.connection_errors.inc();
            abort();
            return false;
        }
        if (deflate_ && text.size() >= k_deflate_min_bytes) {
            outbox_.push_back(make_frame(ws::opcode::text, ws::deflate_message(text), true));
        } else {
            outbox_.push_back(make_frame(ws::opcode::text, std::move(text)));
        }
        kick_writer();
        return true;
    }

    void allow_outbound(std::size_t frames) override { allowance_ = frames; }

    void close(std::uint16_t code, std::string_view reason) override {
        if (state_ != state::open) {
            return;
        }
        state_ = state::closing;
        close_deadline_ = clock::now() + k_close_timeout;
        outbox_.push_back(make_frame(ws::opcode::close, ws::close_payload(code, reason)));
        kick_writer();
    }

    void drain() override { close(k_close_going_away, "server draining"); }

    void sweep(clock::time_point now) override {
        if (state_ == state::closing && now >= close_deadline_) {
            abort();
            return;
        }
        if (state_ != state::open) {
            return;
        }
        if (now - last_rx_ >= ctx_.options.ws_silence_timeout) {
            close(k_close_heartbeat_timeout, "heartbeat timeout");
            return;
        }
        // Each connection pings on its own schedule (from when it connected), so ten thousand
        // agents are not all pinged in the same loop turn.
        if (now >= next_ping_) {
            next_ping_ = now + ctx_.options.ws_ping_interval;
            outbox_.push_back(make_frame(ws::opcode::ping, {}));
            kick_writer();
        }
    }

    /// One decoded frame from the peer. `session` is null on a connection refused with 1013,
    /// which only waits for the peer's close.
    void on_frame(const ws::frame_event& event, api::ws_session* session) {
        using kind = ws::frame_event::kind;
        last_rx_ = clock::now();
        switch (event.what) {
            case kind::text:
                if (session != nullptr) {
                    session->on_message(event.payload);
                }
                break;
            case kind::binary:
                close(ws::k_close_unsupported_data, "binary frames are not accepted");
                break;
            case kind::ping:
                if (state_ == state::open) {
                    outbox_.push_back(make_frame(ws::opcode::pong, std::string(event.payload)));
                    kick_writer();
                }
                if (session != nullptr) {
                    session->on_alive();
                }
                break;
            case kind::pong:
                if (session != nullptr) {
                    session->on_alive();
                }
                break;
            case kind::close:
                // Echo the close (RFC 6455 §5.5.1) unless we started it; then end the connection.
                peer_closed_ = true;
                if (state_ == state::open) {
                    close(event.code == ws::k_close_no_status ? ws::k_close_normal : event.code,
                          {});
                } else if (!writing_) {
                    abort();
                }
                break;
            case kind::error:
                peer_closed_ = true;  // nothing more will be read: close once our frame is out
                close(event.code, event.payload);
                break;
        }
    }

    /// Tears the TCP connection down at once; the pending wait and write complete with errors.
    void abort() {
        beast::error_code ignored;
        socket_.close(ignored);
        state_ = state::closed;
    }

    bool closed() const { return state_ == state::closed; }

  private:
    enum class state { open, closing, closed };

    void kick_writer() {
        if (writing_ || state_ == state::closed) {
            return;
        }
        writing_ = true;
        asio::co_spawn(socket_.get_executor(), write_loop(shared_from_this()),
                       [](std::exception_ptr e) { log_coroutine_exception(e, "ws writer"); });
    }

    static asio::awaitable<void> write_loop(std::shared_ptr<ws_connection_impl> self) {
        co_await self->flush();
        self->writing_ = false;
    }

    /// Writes everything queued, several frames per syscall.
    asio::awaitable<void> flush() {
        std::vector<asio::const_buffer> buffers;
        while (!outbox_.empty() && state_ != state::closed) {
            std::vector<outbound> batch;
            batch.swap(outbox_);  // producers may queue more while this batch is written
            buffers.clear();
            buffers.reserve(batch.size() * 2);
            bool has_close = false;
            for (const auto& frame : batch) {
                buffers.emplace_back(frame.header.data(), frame.header_size);
                if (!frame.payload.empty()) {
                    buffers.emplace_back(frame.payload.data(), frame.payload.size());
                }
                has_close |= (static_cast<unsigned char>(frame.header[0]) & 0x0F) ==
                             static_cast<unsigned char>(ws::opcode::close);
            }
            auto [ec, n] = co_await asio::async_write(socket_, buffers, k_tuple);
            if (ec) {
                abort();
                break;
            }
            if (has_close) {
                // Our close is out: when the peer already closed (or broke the protocol) we are
                // done; otherwise the read loop waits for its close (the sweep enforces a
                // deadline).
                if (peer_closed_) {
                    abort();
                }
                break;
            }
        }
    }

    transport_context& ctx_;
    tcp::socket socket_;
    ws::frame_decoder decoder_;
    std::vector<outbound> outbox_;
    clock::time_point last_rx_;
    clock::time_point next_ping_;
    clock::time_point close_deadline_{};
    state state_ = state::open;
    bool deflate_;
    bool writing_ = false;
    std::size_t allowance_ = 0;  // see allow_outbound()
    bool peer_closed_ = false;
};

/// The 101 answer to a valid upgrade request, or the HTTP refusal of a malformed one.
std::variant<std::string, api::http_response> handshake_response(
    const bhttp::request<bhttp::string_body>& request, bool deflate) {
    const auto version = request[bhttp::field::sec_websocket_version];
    if (version != "13") {
        auto refusal = api::error_response(426, "bad_request",
                                           "unsupported WebSocket version (13 is required)");
        refusal.headers.emplace_back("Sec-WebSocket-Version", "13");
        return refusal;
    }
    const auto key = request[bhttp::field::sec_websocket_key];
    if (key.size() != 24) {
        return api::error_response(400, "bad_request", "missing or malformed Sec-WebSocket-Key");
    }
    std::string out =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: ";
    out += ws::accept_key(key);
    if (deflate) {
        out += "\r\nSec-WebSocket-Extensions: ";
        out += ws::k_deflate_response;
    }
    out += "\r\n\r\n";
    return out;
}

/// Answers a refused upgrade over plain HTTP and closes.
asio::awaitable<void> refuse_upgrade(transport_context& ctx,
                                     std::shared_ptr<ws_connection_impl> conn,
                                     api::http_response refusal, unsigned version,
                                     std::string request_id) {
    refusal.close = true;
    co_await write_response(conn->socket(), refusal, version, false, false, request_id);
    beast::error_code ignored;
    conn->socket().shutdown(tcp::socket::shutdown_send, ignored);
}

/// Serves an accepted agent connection until it closes. This frame lives as long as the agent,
/// so it holds only the connection and the session.
asio::awaitable<void> serve_ws(transport_context& ctx, std::shared_ptr<ws_connection_impl> conn,
                               std::string handshake, std::unique_ptr<api::ws_session> session) {
    auto& socket = conn->socket();
    {
        auto [ec, n] = co_await asio::async_write(socket, asio::buffer(handshake), k_tuple);
        if (ec) {
            ctx.metrics.connection_errors.inc();
            co_return;
        }
        std::string().swap(handshake);
    }
    if (!session) {
        // Past max_connections: the handshake only serves to say "try again later" (1013).
        conn->close(k_close_try_again_later, "connection limit reached");
    }
    const auto started = clock::now();
    ++ctx.state.ws_connections;
    ctx.metrics.ws_active.inc();
    ctx.websockets.insert(conn.get());
    if (session) {
        session->on_open();
    }
    if (ctx.state.draining) {
        conn->drain();
    }
    beast::error_code ec;
    socket.non_blocking(true, ec);
    while (!conn->closed()) {
        // Idle: wait for readability without holding a buffer.
        auto [wait_ec] = co_await socket.async_wait(tcp::socket::wait_read, k_tuple);
        if (wait_ec) {
            break;
        }
        const std::size_t n = socket.read_some(asio::buffer(ctx.read_scratch), ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) {
            continue;
        }
        if (ec) {
            if (ec != asio::error::eof && ec != asio::error::connection_reset) {
                ctx.metrics.connection_errors.inc();
            }
            break;
        }
        conn->decoder().feed(ctx.read_scratch.data(), n, [&](const ws::frame_event& event) {
            conn->on_frame(event, session.get());
        });
    }
    conn->abort();
    if (session) {
        session->on_closed();
    }
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
    const bool deflate = ctx.options.ws_permessage_deflate &&
                         ws::accepts_deflate_offer(request[bhttp::field::sec_websocket_extensions]);
    auto conn = std::make_shared<ws_connection_impl>(ctx, std::move(socket), deflate);
    auto on_error = [](std::exception_ptr e) { log_coroutine_exception(e, "ws session"); };
    auto handshake = handshake_response(request, deflate);
    if (auto* refusal = std::get_if<api::http_response>(&handshake)) {
        asio::co_spawn(
            ctx.ioc,
            refuse_upgrade(ctx, conn, std::move(*refusal), request.version(), plain.request_id),
            on_error);
        return;
    }
    if (over_limit) {
        asio::co_spawn(
            ctx.ioc,
            serve_ws(ctx, std::move(conn), std::move(std::get<std::string>(handshake)), nullptr),
            on_error);
        return;
    }
    // The decision may need the store (an agent registered on another worker); the socket
    // waits meanwhile, owned by this callback.
    ctx.app.upgrade(plain, *conn,
                    [&ctx, conn, version = request.version(), request_id = plain.request_id,
                     accept = std::move(std::get<std::string>(handshake)),
                     on_error](api::upgrade_result decision) mutable {
                        if (decision.refusal) {
                            asio::co_spawn(ctx.ioc,
                                           refuse_upgrade(ctx, conn, std::move(*decision.refusal),
                                                          version, request_id),
                                           on_error);
                            return;
                        }
                        asio::co_spawn(ctx.ioc,
                                       serve_ws(ctx, std::move(conn), std::move(accept),
                                                std::move(decision.session)),
                                       on_error);
                    });
}

}  // namespace pm_agent::http
