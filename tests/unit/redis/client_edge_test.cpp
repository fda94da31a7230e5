// The Redis client at its edges: commands it must refuse, a host name to resolve, a command
// too big for one write, set-up commands kept out of the metrics, a server that never confirms
// a subscription, and the client destroyed at awkward moments (inside its own reply callback;
// while a handler of its reconnect timer is already queued). The last two are about lifetimes:
// ASan is the judge.

#include <gtest/gtest.h>

#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../api/redis_link_fixture.hpp"
#include "pm_agent/redis/client.hpp"

namespace pm_agent::redis {
namespace {

using namespace std::chrono_literals;

class redis_edge_test : public api::testing::redis_link_test {
  protected:
    std::optional<reply> call(redis::client& c, std::vector<std::string> args) {
        std::optional<reply> out;
        bool answered = false;
        c.command(std::move(args), [&](std::optional<reply> r) {
            out = std::move(r);
            answered = true;
        });
        EXPECT_TRUE(run_until([&] { return answered; })) << "no answer";
        return out;
    }

    double answered_ok() {
        return registry_
            .counter("pm_agent_redis_commands_total", "Redis commands answered, by outcome",
                     {"outcome"})
            .with({"ok"})
            .value();
    }

    metrics::counter& reconnects() {
        return registry_
            .counter("pm_agent_redis_reconnects_total",
                     "Redis connection attempts after a failure or a lost connection")
            .get();
    }
};

TEST_F(redis_edge_test, EmptyAndPushCommandsAreRefusedAndTheConnectionStaysUsable) {
    auto c = client();
    const std::string channel = "pm-edge:" + std::to_string(::getpid());
    const auto empty = call(*c, {});
    ASSERT_TRUE(empty);
    EXPECT_TRUE(empty->is_error());
    for (const char* push : {"SUBSCRIBE", "psubscribe", "Unsubscribe", "MONITOR", "SSUBSCRIBE"}) {
        const auto refused = call(*c, {push, channel});
        ASSERT_TRUE(refused) << push;
        EXPECT_TRUE(refused->is_error()) << push;
    }
    // Nothing got subscribed behind the client's back, and both connections still answer in
    // order (a SUBSCRIBE sent on one would make hiredis route its replies elsewhere).
    const auto receivers = call(*c, {"PUBLISH", channel, "x"});
    ASSERT_TRUE(receivers);
    EXPECT_EQ(receivers->kind, reply::type::integer);
    EXPECT_EQ(receivers->integer, 0);
    for (int i = 0; i < 4; ++i) {
        const auto pong = call(*c, {"PING"});
        ASSERT_TRUE(pong);
        EXPECT_EQ(pong->str, "PONG");
    }
}

TEST_F(redis_edge_test, AHostNameIsResolvedBeforeConnecting) {
    const std::string prefix = "redis://127.0.0.1:";
    ASSERT_EQ(url_.rfind(prefix, 0), 0u) << "expects the test server on 127.0.0.1";
    auto c = client("redis://localhost:" + url_.substr(prefix.size()));
    ASSERT_TRUE(run_until([&] { return c->healthy(); })) << "never connected via localhost";
    const auto pong = call(*c, {"PING"});
    ASSERT_TRUE(pong);
    EXPECT_EQ(pong->str, "PONG");
}

TEST_F(redis_edge_test, DestroyedInsideItsOwnReplyCallback) {
    // One connection, so every later reply is queued behind the first one on the same socket:
    // hiredis is still reading when the first callback destroys the client.
    client_options o;
    o.url = url_;
    o.pool_size = 1;
    auto c = std::make_unique<redis::client>(ioc_, o, registry_);
    c->start();
    ASSERT_TRUE(run_until([&] { return c->healthy(); }));
    int later = 0;
    bool first = false;
    c->command({"PING"}, [&](std::optional<reply> r) {
        first = true;
        EXPECT_TRUE(r);
        c.reset();
    });
    for (int i = 0; i < 20; ++i) {
        c->command({"PING"}, [&](std::optional<reply>) { ++later; });
    }
    ASSERT_TRUE(run_until([&] { return first; }));
    run_until([] { return false; }, 200ms);
    EXPECT_TRUE(c == nullptr);
    EXPECT_EQ(later, 0);
}

// Far more than a socket buffer takes at once: the rest waits for the socket to drain.
TEST_F(redis_edge_test, ACommandLargerThanTheSocketBufferIsSentWhole) {
    auto c = client();
    const std::string key = "pm-edge:big:" + std::to_string(::getpid());
    const std::string value(16 << 20, 'x');
    ASSERT_EQ(call(*c, {"SET", key, value})->str, "OK");
    EXPECT_EQ(call(*c, {"STRLEN", key})->integer, 16 << 20);
    // And the connection writes small commands at once again afterwards.
    EXPECT_EQ(call(*c, {"DEL", key})->integer, 1);
}

// The commands of one loop turn leave together on one connection (CLIENT ID names it); the
// next turn's go on the next one.
TEST_F(redis_edge_test, OneTurnsCommandsShareOneConnection) {
    auto c = client();
    ASSERT_TRUE(run_until([&] { return c->status().connected == 2; }));
    std::vector<std::int64_t> ids;
    for (int i = 0; i < 5; ++i) {
        c->command({"CLIENT", "ID"}, [&](std::optional<reply> r) {
            ASSERT_TRUE(r);
            ids.push_back(r->integer);
        });
    }
    ASSERT_TRUE(run_until([&] { return ids.size() == 5; }));
    for (std::int64_t id : ids) {
        EXPECT_EQ(id, ids.front());
    }
    const auto next = call(*c, {"CLIENT", "ID"});
    ASSERT_TRUE(next);
    EXPECT_NE(next->integer, ids.front());
}

// SELECT (like AUTH) is each connection's own set-up, not a command anybody sent: it is not
// counted in pm_agent_redis_commands_total.
TEST_F(redis_edge_test, SetUpCommandsAreNotCountedAsCommands) {
    const double before = answered_ok();
    client_options o;
    o.url = url_ + "/1";
    o.pool_size = 2;
    auto c = std::make_unique<redis::client>(ioc_, o, registry_);
    c->start();
    ASSERT_TRUE(run_until([&] { return c->status().connected == 2; }));
    ASSERT_TRUE(call(*c, {"PING"}).has_value());
    EXPECT_EQ(answered_ok(), before + 1);
}

// A server that takes SUBSCRIBE and never confirms it: within the timeout the subscriber
// gives up on that connection and makes a new one, instead of waiting for ever unsubscribed.
TEST_F(redis_edge_test, ASubscriptionNeverConfirmedIsDroppedAndTriedAgain) {
    namespace ip = boost::asio::ip;
    ip::tcp::acceptor silent(ioc_, ip::tcp::endpoint(ip::make_address("127.0.0.1"), 0));
    std::vector<std::shared_ptr<ip::tcp::socket>> accepted;
    std::array<char, 4096> sink{};
    std::function<void(std::shared_ptr<ip::tcp::socket>)> swallow = [&](auto s) {
        s->async_read_some(boost::asio::buffer(sink),
                           [&, s](boost::system::error_code ec, std::size_t) {
                               if (!ec) {
                                   swallow(s);
                               }
                           });
    };
    std::function<void()> accept = [&] {
        auto s = std::make_shared<ip::tcp::socket>(ioc_);
        silent.async_accept(*s, [&, s](boost::system::error_code ec) {
            if (!ec) {
                accepted.push_back(s);
                swallow(s);
                accept();
            }
        });
    };
    accept();
    client_options o;
    o.url = "redis://127.0.0.1:" + std::to_string(silent.local_endpoint().port());
    o.pool_size = 1;
    o.timeout = 100ms;
    o.reconnect_min = 10ms;
    o.reconnect_max = 10ms;
    auto c = std::make_unique<redis::client>(ioc_, o, registry_);
    int subscribed = 0;
    c->subscribe(
        {"pm-edge:silent"}, [](std::string_view, std::string_view) {}, [&] { ++subscribed; });
    const double before = reconnects().value();
    c->start();
    // The command connection and the subscriber, then the subscriber again (and again).
    EXPECT_TRUE(run_until([&] { return accepted.size() >= 3; }, 2s));
    EXPECT_GE(reconnects().value(), before + 1);
    EXPECT_FALSE(c->status().subscribed);
    EXPECT_EQ(subscribed, 0);
    c.reset();
    // Connected is not set up: a subscriber that is never confirmed backs off longer each
    // time (10, 20, 40 ... ms on top of each 100 ms timeout: about 7 attempts in 1.5 s, where a
    // back-off reset by every connect makes 13).
    accepted.clear();
    o.reconnect_max = 2s;
    c = std::make_unique<redis::client>(ioc_, o, registry_);
    c->subscribe(
        {"pm-edge:silent"}, [](std::string_view, std::string_view) {}, [] {});
    c->start();
    run_until([] { return false; }, 1500ms);
    EXPECT_LE(accepted.size(), 10u) << "the subscriber's back-off does not grow";
    EXPECT_GE(accepted.size(), 3u);
    c.reset();
    silent.close();
    ioc_.restart();
    ioc_.run_for(20ms);
}

TEST_F(redis_edge_test, DestroyedWhileItsReconnectHandlerIsAlreadyQueued) {
    client_options o;
    o.url = "redis://127.0.0.1:1";  // nothing listens: every attempt fails at once
    o.pool_size = 1;
    o.reconnect_min = 100ms;
    o.reconnect_max = 100ms;
    auto c = std::make_unique<redis::client>(ioc_, o, registry_);
    const double before = reconnects().value();
    c->start();
    // The second retry waits 50-100 ms (the first may wait ~0).
    ASSERT_TRUE(run_until([&] { return reconnects().value() >= before + 2; }, 3s));
    boost::asio::steady_timer destroyer(ioc_);
    destroyer.expires_after(10ms);
    destroyer.async_wait([&](const boost::system::error_code&) { c.reset(); });
    // Both timers expire while the loop is not running (the test thread waits, not a handler),
    // so one turn of the loop finds both due and runs the earlier one, the destroyer, first: the
    // retry's handler is then already queued with success, out of reach of any cancel().
    const double armed = reconnects().value();
    std::this_thread::sleep_for(150ms);
    ioc_.restart();
    // Handlers of timers cancelled earlier (operation_aborted) may come first.
    for (int i = 0; i < 100 && c != nullptr; ++i) {
        ioc_.run_one();
    }
    ASSERT_TRUE(c == nullptr);
    EXPECT_EQ(reconnects().value(), armed) << "the retry ran before the destroyer";
    ioc_.restart();
    ioc_.run_for(50ms);  // the queued retry handler runs now: it must find the client gone
}

}  // namespace
}  // namespace pm_agent::redis
