// The Redis client: hiredis' asynchronous context on the worker's loop (see client.hpp).
//
// hiredis asks for socket events through its ev hooks; each connection maps them to
// async_wait on a stream_descriptor over hiredis' own fd (released, never closed: hiredis
// closes it). hiredis calls every pending reply callback exactly once, with NULL when the
// context goes away, and frees the context itself after a connection error; the code below
// never touches a context after that and never frees one from inside a hiredis callback.
#include "pm_agent/redis/client.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <deque>
#include <iterator>
#include <random>
#include <stdexcept>

#include "pg/reconnect_delay.hpp"
#include "pm_agent/metrics/registry.hpp"
#include "redis/redis_url.hpp"

namespace pm_agent::redis {

namespace asio = boost::asio;
using steady = std::chrono::steady_clock;

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

reply copy_reply(const redisReply& r) {
    reply out;
    switch (r.type) {
        case REDIS_REPLY_STRING:
            out.kind = reply::type::string;
            out.str.assign(r.str, r.len);
            break;
        case REDIS_REPLY_STATUS:
            out.kind = reply::type::status;
            out.str.assign(r.str, r.len);
            break;
        case REDIS_REPLY_ERROR:
            out.kind = reply::type::error;
            out.str.assign(r.str, r.len);
            break;
        case REDIS_REPLY_INTEGER:
            out.kind = reply::type::integer;
            out.integer = r.integer;
            break;
        case REDIS_REPLY_ARRAY:
            out.kind = reply::type::array;
            out.elements.reserve(r.elements);
            for (std::size_t i = 0; i < r.elements; ++i) {
                out.elements.push_back(copy_reply(*r.element[i]));
            }
            break;
        default:
            out.kind = reply::type::nil;
            break;
    }
    return out;
}

/// hiredis' interest in its socket, watched by the loop. Shared with the wait handlers, which
/// may run after hiredis cleaned up (then `ac` is null and they do nothing).
struct socket_watch : std::enable_shared_from_this<socket_watch> {
    socket_watch(asio::io_context& ioc, int fd) : descriptor(ioc, fd) {}

    asio::posix::stream_descriptor descriptor;
    redisAsyncContext* ac = nullptr;
    bool want_read = false, want_write = false;
    bool read_armed = false, write_armed = false;

    void arm_read() {
        if (read_armed || !want_read || ac == nullptr) {
            return;
        }
        read_armed = true;
        descriptor.async_wait(asio::posix::descriptor_base::wait_read,
                              [self = shared_from_this()](boost::system::error_code ec) {
                                  self->read_armed = false;
                                  if (ec || self->ac == nullptr || !self->want_read) {
                                      return;
                                  }
                                  redisAsyncHandleRead(self->ac);
                                  self->arm_read();  // a no-op once the context is gone
                              });
    }
    void arm_write() {
        if (write_armed || !want_write || ac == nullptr) {
            return;
        }
        write_armed = true;
        descriptor.async_wait(asio::posix::descriptor_base::wait_write,
                              [self = shared_from_this()](boost::system::error_code ec) {
                                  self->write_armed = false;
                                  if (ec || self->ac == nullptr || !self->want_write) {
                                      return;
                                  }
                                  redisAsyncHandleWrite(self->ac);
                                  self->arm_write();
                              });
    }

    static socket_watch& of(void* data) { return *static_cast<socket_watch*>(data); }
    static void add_read(void* d) {
        of(d).want_read = true;
        of(d).arm_read();
    }
    static void del_read(void* d) { of(d).want_read = false; }
    static void add_write(void* d) {
        of(d).want_write = true;
        of(d).arm_write();
    }
    static void del_write(void* d) { of(d).want_write = false; }
    static void cleanup(void* d) {
        socket_watch& w = of(d);
        w.ac = nullptr;
        w.want_read = w.want_write = false;
        boost::system::error_code ignored;
        w.descriptor.cancel(ignored);
        w.descriptor.release();  // hiredis closes the fd
    }
};

}  // namespace

struct client::impl {
    impl(asio::io_context& io, client_options o, metrics::registry& registry);

    class connection;

    void update_gauges();
    /// Answers an error reply from the loop, later: a command this client never sends.
    void refuse_later(reply_callback done, std::string why) {
        error_reply.inc();
        reply r;
        r.kind = reply::type::error;
        r.str = std::move(why);
        asio::post(ioc, [alive = alive, done = std::move(done), r = std::move(r)]() mutable {
            if (*alive) {
                done(std::move(r));
            }
        });
    }
    /// Answers nullopt from the loop, later (not if the client is gone by then).
    void fail_later(reply_callback done, metrics::counter& why) {
        why.inc();
        asio::post(ioc, [alive = alive, done = std::move(done)]() mutable {
            if (*alive) {
                done(std::nullopt);
            }
        });
    }
    std::chrono::milliseconds backoff(int failures) {
        return pg::reconnect_delay(options.reconnect_min, options.reconnect_max, failures,
                                   std::uniform_real_distribution<double>(0, 1)(rng));
    }

