// The Redis client against real servers: PM_AGENT_TEST_REDIS_URL (scripts/test.sh starts one)
// and private ones started here with scripts/redis_server.sh for outages.
#include "pm_agent/redis/client.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "../api/redis_link_fixture.hpp"
#include "redis/redis_url.hpp"

namespace pm_agent::redis {
namespace {

using api::testing::redis_link_test;

TEST(redis_url, Parts) {
    auto e = parse_redis_url("redis://127.0.0.1:6380/2");
    EXPECT_EQ(e.host, "127.0.0.1");
    EXPECT_EQ(e.port, 6380);
    EXPECT_EQ(e.db, 2);
    EXPECT_FALSE(e.password);
    e = parse_redis_url("redis://:s%40cret@cache");
    EXPECT_EQ(e.host, "cache");
    EXPECT_EQ(e.port, 6379);
    EXPECT_EQ(e.password, "s@cret");
    EXPECT_FALSE(e.user);
    e = parse_redis_url("redis://app:pw@cache:1/0");
    EXPECT_EQ(e.user, "app");
    EXPECT_EQ(e.password, "pw");
    for (const char* bad : {"http://x", "redis://", "redis://h:0", "redis://h:99999",
                            "redis://h/x", "not a url"}) {
        EXPECT_THROW(parse_redis_url(bad), std::invalid_argument) << bad;
    }
    try {
        parse_redis_url("redis://:hunter2@h:0");
    } catch (const std::invalid_argument& e) {
        EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos);
    }
}

/// Runs a shell command; its stdout without the trailing newline.
std::string shell(const std::string& cmd) {
    std::string out;
    FILE* f = ::popen(cmd.c_str(), "r");
    if (f == nullptr) {
        return out;
    }
    char buf[256];
    while (std::fgets(buf, sizeof buf, f) != nullptr) {
        out += buf;
    }
    ::pclose(f);
    while (!out.empty() && out.back() == '\n') {
        out.pop_back();
    }
    return out;
}

class redis_client_test : public redis_link_test {
  protected:
    std::optional<reply> call(::pm_agent::redis::client& c, std::vector<std::string> args) {
        std::optional<reply> out;
        bool answered = false;
        c.command(std::move(args), [&](std::optional<reply> r) {
            out = std::move(r);
            answered = true;
        });
        EXPECT_TRUE(run_until([&] { return answered; }));
        return out;
    }

    /// A private server (for outages): its directory, removed at the end.
    std::string private_server() {
        const char* src = std::getenv("PM_AGENT_SOURCE_DIR");
        script_ = std::string(src != nullptr ? src : ".") + "/scripts/redis_server.sh";
        dir_ = shell("mktemp -d /tmp/pm-redis-test.XXXXXX");
        return shell(script_ + " start " + dir_ + "/r");
    }
    void TearDown() override {
        if (!dir_.empty()) {
            shell(script_ + " stop " + dir_ + "/r; rmdir " + dir_);
        }
    }
    std::string script_, dir_;
};

TEST_F(redis_client_test, CommandsArePipelinedAndBinarySafe) {
    auto c = client();
    const std::string key = "pm-test:" + std::to_string(::getpid());
    const std::string value("a b\0c", 5);
    ASSERT_EQ(call(*c, {"SET", key, value})->str, "OK");
    EXPECT_EQ(call(*c, {"GET", key})->str, value);
    // Many in flight at once, each answered to its own callback.
    std::vector<std::int64_t> got(200, -1);
    int answered = 0;
    for (int i = 0; i < 200; ++i) {
        c->command({"INCR", key + ":n"}, [&, i](std::optional<reply> r) {
            ASSERT_TRUE(r);
            got[static_cast<std::size_t>(i)] = r->integer;
            ++answered;
        });
    }
    EXPECT_GT(c->status().in_flight, 0u);
    ASSERT_TRUE(run_until([&] { return answered == 200; }));
    std::sort(got.begin(), got.end());
    for (int i = 0; i < 200; ++i) {
        EXPECT_EQ(got[static_cast<std::size_t>(i)], got[0] + i);
    }
    auto err = call(*c, {"INCR", key});  // not an integer
    ASSERT_TRUE(err);
    EXPECT_TRUE(err->is_error());
    auto arr = call(*c, {"EVAL", "return {1, 'two', {3}}", "0"});
    ASSERT_TRUE(arr);
    ASSERT_EQ(arr->kind, reply::type::array);
    ASSERT_EQ(arr->elements.size(), 3u);
    EXPECT_EQ(arr->elements[1].str, "two");
    EXPECT_EQ(arr->elements[2].elements[0].integer, 3);
    call(*c, {"DEL", key, key + ":n"});
}

TEST_F(redis_client_test, NoServerFailsFast) {
    auto c = client("redis://127.0.0.1:1");
    const auto started = std::chrono::steady_clock::now();
    auto r = call(*c, {"PING"});
    EXPECT_FALSE(r);
    EXPECT_FALSE(c->healthy());
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(500));
}

