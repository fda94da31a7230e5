// A WebSocket agent of API.md: register on /ws/agent, `ready` with all its slots, then complete
// every pushed task after the think time and wait for its `ack`. Dispatch latency comes from the
// submit stamp in the payload; end-to-end latency is stamp → ack.

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <deque>
#include <unordered_map>
#include <vector>

#include "json_text.hpp"
#include "load.hpp"

namespace pm_agent::bench {
namespace {

namespace websocket = beast::websocket;
namespace json = boost::json;
using clock = std::chrono::steady_clock;

/// A server that neither registers nor refuses an agent by then has failed the set-up.
constexpr auto k_setup_timeout = std::chrono::seconds(30);

class ws_agent : public std::enable_shared_from_this<ws_agent> {
  public:
    ws_agent(load_context& ctx, int index)
        : ctx_(ctx), index_(index), ws_(ctx.io), setup_timer_(ctx.io), think_timer_(ctx.io) {}

    /// `self` keeps the agent alive for as long as the coroutine runs.
    asio::awaitable<void> run(std::shared_ptr<ws_agent> self) {
        setup_timer_.expires_after(k_setup_timeout);
        setup_timer_.async_wait([this, self](beast::error_code ec) {
            if (!ec && !set_up_) {
                ctx_.book.error("ws_setup_timeout");
                abort();
            }
        });
        const auto failure = co_await set_up();
        set_up_ = true;
        setup_timer_.cancel();
        if (!failure.empty()) {
            ctx_.book.error(failure);
            agent_setup_done(ctx_, false);
            co_return;
        }
        agent_setup_done(ctx_, true);
        send(R"({"type":"ready","slots":)" + std::to_string(ctx_.opt.concurrency) + "}");
        if (ctx_.opt.heartbeat_ms > 0) {
            asio::co_spawn(ctx_.io, heartbeat_loop(self), report_exception);
        }
        co_await read_loop();
    }