    asio::io_context& ioc;
    client_options options;
    redis_endpoint endpoint;
    std::mt19937_64 rng{std::random_device{}()};
    std::vector<std::unique_ptr<connection>> commands;
    std::unique_ptr<connection> subscriber;
    std::vector<std::string> channels;
    message_callback on_message;
    store::unique_function<void()> on_subscribed;
    std::size_t next = 0;
    bool started = false;
    std::shared_ptr<bool> alive = std::make_shared<bool>(true);

    metrics::gauge& connected_gauge;
    metrics::gauge& connecting_gauge;
    metrics::gauge& in_flight_gauge;
    metrics::gauge& subscribed_gauge;
    metrics::counter& ok;
    metrics::counter& error_reply;
    metrics::counter& timeout;
    metrics::counter& unavailable;
    metrics::counter& lost;
    metrics::counter& reconnects;
};

/// One hiredis connection: a command connection or the subscriber.
class client::impl::connection {
  public:
    connection(impl& owner, bool subscriber) : owner_(owner), subscriber_(subscriber),
          retry_(owner.ioc), deadline_(owner.ioc), resolver_(owner.ioc) {}

    ~connection() {
        // Handlers already queued with success (a fired timer, a finished resolve) check this
        // before touching the connection: cancel() cannot reach them any more.
        *alive_ = false;
        destroying_ = true;
        retry_.cancel();
        deadline_.cancel();
        resolver_.cancel();
        for (pending* p : in_flight_) {
            p->abandoned = true;  // dropped uncalled (client.hpp)
        }
        in_flight_.clear();
        if (ac_ != nullptr) {
            redisAsyncContext* ac = ac_;
            ac_ = nullptr;
            // Freed from inside one of its reply callbacks (the client destroyed there), hiredis
            // only frees the context once that callback returns, and then calls on_disconnect:
            // by then this object is gone, so the context must no longer point to it.
            ac->data = nullptr;
            redisAsyncFree(ac);
        }
    }

    void start() { resolve(); }

    bool usable() const { return subscriber_ ? subscribed_ : ready_; }
    bool connecting() const { return !ready_ && ac_ != nullptr; }
    std::size_t in_flight() const { return in_flight_.size(); }

    /// Sends one command; false (nothing sent) when the context refuses it.
    bool send(std::vector<std::string>& args, reply_callback& done) {
        std::vector<const char*> argv;
        std::vector<std::size_t> lengths;
        argv.reserve(args.size());
        lengths.reserve(args.size());
        for (const std::string& a : args) {
            argv.push_back(a.data());
            lengths.push_back(a.size());
        }
        auto p = std::make_unique<pending>();
        p->conn = this;
        p->deadline = steady::now() + owner_.options.timeout;
        if (redisAsyncCommandArgv(ac_, &connection::on_reply, p.get(),
                                  static_cast<int>(argv.size()), argv.data(),
                                  lengths.data()) != REDIS_OK) {
            return false;
        }
        p->done = std::move(done);
        in_flight_.push_back(p.release());
        if (in_flight_.size() == 1) {
            arm_deadline();
        }
        owner_.update_gauges();
        return true;
    }

  private:
    struct pending {
        connection* conn = nullptr;
        reply_callback done;
        steady::time_point deadline;
        bool abandoned = false;  // answered already (timeout) or the client is going away
        bool internal = false;   // AUTH / SELECT of this connection
    };

    void resolve() {
        boost::system::error_code ec;
        auto address = asio::ip::make_address(owner_.endpoint.host, ec);
        if (!ec) {
            return connect(address.to_string());
        }
        resolver_.async_resolve(
            owner_.endpoint.host, std::to_string(owner_.endpoint.port),
            [this, alive = alive_](boost::system::error_code rec,
                                   asio::ip::tcp::resolver::results_type results) {
                if (!*alive || rec == asio::error::operation_aborted || destroying_) {
                    return;
                }
                if (rec || results.empty()) {
                    spdlog::warn("event=redis_resolve_failed host={} error=\"{}\"",
                                 owner_.endpoint.host, rec.message());
                    return retry_later();
                }
                // A name with several addresses (localhost: ::1 and 127.0.0.1) is tried one
                // address per attempt, in turn, so one that refuses does not block the others.
                auto chosen = results.begin();
                std::advance(chosen, static_cast<std::ptrdiff_t>(attempts_ % results.size()));
                connect(chosen->endpoint().address().to_string());
            });
    }

