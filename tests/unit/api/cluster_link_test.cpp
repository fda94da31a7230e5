// The cluster link between two workers through a real Redis (PM_AGENT_TEST_REDIS_URL): two
// engines over one memory store stand for two workers over one database.
#include "api/cluster_link.hpp"

#include <random>

#include "../core/engine_fixture.hpp"
#include "pm_agent/store/memory_store.hpp"
#include "redis_link_fixture.hpp"

namespace pm_agent::api::testing {
namespace {

using core::testing::fake_sink;

/// What service_state does in production: engine events to the link.
struct forwarder final : core::engine_observer {
    cluster_link* link = nullptr;
    void on_dispatched(store::time_point) override {}
    void on_heartbeat(const store::agent& a, store::time_point now) override {
        link->on_heartbeat(a.id, now);
    }
    void on_unclaimed(std::string_view queue) override { link->on_unclaimed(queue); }
    void on_hungry(std::string_view queue) override { link->on_hungry(queue); }
    void on_notice_elsewhere(std::string_view agent) override { link->on_notice_elsewhere(agent); }
};

core::engine_options engine_options() {
    core::engine_options o;
    o.queue.task_queue_size = 1000;
    o.agents.heartbeat_timeout = std::chrono::seconds(45);
    o.agents.lease_timeout = std::chrono::seconds(60);
    return o;
}

}  // namespace

// Long, so that the timing of the window test holds on a loaded machine.
constexpr std::chrono::milliseconds k_test_wake_window{300};

class cluster_link_test : public redis_link_test {
  protected:
    void SetUp() override {
        redis_link_test::SetUp();
        if (IsSkipped()) {
            return;
        }
        store_ = store::make_memory_store(engine_options().queue, engine_options().agents);
        const std::string run = std::to_string(std::random_device{}());
        for (int i = 0; i < 2; ++i) {
            redis_[i] = client();
            engine_[i] = std::make_unique<core::engine>(*store_, engine_options(), rng_);
            link_[i] = std::make_unique<cluster_link>(
                ioc_, *redis_[i], *engine_[i], "w" + std::to_string(i) + "-" + run,
                std::chrono::seconds(30), registry_, k_test_wake_window);
            observer_[i].link = link_[i].get();
            engine_[i]->set_observer(&observer_[i]);
            link_[i]->start();
        }
        ASSERT_TRUE(run_until([&] { return link_[0]->healthy() && link_[1]->healthy(); }));
    }
    void TearDown() override {
        for (int i = 0; i < 2; ++i) {
            if (engine_[i]) {
                engine_[i]->set_observer(nullptr);
            }
        }
    }

    /// An agent attached to worker 0 with `credit` slots.
    std::string attach_on_0(fake_sink& sink, std::uint32_t credit,
                            std::vector<std::string> queues = {"default"}) {
        core::agent_spec spec;
        spec.name = "a";
        spec.queues = std::move(queues);
        spec.max_concurrency = 4;
        std::string id;
        engine_[0]->register_agent(std::move(spec), now(), [&](auto r) {
            ASSERT_TRUE(r);
            id = r->agent->id;
        });
        engine_[0]->attach(id, sink, now(), [](auto r) { ASSERT_TRUE(r); });
        engine_[0]->ready(id, credit, now());
        return id;
    }
    std::string submit_on_1(std::string queue = "default") {
        core::task_spec spec;
        spec.type = "t";
        spec.queue = std::move(queue);
        std::string id;
        engine_[1]->submit(std::move(spec), now(), [&](store::result<store::submitted> r) {
            ASSERT_TRUE(r);
            id = r->record->id;
        });
        return id;
    }
    static store::time_point now() { return store::clock::now(); }

