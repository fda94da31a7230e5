// The Redis client: a pool of command connections and one subscriber (see client.hpp); each
// connection is one hiredis context on the worker's loop (connection.cpp).
#include "pm_agent/redis/client.hpp"

#include <algorithm>
#include <cctype>
#include <iterator>
#include <stdexcept>

#include "redis/client_impl.hpp"

namespace pm_agent::redis {

namespace asio = boost::asio;

namespace {

/// Commands that turn a connection into a push channel: hiredis would then route their replies
/// through its pub/sub tables (a command connection's FIFO of callbacks breaks, and hiredis 0.14
/// asserts on pushes it cannot place). Pub/sub goes through client::subscribe() only.
bool is_push_command(std::string_view name) {
    constexpr std::string_view k_push[] = {"subscribe",   "psubscribe",   "ssubscribe",
                                           "unsubscribe", "punsubscribe", "sunsubscribe",
                                           "monitor"};
    return std::any_of(std::begin(k_push), std::end(k_push), [&](std::string_view push) {
        return name.size() == push.size() &&
               std::equal(name.begin(), name.end(), push.begin(), [](char a, char b) {
                   return std::tolower(static_cast<unsigned char>(a)) == b;
               });
    });
}

metrics::gauge_family& connections_family(metrics::registry& r) {
    return r.gauge("pm_agent_redis_connections",
                   "Redis command connections: usable (connected) and being set up (connecting)",
                   {"state"});
}
metrics::counter_family& commands_family(metrics::registry& r) {
    return r.counter("pm_agent_redis_commands_total", "Redis commands answered, by outcome",
                     {"outcome"});
}

}  // namespace

client::impl::impl(asio::io_context& io, client_options o, metrics::registry& registry)
    : ioc(io),
      options(std::move(o)),
      endpoint(parse_redis_url(options.url)),
      connected_gauge(connections_family(registry).with({"connected"})),
      connecting_gauge(connections_family(registry).with({"connecting"})),
      in_flight_gauge(
          registry.gauge("pm_agent_redis_in_flight", "Redis commands sent and not answered yet")
              .get()),
      subscribed_gauge(
          registry
              .gauge("pm_agent_redis_subscribed", "1 while the pub/sub connection is subscribed")
              .get()),
      ok(commands_family(registry).with({"ok"})),
      error_reply(commands_family(registry).with({"error"})),
      timeout(commands_family(registry).with({"timeout"})),
      unavailable(commands_family(registry).with({"unavailable"})),
      lost(commands_family(registry).with({"lost"})),
      reconnects(registry
                     .counter("pm_agent_redis_reconnects_total",
                              "Redis connection attempts after a failure or a lost connection")
                     .get()) {
    if (options.pool_size == 0) {
        throw std::invalid_argument("redis.pool_size: must be at least 1");
    }
    for (std::size_t i = 0; i < options.pool_size; ++i) {
        commands.push_back(std::make_unique<connection>(*this, false));
    }
}

void client::impl::update_gauges() {
    std::size_t up = 0, connecting = 0, in_flight = 0;
    for (const auto& c : commands) {
        up += c->usable() ? 1 : 0;
        connecting += c->connecting() ? 1 : 0;
        in_flight += c->in_flight();
    }
    connected_gauge.set(static_cast<double>(up));
    connecting_gauge.set(static_cast<double>(connecting));
    in_flight_gauge.set(static_cast<double>(in_flight));
    subscribed_gauge.set(subscriber && subscriber->usable() ? 1 : 0);
}

std::string url_error(std::string_view url) {
    try {
        parse_redis_url(url);
        return {};
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
}

client::client(asio::io_context& ioc, client_options options, metrics::registry& registry)
    : impl_(std::make_unique<impl>(ioc, std::move(options), registry)) {}

client::~client() {
    *impl_->alive = false;
    for (auto& c : impl_->commands) {
        c->shutdown();
    }
    if (impl_->subscriber) {
        impl_->subscriber->shutdown();
    }
    impl_->subscriber.reset();
    impl_->commands.clear();
}

void client::start() {
    if (impl_->started) {
        return;
    }
    impl_->started = true;
    for (auto& c : impl_->commands) {
        c->start();
    }
    if (impl_->subscriber) {
        impl_->subscriber->start();
    }
}

void client::command(std::vector<std::string> args, reply_callback done) {
    impl& s = *impl_;
    // hiredis asserts on an empty command; push commands would break the connection (above).
    if (args.empty()) {
        return s.refuse_later(std::move(done), "ERR pm_agent: empty command");
    }
    if (is_push_command(args.front())) {
        return s.refuse_later(std::move(done),
                              "ERR pm_agent: pub/sub commands go through client::subscribe()");
    }
    // Every command of one loop turn goes on the same connection: they leave in one write and
    // their replies come back together (spread over the pool, each connection would cost a
    // write, a read and a wake-up of its own). The next turn takes the next connection.
    const std::size_t n = s.commands.size();
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t k = (s.next + i) % n;
        impl::connection& c = *s.commands[k];
        if (c.usable()) {
            s.next = k;
            if (!s.turn_pinned) {
                s.turn_pinned = true;
                asio::post(s.ioc, [&s, alive = s.alive] {
                    if (*alive) {
                        s.turn_pinned = false;
                        s.next = (s.next + 1) % s.commands.size();
                    }
                });
            }
            if (c.send(args, done)) {
                return;
            }
            break;
        }
    }
    s.fail_later(std::move(done), s.unavailable);
}

void client::subscribe(std::vector<std::string> channels, message_callback on_message,
                       store::unique_function<void()> on_subscribed) {
    impl& s = *impl_;
    if (s.subscriber || channels.empty()) {
        return;
    }
    s.channels = std::move(channels);
    s.on_message = std::move(on_message);
    s.on_subscribed = std::move(on_subscribed);
    s.subscriber = std::make_unique<impl::connection>(s, true);
    if (s.started) {
        s.subscriber->start();
    }
}

bool client::healthy() const {
    for (const auto& c : impl_->commands) {
        if (c->usable()) {
            return true;
        }
    }
    return false;
}

client_status client::status() const {
    client_status out;
    for (const auto& c : impl_->commands) {
        out.connected += c->usable() ? 1 : 0;
        out.in_flight += c->in_flight();
    }
    out.subscribed = impl_->subscriber && impl_->subscriber->usable();
    return out;
}

}  // namespace pm_agent::redis