    void connect(const std::string& ip) {
        redisAsyncContext* ac = redisAsyncConnect(ip.c_str(), owner_.endpoint.port);
        if (ac == nullptr || ac->err != 0) {
            spdlog::warn("event=redis_connect_failed error=\"{}\"",
                         ac != nullptr ? ac->errstr : "out of memory");
            if (ac != nullptr) {
                redisAsyncFree(ac);
            }
            return retry_later();
        }
        ac_ = ac;
        ++generation_;
        ac->data = this;
        watch_ = std::make_shared<socket_watch>(owner_.ioc, ac->c.fd);
        watch_->ac = ac;
        ac->ev.data = watch_.get();
        ac->ev.addRead = &socket_watch::add_read;
        ac->ev.delRead = &socket_watch::del_read;
        ac->ev.addWrite = &socket_watch::add_write;
        ac->ev.delWrite = &socket_watch::del_write;
        ac->ev.cleanup = &socket_watch::cleanup;
        // The connect callback registers the first write event: hooks must be set before.
        redisAsyncSetConnectCallback(ac, &connection::on_connect);
        redisAsyncSetDisconnectCallback(ac, &connection::on_disconnect);
        owner_.update_gauges();
        // Connect (and AUTH/SELECT) within the timeout, or start over.
        deadline_.expires_after(owner_.options.timeout);
        deadline_.async_wait([this, alive = alive_](boost::system::error_code ec) {
            if (!ec && *alive && !ready_ && ac_ != nullptr) {
                spdlog::warn("event=redis_connect_timeout");
                drop();
            }
        });
    }

    static connection* of(const redisAsyncContext* ac) {
        return static_cast<connection*>(ac->data);
    }

    static void on_connect(const redisAsyncContext* ac, int status) {
        connection* self = of(ac);
        if (self == nullptr) {
            return;
        }
        if (status != REDIS_OK) {
            // hiredis frees the context when this returns.
            spdlog::warn("event=redis_connect_failed error=\"{}\"", ac->errstr);
            self->ac_ = nullptr;
            self->retry_later();
            return;
        }
        self->authenticate();
    }

    static void on_disconnect(const redisAsyncContext* ac, int status) {
        connection* self = of(ac);
        if (self == nullptr || self->destroying_ || self->dropping_) {
            return;
        }
        // hiredis frees the context when this returns; replies in flight were answered NULL.
        spdlog::warn("event=redis_disconnected error=\"{}\"", status == REDIS_OK ? "" : ac->errstr);
        self->ac_ = nullptr;
        self->retry_later();
    }

    /// AUTH and SELECT as the URL says, pipelined; the connection is usable after them.
    void authenticate() {
        const redis_endpoint& e = owner_.endpoint;
        std::vector<std::vector<std::string>> setup;
        if (e.password) {
            if (e.user) {
                setup.push_back({"AUTH", *e.user, *e.password});
            } else {
                setup.push_back({"AUTH", *e.password});
            }
        }
        if (e.db != 0) {
            setup.push_back({"SELECT", std::to_string(e.db)});
        }
        if (setup.empty()) {
            return became_ready();
        }
        setup_left_ = setup.size();
        for (auto& args : setup) {
            reply_callback step = [this, generation = generation_](std::optional<reply> r) {
                if (generation != generation_) {
                    return;  // an answer for a context given up meanwhile
                }
                if (!r || r->is_error()) {
                    if (r) {
                        spdlog::error("event=redis_setup_failed error=\"{}\"", r->str);
                    }
                    // Not from inside hiredis: the context is freed from the loop.
                    asio::post(owner_.ioc, [this, alive = alive_, generation] {
                        if (*alive && generation == generation_ && ac_ != nullptr && !ready_) {
                            drop();
                        }
                    });
                    return;
                }
                if (--setup_left_ == 0) {
                    became_ready();
                }
            };
            if (!send(args, step)) {
                return;  // the context is going away; its disconnect starts over
            }
        }
    }

    void became_ready() {
        deadline_.cancel();
        failures_ = 0;
        if (!subscriber_) {
            ready_ = true;
            spdlog::info("event=redis_connected");
            owner_.update_gauges();
            return;
        }
        ready_ = true;
        confirmed_ = 0;
        std::vector<std::string> args{"SUBSCRIBE"};
        args.insert(args.end(), owner_.channels.begin(), owner_.channels.end());
        std::vector<const char*> argv;
        std::vector<std::size_t> lengths;
        for (const std::string& a : args) {
            argv.push_back(a.data());
            lengths.push_back(a.size());
        }
        redisAsyncCommandArgv(ac_, &connection::on_pubsub, this, static_cast<int>(argv.size()),
                              argv.data(), lengths.data());
    }

