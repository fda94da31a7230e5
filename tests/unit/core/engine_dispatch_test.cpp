// Engine: dispatch across many agents, queues and capability sets; latency observation.
#include <map>
#include <set>

#include "engine_fixture.hpp"

namespace pm_agent::core::testing {

using std::chrono::milliseconds;

namespace {

struct latency_recorder final : engine_observer {
    void on_dispatched(store::time_point ready_at) override { seen.push_back(ready_at); }
    std::vector<store::time_point> seen;
};

}  // namespace

TEST_F(engine_test, ManyAgentsAndQueuesGetOnlyMatchingWork) {
    // 24 WebSocket agents over 3 queues x {no caps, gpu, gpu+ssd} x 2 agents, 2 credits each.
    const std::vector<std::string> queues{"q0", "q1", "q2"};
    const std::vector<std::vector<std::string>> cap_sets{{}, {"gpu"}, {"gpu", "ssd"}};
    std::vector<std::unique_ptr<fake_sink>> sinks;
    std::map<std::string, std::pair<std::string, std::vector<std::string>>> agent_of_sink;
    std::vector<std::pair<fake_sink*, std::string>> agents;
    for (const auto& q : queues) {
        for (const auto& caps : cap_sets) {
            for (int i = 0; i < 2; ++i) {
                sinks.push_back(std::make_unique<fake_sink>());
                const std::string id = add_ws_agent(*sinks.back(), 2, {q}, caps, 2);
                agents.emplace_back(sinks.back().get(), id);
                agent_of_sink[id] = {q, caps};
            }
        }
    }
    // 3 queues x 3 requirement sets x 4 tasks = 36 tasks; 48 slots in total, but a task needing
    // gpu+ssd fits only 2 agents per queue (4 slots): exactly its 4 tasks.
    std::map<std::string, std::pair<std::string, std::vector<std::string>>> task_needs;
    for (int round = 0; round < 4; ++round) {
        for (const auto& q : queues) {
            for (const auto& caps : cap_sets) {
                task_needs[submit(q, round, caps)] = {q, caps};
            }
        }
    }
    std::set<std::string> delivered;
    std::size_t busy_agents = 0;
    for (const auto& [sink, id] : agents) {
        const auto& [agent_queue, agent_caps] = agent_of_sink[id];
        EXPECT_LE(sink->tasks.size(), 2u);
        busy_agents += sink->tasks.empty() ? 0 : 1;
        for (const store::task& t : sink->tasks) {
            EXPECT_EQ(t.agent_id, id);
            EXPECT_EQ(t.queue, agent_queue);
            EXPECT_TRUE(store::is_subset(t.required_capabilities, agent_caps))
                << t.id << " went to an agent without its capabilities";
            EXPECT_TRUE(delivered.insert(t.id).second) << t.id << " delivered twice";
        }
    }
    EXPECT_EQ(delivered.size(), task_needs.size());
    EXPECT_EQ(engine_.counters().dispatched, task_needs.size());
    // Round-robin: 36 tasks over 24 agents leave no agent idle.
    EXPECT_EQ(busy_agents, agents.size());
}

TEST_F(engine_test, WorkGoesToWhoeverIsAvailableRoundRobin) {
    std::vector<std::unique_ptr<fake_sink>> sinks;
    for (int i = 0; i < 5; ++i) {
        sinks.push_back(std::make_unique<fake_sink>());
        add_ws_agent(*sinks.back(), 4);
    }
    for (int i = 0; i < 10; ++i) {
        submit();
    }
    for (const auto& s : sinks) {
        EXPECT_EQ(s->tasks.size(), 2u);
    }
}

TEST_F(engine_test, PendingBacklogDrainsInPriorityOrderAcrossPolls) {
    const std::string a = add_agent({"q"}, {}, 100);
    std::vector<std::string> expected;
    for (int p : {1, 3, 2, 3}) {
        submit("q", p);
    }
    auto r = poll(a, 10, milliseconds(0));
    ASSERT_EQ(r->tasks.size(), 4u);
    EXPECT_EQ(r->tasks[0].priority, 3);
    EXPECT_EQ(r->tasks[1].priority, 3);
    EXPECT_LT(r->tasks[0].seq, r->tasks[1].seq);
    EXPECT_EQ(r->tasks[2].priority, 2);
    EXPECT_EQ(r->tasks[3].priority, 1);
}

// The observer is told since when each assigned task was pending, and measures the latency
// with its own clock.
TEST_F(engine_test, DispatchLatencyIsObserved) {
    latency_recorder rec;
    engine_.set_observer(&rec);
    fake_sink sink;
    const std::string a = add_ws_agent(sink, 0);
    const auto first_submitted = now_;
    submit();
    now_ += milliseconds(2000);
    ASSERT_TRUE(engine_.ready(a, 1, now_));
    ASSERT_EQ(rec.seen.size(), 1u);
    EXPECT_EQ(rec.seen[0], first_submitted);
    submit();
    engine_.ready(a, 1, now_);
    ASSERT_EQ(rec.seen.size(), 2u);
    EXPECT_EQ(rec.seen[1], now_);
    engine_.set_observer(nullptr);
}

TEST_F(engine_test, MixedWebSocketAndLongPollConsumers) {
    fake_sink sink;
    const std::string ws = add_ws_agent(sink, 1, {"default"}, {}, 1);
    const std::string rest = add_agent({"default"}, {}, 1);
    auto p = poll(rest, 1, milliseconds(30000));
    const std::string t1 = submit();
    const std::string t2 = submit();
    const std::string t3 = submit();
    EXPECT_EQ(sink.tasks.size(), 1u);
    ASSERT_TRUE(p->answered);
    EXPECT_EQ(p->tasks.size(), 1u);
    std::set<std::string> got{sink.tasks[0].id, p->tasks[0].id};
    EXPECT_EQ(got, (std::set<std::string>{t1, t2}));
    EXPECT_EQ(get(t3)->status, store::task_status::pending);
    EXPECT_FALSE(ws.empty());
}

}  // namespace pm_agent::core::testing
