// The worker's loop: acceptor, connection limit, the application's timer, the WebSocket sweep,
// and the graceful drain on SIGTERM/SIGINT.

#include "pm_agent/http/server.hpp"

#include <sys/resource.h>

#include <spdlog/spdlog.h>

#include "http/transport_context.hpp"

namespace pm_agent::http {

namespace {

using clock = std::chrono::steady_clock;
constexpr auto k_tuple = asio::as_tuple(asio::use_awaitable);
/// After accept fails for lack of file descriptors, wait this long before trying again instead
/// of spinning on the error.
constexpr auto k_accept_backoff = std::chrono::milliseconds(50);
/// How often the drain checks whether every connection has finished.
constexpr auto k_drain_poll = std::chrono::milliseconds(20);
/// The application's timer is re-armed at least this often, so a deadline added while the timer
/// waits (a new long poll, a task delayed by 1 s) is late by at most this much.
constexpr auto k_max_tick_interval = std::chrono::milliseconds(100);
/// How often WebSocket connections are checked for a due ping, silence or a stuck close.
constexpr auto k_ws_sweep = std::chrono::seconds(1);
/// Resolution of HTTP read and keep-alive deadlines.
constexpr auto k_deadline_sweep = std::chrono::milliseconds(100);

/// Connection lifetimes: from a one-request client to an agent that stays for a day.
const std::vector<double> k_connection_buckets{0.01, 0.1, 1, 10, 60, 300, 1800, 3600, 21600, 86400};

/// Lifts the soft open-files limit to the hard one: every agent is a socket.
void raise_open_files_limit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
            spdlog::warn("event=rlimit_nofile_raise_failed");
        }
    }
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
        spdlog::info("event=rlimit_nofile soft={} hard={}", limit.rlim_cur, limit.rlim_max);
    }
}

/// Calls fn on each member of a session set. It walks a copy: a sweep or drain may close a
/// session, which erases it from the set; those already gone are skipped.
template <class Fn>
void for_each_live(const std::unordered_set<drainable*>& set, Fn fn) {
    for (auto* s : std::vector<drainable*>(set.begin(), set.end())) {
        if (set.contains(s)) {
            fn(*s);
        }
    }
}

}  // namespace

void log_coroutine_exception(std::exception_ptr error, const char* what) {
    if (!error) {
        return;
    }
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {
        spdlog::error("event=coroutine_failed where={} error=\"{}\"", what, e.what());
    } catch (...) {
        spdlog::error("event=coroutine_failed where={} error=unknown", what);
    }
}

transport_metrics::transport_metrics(metrics::registry& registry)
    : http_active(
          registry
              .gauge("pm_agent_active_connections", "Open client connections by kind.", {"kind"})
              .with({"http"})),
      ws_active(
          registry
              .gauge("pm_agent_active_connections", "Open client connections by kind.", {"kind"})
              .with({"ws"})),
      connection_errors(registry
                            .counter("pm_agent_connection_errors_total",
                                     "Connections that ended in a transport error.")
                            .get()),
      connections_rejected(registry
                               .counter("pm_agent_connections_rejected_total",
                                        "Connections refused past server.max_connections.")
                               .get()),
      http_connection_duration(registry
                                   .histogram("pm_agent_connection_duration_seconds",
                                              "Lifetime of client connections by kind.",
                                              k_connection_buckets, {"kind"})
                                   .with({"http"})),
      ws_connection_duration(registry
                                 .histogram("pm_agent_connection_duration_seconds",
                                            "Lifetime of client connections by kind.",
                                            k_connection_buckets, {"kind"})
                                 .with({"ws"})),
      request_duration(registry.histogram(
          "pm_agent_request_duration_seconds", "HTTP request handling time by route template.",
          metrics::k_default_latency_buckets, {"route", "method", "code"})),
      requests(registry.counter("pm_agent_requests_total", "HTTP requests answered.",
                                {"route", "method", "code"})) {}

struct server::impl {
    impl(server_options opts, api::application& app, api::transport_state& state,
         metrics::registry& registry, asio::io_context& loop)
        : options(std::move(opts)),
          ioc(loop),
          ctx{ioc, options, app, state, transport_metrics(registry)},
          acceptor(ioc),
          signals(ioc, SIGTERM, SIGINT),
          app_timer(ioc),
          sweep_timer(ioc),
          deadline_timer(ioc) {}

    server_options options;
    asio::io_context& ioc;  ///< one thread: the reactor needs no locks
    transport_context ctx;
    tcp::acceptor acceptor;
    asio::signal_set signals;
    asio::steady_timer app_timer;
    asio::steady_timer sweep_timer;
    asio::steady_timer deadline_timer;