    static void on_pubsub(redisAsyncContext* ac, void* r, void* privdata) {
        auto* self = static_cast<connection*>(privdata);
        if (r == nullptr || self->destroying_) {
            return;  // the context is going away
        }
        const auto& m = *static_cast<redisReply*>(r);
        if (m.type != REDIS_REPLY_ARRAY || m.elements < 3 ||
            m.element[0]->type != REDIS_REPLY_STRING) {
            return;
        }
        const std::string_view kind(m.element[0]->str, m.element[0]->len);
        if (kind == "subscribe") {
            if (++self->confirmed_ == self->owner_.channels.size()) {
                self->subscribed_ = true;
                self->owner_.update_gauges();
                if (self->owner_.on_subscribed) {
                    self->owner_.on_subscribed();
                }
            }
        } else if (kind == "message" && m.element[1]->type == REDIS_REPLY_STRING &&
                   m.element[2]->type == REDIS_REPLY_STRING && self->owner_.on_message) {
            self->owner_.on_message(std::string_view(m.element[1]->str, m.element[1]->len),
                                    std::string_view(m.element[2]->str, m.element[2]->len));
        }
    }

    static void on_reply(redisAsyncContext*, void* r, void* privdata) {
        std::unique_ptr<pending> p(static_cast<pending*>(privdata));
        if (p->abandoned) {
            return;
        }
        connection& self = *p->conn;
        self.forget(p.get());
        impl& owner = self.owner_;
        if (r == nullptr) {
            // The connection went away with the command in flight: it may or may not have run.
            return owner.fail_later(std::move(p->done), owner.lost);
        }
        reply copy = copy_reply(*static_cast<redisReply*>(r));
        (copy.is_error() ? owner.error_reply : owner.ok).inc();
        p->done(std::move(copy));
    }

    void forget(pending* p) {
        if (!in_flight_.empty() && in_flight_.front() == p) {
            in_flight_.pop_front();
            arm_deadline();
        } else {
            std::erase(in_flight_, p);
        }
        owner_.update_gauges();
    }

    /// The oldest command in flight must be answered by its deadline (Redis answers in order).
    void arm_deadline() {
        if (in_flight_.empty() || !ready_) {
            return;
        }
        deadline_.expires_at(in_flight_.front()->deadline);
        deadline_.async_wait([this, alive = alive_](boost::system::error_code ec) {
            if (ec || !*alive || in_flight_.empty() ||
                in_flight_.front()->deadline > steady::now()) {
                return;
            }
            spdlog::warn("event=redis_timeout in_flight={}", in_flight_.size());
            for (pending* p : in_flight_) {
                p->abandoned = true;  // hiredis' later NULL callback only frees it
                if (!p->internal) {
                    owner_.fail_later(std::move(p->done), owner_.timeout);
                }
            }
            in_flight_.clear();
            drop();
        });
    }

    /// Frees the context (from the loop, never inside a hiredis callback) and reconnects.
    void drop() {
        if (ac_ != nullptr) {
            redisAsyncContext* ac = ac_;
            ac_ = nullptr;
            dropping_ = true;
            redisAsyncFree(ac);
            dropping_ = false;
        }
        retry_later();
    }

    void retry_later() {
        ready_ = false;
        subscribed_ = false;
        deadline_.cancel();
        owner_.update_gauges();
        if (destroying_) {
            return;
        }
        owner_.reconnects.inc();
        ++attempts_;
        retry_.expires_after(owner_.backoff(failures_++));
        retry_.async_wait([this, alive = alive_](boost::system::error_code ec) {
            if (!ec && *alive && !destroying_) {
                resolve();
            }
        });
    }

    impl& owner_;
    const bool subscriber_;
    redisAsyncContext* ac_ = nullptr;
    std::shared_ptr<socket_watch> watch_;
    std::deque<pending*> in_flight_;
    asio::steady_timer retry_;
    asio::steady_timer deadline_;
    asio::ip::tcp::resolver resolver_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
    int failures_ = 0;
    std::size_t attempts_ = 0;      // connection attempts so far: picks the address to try
    std::uint64_t generation_ = 0;  // contexts made so far: tells answers for an old one apart
    std::size_t setup_left_ = 0;
    std::size_t confirmed_ = 0;
    bool ready_ = false;
    bool subscribed_ = false;
    bool destroying_ = false;
    bool dropping_ = false;

  public:
    void shutdown() { *alive_ = false; }
};

namespace {

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
      subscribed_gauge(registry
                           .gauge("pm_agent_redis_subscribed",
                                  "1 while the pub/sub connection is subscribed")
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
    const std::size_t n = s.commands.size();
    for (std::size_t i = 0; i < n; ++i) {
        impl::connection& c = *s.commands[(s.next + i) % n];
        if (c.usable()) {
            s.next = (s.next + i + 1) % n;
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