    std::unique_ptr<store::store> store_;
    core::seeded_random rng_{3};
    std::unique_ptr<redis::client> redis_[2];
    std::unique_ptr<core::engine> engine_[2];
    std::unique_ptr<cluster_link> link_[2];
    forwarder observer_[2];
};

TEST_F(cluster_link_test, ATaskSubmittedOnOneWorkerWakesAnIdleAgentOnTheOther) {
    fake_sink sink;
    attach_on_0(sink, 1);
    const std::string t = submit_on_1();
    EXPECT_TRUE(sink.tasks.empty());  // nothing but the wake-up can deliver it
    ASSERT_TRUE(run_until([&] { return !sink.tasks.empty(); }, std::chrono::seconds(2)));
    EXPECT_EQ(sink.tasks.front().id, t);
}

// Wake-ups for one queue leave at most once per window: tasks submitted right after the first
// (their wake-ups held) still reach the idle agent on the other worker, at the end of the
// window, and three submits in separate turns cost worker 1 two PUBLISHes, not three.
TEST_F(cluster_link_test, AWakeUpHeldWithinTheWindowStillArrives) {
    fake_sink sink;
    const std::string a = attach_on_0(sink, 1);
    auto& published = registry_
                          .counter("pm_agent_cluster_messages_published_total",
                                   "Wake-ups and cancel notices published to other workers.")
                          .get();
    const double before = published.value();
    const auto started = std::chrono::steady_clock::now();
    const std::string first = submit_on_1();
    ASSERT_TRUE(run_until([&] { return sink.tasks.size() == 1; }, std::chrono::seconds(2)));
    EXPECT_LT(std::chrono::steady_clock::now() - started, k_test_wake_window);  // not held
    // The agent is free again at once; the next tasks' wake-ups fall in the same window.
    engine_[0]->complete(store::lease_ref{first, a}, boost::json::value(nullptr), now(),
                         [](auto r) { ASSERT_TRUE(r); });
    const std::string second = submit_on_1();
    run_until([] { return false; }, std::chrono::milliseconds(20));
    submit_on_1();
    EXPECT_EQ(sink.tasks.size(), 1u);  // held
    ASSERT_TRUE(run_until([&] { return sink.tasks.size() == 2; }, std::chrono::seconds(2)));
    EXPECT_GE(std::chrono::steady_clock::now() - started, k_test_wake_window);
    EXPECT_EQ(sink.tasks[1].id, second);
    run_until([] { return false; }, 2 * k_test_wake_window);
    EXPECT_EQ(published.value(), before + 2);
}

// Nobody waits (the one agent is busy): worker 1 publishes no wake-up for its tasks. When the
// agent is free again and finds nothing, its worker says so, and worker 1's next task wakes it.
TEST_F(cluster_link_test, NoWakeUpIsPublishedWhileNoOtherWorkerWaits) {
    auto& published = registry_
                          .counter("pm_agent_cluster_messages_published_total",
                                   "Wake-ups and cancel notices published to other workers.")
                          .get();
    auto& skipped = registry_
                        .counter("pm_agent_cluster_wakeups_skipped_total",
                                 "Wake-ups not published: no other worker had a consumer of the "
                                 "queue waiting.")
                        .get();
    fake_sink sink;
    const std::string a = attach_on_0(sink, 1);
    const std::string first = submit_on_1();
    ASSERT_TRUE(run_until([&] { return sink.tasks.size() == 1; }, std::chrono::seconds(2)));
    run_until([] { return false; }, k_hunger_ttl + std::chrono::milliseconds(200));  // lapsed
    const double before = published.value();
    const double skipped_before = skipped.value();
    for (int i = 0; i < 5; ++i) {
        submit_on_1();  // the agent holds `first`: nobody is free for these
        run_until([] { return false; }, std::chrono::milliseconds(20));
    }
    EXPECT_EQ(published.value(), before);
    EXPECT_EQ(skipped.value(), skipped_before + 5);
    // Free again: worker 0's claim takes the next of them itself (they are in the shared store).
    engine_[0]->complete(store::lease_ref{first, a}, boost::json::value(nullptr), now(),
                         [](auto r) { ASSERT_TRUE(r); });
    EXPECT_EQ(sink.tasks.size(), 2u);
}

// An agent waiting on several queues: one message names them all, and a task of any of them
// on the other worker wakes it.
TEST_F(cluster_link_test, OneHungerMessageNamesEveryQueueWaitedOn) {
    auto& hunger = registry_
                       .counter("pm_agent_cluster_hunger_published_total",
                                "Hunger messages published (each names the queues with consumers "
                                "here waiting).")
                       .get();
    const double before = hunger.value();
    fake_sink sink;
    attach_on_0(sink, 1, {"q1", "q2", "q3"});
    run_until([] { return false; }, std::chrono::milliseconds(100));
    EXPECT_EQ(hunger.value(), before + 1);
    const std::string t = submit_on_1("q3");
    ASSERT_TRUE(run_until([&] { return !sink.tasks.empty(); }, std::chrono::seconds(2)));
    EXPECT_EQ(sink.tasks.front().id, t);
}

TEST_F(cluster_link_test, ACancelOnOneWorkerReachesTheAgentOnTheOtherOnce) {
    fake_sink sink;
    const std::string a = attach_on_0(sink, 1);
    const std::string t = submit_on_1();
    ASSERT_TRUE(run_until([&] { return !sink.tasks.empty(); }, std::chrono::seconds(2)));
    engine_[1]->cancel(t, now(), [](auto r) { ASSERT_TRUE(r); });
    ASSERT_TRUE(run_until([&] { return !sink.cancels.empty(); }, std::chrono::seconds(2)));
    EXPECT_EQ(sink.cancels, std::vector<std::string>{t});
    run_until([] { return false; }, std::chrono::milliseconds(200));
    EXPECT_EQ(sink.cancels.size(), 1u);
}

TEST_F(cluster_link_test, HeartbeatsArePresenceInRedis) {
    fake_sink sink;
    const std::string a = attach_on_0(sink, 0);  // the attach counts as a heartbeat
    std::vector<std::optional<std::int64_t>> seen;
    bool answered = false;
    const auto before =
        std::chrono::duration_cast<std::chrono::milliseconds>(now().time_since_epoch()).count();
    ASSERT_TRUE(run_until([&] {
        if (answered && seen.size() == 2 && seen[0]) {
            return true;
        }
        answered = false;
        link_[1]->last_heartbeats({a, "a_nobody"}, [&](auto v) {
            seen = std::move(v);
            answered = true;
        });
        run_until([&] { return answered; });
        return seen.size() == 2 && seen[0].has_value();
    }));
    EXPECT_LE(*seen[0], before);
    EXPECT_GT(*seen[0], before - 5000);
    EXPECT_FALSE(seen[1]);
    link_[0]->forget(a);
    ASSERT_TRUE(run_until([&] {
        answered = false;
        link_[1]->last_heartbeats({a}, [&](auto v) {
            seen = std::move(v);
            answered = true;
        });
        run_until([&] { return answered; });
        return !seen[0].has_value();
    }));
}

}  // namespace pm_agent::api::testing