    asio::awaitable<void> accept_loop() {
        while (acceptor.is_open()) {
            auto [ec, socket] = co_await acceptor.async_accept(k_tuple);
            if (ec) {
                if (ec == asio::error::operation_aborted) {
                    break;
                }
                spdlog::warn("event=accept_failed error=\"{}\"", ec.message());
                ctx.metrics.connection_errors.inc();
                asio::steady_timer backoff(ioc, k_accept_backoff);
                co_await backoff.async_wait(k_tuple);
                continue;
            }
            socket.set_option(tcp::no_delay(true), ec);
            const bool over_limit = ctx.open_connections() >= options.max_connections;
            if (over_limit) {
                ctx.metrics.connections_rejected.inc();
            }
            asio::co_spawn(ioc, run_http_session(ctx, std::move(socket), over_limit),
                           [](std::exception_ptr e) { log_coroutine_exception(e, "session"); });
        }
    }

    asio::awaitable<void> app_timer_loop() {
        while (!ctx.state.draining) {
            const auto now = clock::now();
            app_timer.expires_at(std::min(ctx.app.tick(now), now + k_max_tick_interval));
            co_await app_timer.async_wait(k_tuple);
        }
    }

    asio::awaitable<void> sweep_loop() {
        while (!ctx.state.draining) {
            sweep_timer.expires_after(
                std::min<clock::duration>(options.ws_ping_interval, k_ws_sweep));
            auto [ec] = co_await sweep_timer.async_wait(k_tuple);
            if (ec) {
                break;
            }
            const auto now = clock::now();
            for_each_live(ctx.websockets, [now](drainable& ws) { ws.sweep(now); });
        }
    }

    /// Enforces HTTP read and keep-alive deadlines (see http_session_handle).
    asio::awaitable<void> deadline_loop() {
        for (;;) {
            deadline_timer.expires_after(k_deadline_sweep);
            auto [ec] = co_await deadline_timer.async_wait(k_tuple);
            if (ec || (ctx.state.draining && ctx.sessions.empty())) {
                break;
            }
            const auto now = clock::now();
            for_each_live(ctx.sessions, [now](drainable& s) { s.sweep(now); });
        }
    }

    asio::awaitable<void> wait_for_signal() {
        auto [ec, signal] = co_await signals.async_wait(k_tuple);
        if (ec) {
            co_return;
        }
        spdlog::info("event=drain_started signal={} http={} ws={}", signal,
                     ctx.state.http_connections, ctx.state.ws_connections);
        ctx.state.draining = true;
        ctx.app.begin_drain();
        beast::error_code ignored;
        acceptor.close(ignored);
        app_timer.cancel();
        sweep_timer.cancel();
        for_each_live(ctx.sessions, [](drainable& s) { s.drain(); });
        for_each_live(ctx.websockets, [](drainable& s) { s.drain(); });
        const auto deadline = clock::now() + options.shutdown_timeout;
        asio::steady_timer poll(ioc);
        while (ctx.open_connections() > 0 && clock::now() < deadline) {
            poll.expires_after(k_drain_poll);
            co_await poll.async_wait(k_tuple);
        }
        if (ctx.open_connections() > 0) {
            spdlog::warn("event=drain_timeout open_connections={}", ctx.open_connections());
        } else {
            spdlog::info("event=drain_complete");
        }
        deadline_timer.cancel();
        ioc.stop();
    }
};

server::server(server_options options, api::application& app, api::transport_state& state,
               metrics::registry& registry, asio::io_context& ioc)
    : impl_(std::make_unique<impl>(std::move(options), app, state, registry, ioc)) {}

server::~server() = default;

std::uint16_t server::bind() {
    raise_open_files_limit();
    auto& acceptor = impl_->acceptor;
    const auto address = asio::ip::make_address(impl_->options.host);
    const tcp::endpoint endpoint(address, impl_->options.port);
    acceptor.open(endpoint.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    if (impl_->options.reuse_port) {
        int one = 1;
        if (::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) !=
            0) {
            throw std::system_error(errno, std::generic_category(), "SO_REUSEPORT");
        }
    }
    acceptor.bind(endpoint);
    acceptor.listen(asio::socket_base::max_listen_connections);
    return acceptor.local_endpoint().port();
}

void server::run() {
    auto& self = *impl_;
    auto on_error = [](const char* where) {
        return [where](std::exception_ptr e) { log_coroutine_exception(e, where); };
    };
    asio::co_spawn(self.ioc, self.accept_loop(), on_error("accept"));
    asio::co_spawn(self.ioc, self.app_timer_loop(), on_error("app timer"));
    asio::co_spawn(self.ioc, self.sweep_loop(), on_error("ws sweep"));
    asio::co_spawn(self.ioc, self.deadline_loop(), on_error("http deadlines"));
    asio::co_spawn(self.ioc, self.wait_for_signal(), on_error("signals"));
    self.ioc.run();
}

}  // namespace pm_agent::http
