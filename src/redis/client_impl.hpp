#pragma once
// Private to src/redis: the client's state (client::impl, shared by its connections) and one
// hiredis connection (connection.cpp). client.cpp routes commands over the pool; connection.cpp
// drives one redisAsyncContext on the loop: connect, AUTH/SELECT, SUBSCRIBE, replies and their
// deadlines, reconnects.

#include <hiredis/async.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "pg/reconnect_delay.hpp"
#include "pm_agent/metrics/registry.hpp"
#include "pm_agent/redis/client.hpp"
#include "redis/redis_url.hpp"

namespace pm_agent::redis {

struct socket_watch;

struct client::impl {
    impl(boost::asio::io_context& io, client_options o, metrics::registry& registry);

    class connection;

    void update_gauges();
    /// Answers an error reply from the loop, later: a command this client never sends.
    void refuse_later(reply_callback done, std::string why) {
        error_reply.inc();
        reply r;
        r.kind = reply::type::error;
        r.str = std::move(why);
        boost::asio::post(ioc, [alive = alive, done = std::move(done), r = std::move(r)]() mutable {
            if (*alive) {
                done(std::move(r));
            }
        });
    }
    /// Answers nullopt from the loop, later (not if the client is gone by then).
    void fail_later(reply_callback done, metrics::counter& why) {
        why.inc();
        boost::asio::post(ioc, [alive = alive, done = std::move(done)]() mutable {
            if (*alive) {
                done(std::nullopt);
            }
        });
    }
    std::chrono::milliseconds backoff(int failures) {
        return pg::reconnect_delay(options.reconnect_min, options.reconnect_max, failures,
                                   std::uniform_real_distribution<double>(0, 1)(rng));
    }

    boost::asio::io_context& ioc;
    client_options options;
    redis_endpoint endpoint;
    std::mt19937_64 rng{std::random_device{}()};
    std::vector<std::unique_ptr<connection>> commands;
    std::unique_ptr<connection> subscriber;
    std::vector<std::string> channels;
    message_callback on_message;
    store::unique_function<void()> on_subscribed;
    std::size_t next = 0;      // the command connection of this loop turn
    bool turn_pinned = false;  // a command went on `next` this turn
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

/// One hiredis connection: a command connection or the subscriber. Set-up (connect, AUTH and
/// SELECT, and for the subscriber SUBSCRIBE until every channel is confirmed) must finish within
/// options.timeout, and so must each command: otherwise the connection is dropped and made
/// again with back-off.
class client::impl::connection {
  public:
    connection(impl& owner, bool subscriber);
    ~connection();

    void start() { resolve(); }
    /// The client is going away: no handler of this connection touches it any more.
    void shutdown() { *alive_ = false; }

    bool usable() const { return subscriber_ ? subscribed_ : ready_; }
    bool connecting() const { return !ready_ && ac_ != nullptr; }
    std::size_t in_flight() const { return in_flight_.size(); }

    /// Sends one command; false (nothing sent) when the context refuses it. An `internal` one
    /// (AUTH, SELECT) is the connection's own: not counted in commands_total.
    bool send(std::vector<std::string>& args, reply_callback& done, bool internal = false);

  private:
    using steady = std::chrono::steady_clock;

    struct pending {
        connection* conn = nullptr;
        reply_callback done;
        steady::time_point deadline;
        bool abandoned = false;  // answered already (timeout) or the client is going away
        bool internal = false;   // AUTH / SELECT of this connection
    };

    void resolve();
    void connect(const std::string& ip);
    static connection* of(const redisAsyncContext* ac);
    static void on_connect(const redisAsyncContext* ac, int status);
    static void on_disconnect(const redisAsyncContext* ac, int status);
    /// AUTH and SELECT as the URL says, pipelined; the connection is usable after them.
    void authenticate();
    void became_ready();
    static void on_pubsub(redisAsyncContext* ac, void* r, void* privdata);
    static void on_reply(redisAsyncContext* ac, void* r, void* privdata);
    void forget(pending* p);
    /// Set-up (connect, AUTH/SELECT, SUBSCRIBE) must be over within the timeout.
    void arm_setup_deadline(const char* event);
    /// The oldest command in flight must be answered by its deadline (Redis answers in order).
    void arm_reply_deadline();
    void on_reply_deadline();
    /// Frees the context (from the loop, never inside a hiredis callback) and reconnects.
    void drop();
    void retry_later();

    impl& owner_;
    const bool subscriber_;
    redisAsyncContext* ac_ = nullptr;
    std::shared_ptr<socket_watch> watch_;
    std::deque<pending*> in_flight_;
    boost::asio::steady_timer retry_;
    boost::asio::steady_timer setup_deadline_;
    std::uint64_t setup_arms_ = 0;  // setup deadlines armed so far (the live one is the last)
    // Armed for the oldest command in flight, and left alone while that deadline is no later
    // than the new oldest one's: when it fires it moves on to the next (no timer call per reply).
    boost::asio::steady_timer reply_deadline_;
    bool reply_deadline_armed_ = false;
    steady::time_point reply_deadline_at_{};
    boost::asio::ip::tcp::resolver resolver_;
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
};

}  // namespace pm_agent::redis