TEST_F(redis_client_test, ASlowServerTimesOutAndTheClientRecovers) {
    auto c = client();
    auto other = client();
    // Pauses every client but answers the pause itself.
    ASSERT_EQ(call(*other, {"CLIENT", "PAUSE", "600"})->str, "OK");
    const auto started = std::chrono::steady_clock::now();
    auto r = call(*c, {"PING"});
    const auto took = std::chrono::steady_clock::now() - started;
    EXPECT_FALSE(r);
    EXPECT_GE(took, std::chrono::milliseconds(150));
    EXPECT_LT(took, std::chrono::milliseconds(550));
    ASSERT_TRUE(run_until([&] { return c->healthy() && call(*c, {"PING"}).has_value(); },
                          std::chrono::seconds(5)));
}

TEST_F(redis_client_test, ReconnectsAndResubscribesAfterAnOutage) {
    const std::string url = private_server();
    ASSERT_FALSE(url.empty());
    auto c = client(url);
    int subscribed = 0;
    std::vector<std::string> messages;
    c->subscribe({"pm-test-ch"},
                 [&](std::string_view ch, std::string_view payload) {
                     messages.push_back(std::string(ch) + "=" + std::string(payload));
                 },
                 [&] { ++subscribed; });
    ASSERT_TRUE(run_until([&] { return c->healthy() && subscribed == 1; }));
    EXPECT_EQ(call(*c, {"PUBLISH", "pm-test-ch", "one"})->integer, 1);
    ASSERT_TRUE(run_until([&] { return messages.size() == 1; }));
    EXPECT_EQ(messages[0], "pm-test-ch=one");

    shell(script_ + " halt " + dir_ + "/r");
    ASSERT_TRUE(run_until([&] { return !c->healthy() && !c->status().subscribed; }));
    EXPECT_FALSE(call(*c, {"PING"}));
    shell(script_ + " start " + dir_ + "/r");
    ASSERT_TRUE(run_until([&] { return c->healthy() && subscribed == 2; },
                          std::chrono::seconds(10)));
    call(*c, {"PUBLISH", "pm-test-ch", "two"});
    ASSERT_TRUE(run_until([&] { return messages.size() == 2; }));
    EXPECT_EQ(messages[1], "pm-test-ch=two");
}

TEST_F(redis_client_test, AWrongPasswordNeverBecomesHealthy) {
    const std::string url = private_server();
    ASSERT_FALSE(url.empty());
    auto admin = client(url);
    ASSERT_TRUE(run_until([&] { return admin->healthy(); }));
    call(*admin, {"CONFIG", "SET", "requirepass", "right"});
    const std::string hostport = url.substr(std::string("redis://").size());
    auto wrong = client("redis://:wrong@" + hostport);
    auto right = client("redis://:right@" + hostport + "/1");
    ASSERT_TRUE(run_until([&] { return right->healthy(); }));
    EXPECT_EQ(call(*right, {"SET", "k", "v"})->str, "OK");
    run_until([] { return false; }, std::chrono::milliseconds(300));
    EXPECT_FALSE(wrong->healthy());
}

TEST_F(redis_client_test, DestroyedWithCommandsInFlightCallsNothing) {
    auto c = client();
    int called = 0;
    for (int i = 0; i < 50; ++i) {
        c->command({"PING"}, [&](std::optional<reply>) { ++called; });
    }
    c.reset();
    run_until([] { return false; }, std::chrono::milliseconds(100));
    EXPECT_EQ(called, 0);
}

}  // namespace
}  // namespace pm_agent::redis
