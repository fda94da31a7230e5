// One hiredis connection of the Redis client, on the worker's loop (see client_impl.hpp).
//
// hiredis asks for socket events through its ev hooks; socket_watch maps them to the loop: a
// read interest to async_wait on a stream_descriptor over hiredis' own fd (released, never
// closed: hiredis closes it), a write interest to one write at the end of the loop turn (every
// command of the turn leaves in it), waiting for the socket only when the kernel would not
// take it all. hiredis calls every pending reply callback exactly once, with NULL when the
// context goes away, and frees the context itself after a connection error; the code below
// never touches a context after that and never frees one from inside a hiredis callback.
#include <hiredis/hiredis.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <spdlog/spdlog.h>

#include <iterator>

#include "redis/client_impl.hpp"

namespace pm_agent::redis {

namespace asio = boost::asio;

/// hiredis' interest in its socket, watched by the loop. Shared with the handlers, which may
/// run after hiredis cleaned up (then `ac` is null and they do nothing).
struct socket_watch : std::enable_shared_from_this<socket_watch> {
    socket_watch(asio::io_context& ioc, int fd) : descriptor(ioc, fd) {}

    asio::posix::stream_descriptor descriptor;
    redisAsyncContext* ac = nullptr;
    bool want_read = false, want_write = false;
    bool read_armed = false, write_armed = false;
    // The last write left bytes the kernel would not take: wait until the socket drains.
    bool write_blocked = false;

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
        // A connected socket nearly always has room: write at the end of this turn rather than
        // ask the kernel first (each wait is one more epoll_ctl). Connecting, hiredis uses the
        // write interest to learn that connect() finished: that one is a real wait.
        if ((ac->c.flags & REDIS_CONNECTED) != 0 && !write_blocked) {
            asio::post(descriptor.get_executor(), [self = shared_from_this()] {
                self->write_armed = false;
                self->write();
                // Bytes left over: the socket is full, so this time wait for it to drain.
                self->write_blocked = self->ac != nullptr && self->want_write;
                self->arm_write();
            });
            return;
        }
        descriptor.async_wait(asio::posix::descriptor_base::wait_write,
                              [self = shared_from_this()](boost::system::error_code ec) {
                                  self->write_armed = false;
                                  self->write_blocked = false;
                                  if (ec) {
                                      return;
                                  }
                                  self->write();
                                  // Connected now and still more left: wait again at once.
                                  self->write_blocked = self->ac != nullptr && self->want_write &&
                                                        (self->ac->c.flags & REDIS_CONNECTED) != 0;
                                  self->arm_write();
                              });
    }
    /// One redisAsyncHandleWrite; the addWrite hiredis calls from inside it (more to write)
    /// arms nothing: the caller decides how to wait.
    void write() {
        if (ac == nullptr || !want_write) {
            return;
        }
        write_armed = true;
        redisAsyncHandleWrite(ac);  // delWrite once hiredis' buffer is empty
        write_armed = false;
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

namespace {

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

}  // namespace

client::impl::connection::connection(impl& owner, bool subscriber)
    : owner_(owner),
      subscriber_(subscriber),
      retry_(owner.ioc),
      setup_deadline_(owner.ioc),
      reply_deadline_(owner.ioc),
      resolver_(owner.ioc) {}

client::impl::connection::~connection() {
    // Handlers already queued with success (a fired timer, a finished resolve) check this
    // before touching the connection: cancel() cannot reach them any more.
    *alive_ = false;
    destroying_ = true;
    retry_.cancel();
    setup_deadline_.cancel();
    reply_deadline_.cancel();
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

bool client::impl::connection::send(std::vector<std::string>& args, reply_callback& done,
                                    bool internal) {
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
    p->internal = internal;
    if (redisAsyncCommandArgv(ac_, &connection::on_reply, p.get(), static_cast<int>(argv.size()),
                              argv.data(), lengths.data()) != REDIS_OK) {
        return false;
    }
    p->done = std::move(done);
    in_flight_.push_back(p.release());
    arm_reply_deadline();
    owner_.update_gauges();
    return true;
}

void client::impl::connection::resolve() {
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

void client::impl::connection::connect(const std::string& ip) {
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
    arm_setup_deadline("event=redis_connect_timeout");
}

client::impl::connection* client::impl::connection::of(const redisAsyncContext* ac) {
    return static_cast<connection*>(ac->data);
}

void client::impl::connection::on_connect(const redisAsyncContext* ac, int status) {
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

void client::impl::connection::on_disconnect(const redisAsyncContext* ac, int status) {
    connection* self = of(ac);
    if (self == nullptr || self->destroying_ || self->dropping_) {
        return;
    }
    // hiredis frees the context when this returns; replies in flight were answered NULL.
    spdlog::warn("event=redis_disconnected error=\"{}\"", status == REDIS_OK ? "" : ac->errstr);
    self->ac_ = nullptr;
    self->retry_later();
}

void client::impl::connection::authenticate() {
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
        if (!send(args, step, true)) {
            return;  // the context is going away; its disconnect starts over
        }
    }
}

void client::impl::connection::became_ready() {
    ready_ = true;
    if (!subscriber_) {
        failures_ = 0;
        setup_deadline_.cancel();
        spdlog::info("event=redis_connected");
        owner_.update_gauges();
        return;
    }
    // Still set-up: the subscription counts once Redis confirmed every channel, in time.
    confirmed_ = 0;
    arm_setup_deadline("event=redis_subscribe_timeout");
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

void client::impl::connection::on_pubsub(redisAsyncContext*, void* r, void* privdata) {
    auto* self = static_cast<connection*>(privdata);
    if (r == nullptr || self->destroying_) {
        return;  // the context is going away
    }
    const auto& m = *static_cast<redisReply*>(r);
    if (m.type != REDIS_REPLY_ARRAY || m.elements < 3 || m.element[0]->type != REDIS_REPLY_STRING) {
        return;
    }
    const std::string_view kind(m.element[0]->str, m.element[0]->len);
    if (kind == "subscribe") {
        if (++self->confirmed_ == self->owner_.channels.size()) {
            self->failures_ = 0;  // set up at last: a server that never confirms backs off more
            self->setup_deadline_.cancel();
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

void client::impl::connection::on_reply(redisAsyncContext*, void* r, void* privdata) {
    std::unique_ptr<pending> p(static_cast<pending*>(privdata));
    if (p->abandoned) {
        return;
    }
    connection& self = *p->conn;
    self.forget(p.get());
    impl& owner = self.owner_;
    if (r == nullptr) {
        // The connection went away with the command in flight: it may or may not have run.
        if (p->internal) {
            return p->done(std::nullopt);  // its set-up step starts over
        }
        return owner.fail_later(std::move(p->done), owner.lost);
    }
    reply copy = copy_reply(*static_cast<redisReply*>(r));
    if (!p->internal) {
        (copy.is_error() ? owner.error_reply : owner.ok).inc();
    }
    p->done(std::move(copy));
}

void client::impl::connection::forget(pending* p) {
    if (!in_flight_.empty() && in_flight_.front() == p) {
        in_flight_.pop_front();
    } else {
        std::erase(in_flight_, p);
    }
    owner_.update_gauges();
}

void client::impl::connection::arm_setup_deadline(const char* event) {
    // Each arm has its own number: a handler already queued for the previous deadline (the
    // connect one, re-armed for SUBSCRIBE) finds itself outdated rather than dropping a
    // connection that is in its next step.
    const std::uint64_t arm = ++setup_arms_;
    setup_deadline_.expires_after(owner_.options.timeout);
    setup_deadline_.async_wait([this, alive = alive_, arm, event](boost::system::error_code ec) {
        if (ec || !*alive || arm != setup_arms_ || ac_ == nullptr || usable()) {
            return;
        }
        spdlog::warn("{}", event);
        drop();
    });
}

void client::impl::connection::arm_reply_deadline() {
    if (in_flight_.empty() || !ready_) {
        return;
    }
    const steady::time_point due = in_flight_.front()->deadline;
    if (reply_deadline_armed_ && reply_deadline_at_ <= due) {
        return;  // fires first and moves on to this one
    }
    reply_deadline_armed_ = true;
    reply_deadline_at_ = due;
    reply_deadline_.expires_at(due);
    reply_deadline_.async_wait([this, alive = alive_, due](boost::system::error_code ec) {
        // A wait replaced by an earlier one (or the connection gone) leaves the state alone.
        if (ec || !*alive || !reply_deadline_armed_ || reply_deadline_at_ != due) {
            return;
        }
        reply_deadline_armed_ = false;
        on_reply_deadline();
    });
}

void client::impl::connection::on_reply_deadline() {
    if (in_flight_.empty()) {
        return;
    }
    if (in_flight_.front()->deadline > steady::now()) {
        return arm_reply_deadline();  // the commands it was for were answered in time
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
}

void client::impl::connection::drop() {
    if (ac_ != nullptr) {
        redisAsyncContext* ac = ac_;
        ac_ = nullptr;
        dropping_ = true;
        redisAsyncFree(ac);
        dropping_ = false;
    }
    retry_later();
}

void client::impl::connection::retry_later() {
    ready_ = false;
    subscribed_ = false;
    ++setup_arms_;  // a set-up deadline handler already queued is outdated
    setup_deadline_.cancel();
    reply_deadline_.cancel();
    reply_deadline_armed_ = false;
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

}  // namespace pm_agent::redis