  private:
    /// Connect, upgrade, register; returns the error kind, empty on success.
    asio::awaitable<std::string> set_up() {
        if (auto ec = co_await connect_to(ws_.next_layer(), ctx_.server)) {
            co_return "ws_connect: " + ec.message();
        }
        websocket::stream_base::timeout timeouts{};
        timeouts.handshake_timeout = k_setup_timeout;
        timeouts.idle_timeout = websocket::stream_base::none();
        timeouts.keep_alive_pings = false;
        ws_.set_option(timeouts);
        // Masking keys need no cryptographic strength against our own server.
        ws_.secure_prng(false);
        ws_.auto_fragment(false);
        if (!ctx_.opt.registration_token.empty()) {
            ws_.set_option(websocket::stream_base::decorator(
                [token = ctx_.opt.registration_token](websocket::request_type& request) {
                    request.set(beast::http::field::authorization, "Bearer " + token);
                }));
        }
        auto [handshake_ec] =
            co_await ws_.async_handshake(ctx_.server.host_header, "/ws/agent", k_tuple);
        if (handshake_ec) {
            co_return "ws_handshake: " + handshake_ec.message();
        }
        std::string hello = R"({"type":"register","name":"bench-)" + std::to_string(index_) +
                            R"(","max_concurrency":)" + std::to_string(ctx_.opt.concurrency) + "}";
        auto [write_ec, written] = co_await ws_.async_write(asio::buffer(hello), k_tuple);
        if (write_ec) {
            co_return "ws_write: " + write_ec.message();
        }
        auto [read_ec, read] = co_await ws_.async_read(buffer_, k_tuple);
        if (read_ec) {
            co_return "ws_register_read: " + closed_text(read_ec);
        }
        const auto data = buffer_.cdata();
        boost::system::error_code ec;
        auto answer =
            json::parse(std::string_view(static_cast<const char*>(data.data()), data.size()), ec);
        buffer_.consume(buffer_.size());
        if (ec || string_at(answer, "type") != std::string_view("registered")) {
            auto code = ec ? std::nullopt : string_at(answer, "code");
            co_return "ws_register_refused: " + std::string(code.value_or("bad answer"));
        }
        co_return std::string();
    }

    /// A read error, with the server's close code and reason when it closed the WebSocket.
    std::string closed_text(const beast::error_code& ec) const {
        if (ec != websocket::error::closed) {
            return ec.message();
        }
        const auto& reason = ws_.reason();
        return "closed by server, code " + std::to_string(reason.code) +
               (reason.reason.empty() ? std::string()
                                      : " (" + std::string(reason.reason.c_str()) + ")");
    }

    asio::awaitable<void> read_loop() {
        while (!ctx_.stopping) {
            auto [ec, n] = co_await ws_.async_read(buffer_, k_tuple);
            if (ec) {
                if (!ctx_.stopping) {
                    ctx_.book.error("ws_read: " + closed_text(ec));
                }
                break;
            }
            const auto data = buffer_.cdata();
            on_frame(std::string_view(static_cast<const char*>(data.data()), data.size()));
            buffer_.consume(buffer_.size());
        }
        closed_ = true;
        // Whatever this agent held will never be acknowledged to it.
        ctx_.book.agent_in_flight -= static_cast<std::int64_t>(in_flight_.size());
        in_flight_.clear();
    }

    void on_frame(std::string_view text) {
        const std::int64_t now = now_ns();
        unsigned char scratch[4096];
        json::monotonic_resource arena(scratch, sizeof(scratch));
        boost::system::error_code ec;
        auto frame = json::parse(text, ec, &arena);
        const auto type = ec ? std::nullopt : string_at(frame, "type");
        if (!type) {
            ctx_.book.error("ws_bad_frame");
            return;
        }
        if (*type == "task") {
            on_task(frame.get_object()["task"], now);
        } else if (*type == "ack") {
            on_ack(frame, now);
        } else if (*type == "heartbeat_ack") {
            const auto* seq = frame.get_object().if_contains("seq");
            auto it = seq != nullptr && seq->is_int64() ? heartbeats_.find(seq->get_int64())
                                                        : heartbeats_.end();
            if (it == heartbeats_.end()) {
                ctx_.book.error("ws_heartbeat_ack_unknown_seq");
                return;
            }
            ctx_.book.heartbeat_ns.push_back(now - it->second);
            heartbeats_.erase(it);
        } else if (*type == "error") {
            ctx_.book.error("ws_error_" + std::string(string_at(frame, "code").value_or("?")));
            if (auto id = string_at(frame, "task_id")) {
                forget(*id);
            }
        } else if (*type == "cancel") {
            ctx_.book.error("ws_cancel");
            if (auto id = string_at(frame, "task_id")) {
                forget(*id);
            }
        } else {
            ctx_.book.error("ws_frame_" + std::string(*type));
        }
    }

    void on_task(const json::value& task, std::int64_t now) {
        auto id = string_at(task, "id");
        auto stamp = submit_stamp(task);
        if (!id || !stamp) {
            ctx_.book.error("ws_bad_task");
            return;
        }
        ctx_.book.dispatch_ns.push_back(now - *stamp);
        ctx_.book.delivered(*id);
        std::string key(*id);
        if (!in_flight_.emplace(key, *stamp).second) {
            return;  // delivered twice to this agent while held: the ledger has counted it
        }
        ++ctx_.book.agent_in_flight;
        if (ctx_.opt.think_ms <= 0) {
            complete(key);
            return;
        }
        const auto due =
            clock::now() + std::chrono::duration_cast<clock::duration>(
                               std::chrono::duration<double, std::milli>(ctx_.opt.think_ms));
        thinking_.push_back({due, std::move(key)});
        if (!think_loop_running_) {
            think_loop_running_ = true;
            asio::co_spawn(ctx_.io, think_loop(shared_from_this()), report_exception);
        }
    }

    /// Tasks finish in arrival order (one think time for all), so one timer serves them all.
    asio::awaitable<void> think_loop([[maybe_unused]] std::shared_ptr<ws_agent> self) {
        while (!thinking_.empty() && !closed_) {
            think_timer_.expires_at(thinking_.front().due);
            co_await think_timer_.async_wait(k_tuple);
            const auto now = clock::now();
            while (!thinking_.empty() && thinking_.front().due <= now) {
                if (in_flight_.count(thinking_.front().id) > 0) {
                    complete(thinking_.front().id);
                }
                thinking_.pop_front();
            }
        }
        think_loop_running_ = false;
    }

    void complete(const std::string& id) {
        std::string frame = R"({"type":"complete","task_id":)";
        append_quoted(frame, id);
        frame.push_back('}');
        send(std::move(frame));
    }

    void on_ack(const json::value& frame, std::int64_t now) {
        auto id = string_at(frame, "task_id");
        auto it = id ? in_flight_.find(std::string(*id)) : in_flight_.end();
        if (it == in_flight_.end()) {
            ctx_.book.error("ws_ack_unknown_task");
            return;
        }
        const auto status = string_at(frame, "status").value_or("?");
        if (status == "succeeded") {
            ctx_.book.e2e_ns.push_back(now - it->second);
            ctx_.book.acknowledged(*id);
        } else {
            ctx_.book.error("ws_ack_status_" + std::string(status));
        }
        in_flight_.erase(it);
        --ctx_.book.agent_in_flight;
    }

    void forget(std::string_view id) {
        if (in_flight_.erase(std::string(id)) > 0) {
            --ctx_.book.agent_in_flight;
        }
    }

    asio::awaitable<void> heartbeat_loop([[maybe_unused]] std::shared_ptr<ws_agent> self) {
        const auto period = std::chrono::duration_cast<clock::duration>(
            std::chrono::duration<double, std::milli>(ctx_.opt.heartbeat_ms));
        // Spread the agents over the period instead of beating in step.
        auto next = clock::now() + period * ((index_ * 7919) % 1000) / 1000;
        asio::steady_timer timer(ctx_.io);
        std::int64_t seq = 0;
        while (!closed_ && !ctx_.stopping) {
            timer.expires_at(next);
            co_await timer.async_wait(k_tuple);
            next += period;
            if (closed_ || ctx_.stopping) {
                break;
            }
            heartbeats_[++seq] = now_ns();
            ++ctx_.book.heartbeats_sent;
            send(R"({"type":"heartbeat","seq":)" + std::to_string(seq) + "}");
        }
    }

    /// One writer at a time per WebSocket: frames queue here and one coroutine drains them.
    void send(std::string frame) {
        if (closed_) {
            return;
        }
        outbox_.push_back(std::move(frame));
        if (!writing_) {
            writing_ = true;
            asio::co_spawn(ctx_.io, write_loop(shared_from_this()), report_exception);
        }
    }

    asio::awaitable<void> write_loop([[maybe_unused]] std::shared_ptr<ws_agent> self) {
        while (outbox_head_ < outbox_.size() && !closed_) {
            std::string frame = std::move(outbox_[outbox_head_++]);
            if (outbox_head_ == outbox_.size()) {
                outbox_.clear();
                outbox_head_ = 0;
            }
            auto [ec, n] = co_await ws_.async_write(asio::buffer(frame), k_tuple);
            if (ec) {
                if (!ctx_.stopping) {
                    ctx_.book.error("ws_write: " + ec.message());
                }
                abort();
            }
        }
        writing_ = false;
    }

    void abort() {
        beast::error_code ignored;
        ws_.next_layer().close(ignored);
    }

    struct thinking {
        clock::time_point due;
        std::string id;
    };

    load_context& ctx_;
    int index_;
    websocket::stream<tcp::socket> ws_;
    beast::flat_buffer buffer_;
    asio::steady_timer setup_timer_;
    asio::steady_timer think_timer_;
    std::vector<std::string> outbox_;
    std::size_t outbox_head_ = 0;
    /// Held tasks: id → submit stamp.
    std::unordered_map<std::string, std::int64_t> in_flight_;
    std::deque<thinking> thinking_;
    std::unordered_map<std::int64_t, std::int64_t> heartbeats_;
    bool set_up_ = false;
    bool writing_ = false;
    bool think_loop_running_ = false;
    bool closed_ = false;
};

}  // namespace

void spawn_ws_agent(load_context& ctx, int index) {
    auto agent = std::make_shared<ws_agent>(ctx, index);
    asio::co_spawn(ctx.io, agent->run(agent), report_exception);
}

}  // namespace pm_agent::bench
