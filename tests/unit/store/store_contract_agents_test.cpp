// Store contract: agent records and the admin queries (listings, stats, queue depths).
#include "store_contract.hpp"

namespace pm_agent::store::testing {

TEST_P(store_contract, RegisterStoresTheAgentOnline) {
    new_agent spec = agent_spec("a_1", {"q1", "q2"}, {"gpu"}, 3);
    spec.labels = {{"zone", "eu"}};
    spec.token_hash[0] = 42;
    auto a = register_agent(std::move(spec), at(5));
    ASSERT_TRUE(a);
    EXPECT_EQ(a->id, "a_1");
    EXPECT_EQ(a->name, "worker");
    EXPECT_EQ(a->queues, (std::vector<std::string>{"q1", "q2"}));
    EXPECT_EQ(a->capabilities, std::vector<std::string>{"gpu"});
    EXPECT_EQ(a->labels.at("zone"), "eu");
    EXPECT_EQ(a->max_concurrency, 3u);
    EXPECT_EQ(a->status, agent_status::online);
    EXPECT_EQ(a->running, 0u);
    EXPECT_EQ(a->registered_at, at(5));
    EXPECT_EQ(a->last_heartbeat, at(5));
    EXPECT_EQ(a->worker, "test:1");
    EXPECT_EQ(get_agent("a_1")->token_hash[0], 42);
    EXPECT_EQ(register_agent(agent_spec("a_1"), at(6)).err().code, errc::conflict);
}

TEST_P(store_contract, DeregisterRequeuesItsTasksAndForgetsIt) {
    ASSERT_TRUE(register_agent(agent_spec("a_1"), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_1"), at(0)));
    new_task once = task_spec("t_2");
    once.max_attempts = 1;
    ASSERT_TRUE(submit_one(std::move(once), at(0)));
    ASSERT_EQ(claim_ids("a_1", 2, at(1)).size(), 2u);
    auto r = deregister("a_1", at(2));
    ASSERT_TRUE(r);
    ASSERT_EQ(r->size(), 2u);
    EXPECT_EQ(get_task("t_1")->status, task_status::pending);
    EXPECT_EQ(get_task("t_2")->status, task_status::dead);
    EXPECT_EQ(get_task("t_2")->error, "agent deregistered; no attempts left");
    EXPECT_EQ(get_agent("a_1").err().code, errc::not_found);
    EXPECT_EQ(stats()->agents[static_cast<std::size_t>(agent_status::online)], 0u);
}

TEST_P(store_contract, ReleasingAnAgentsTasksKeepsTheAgent) {
    ASSERT_TRUE(register_agent(agent_spec("a_1"), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_1"), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_2"), at(0)));
    ASSERT_EQ(claim_ids("a_1", 2, at(1)).size(), 2u);
    auto r = release_agent_tasks("a_1", at(2));
    ASSERT_TRUE(r);
    ASSERT_EQ(r->size(), 2u);
    EXPECT_EQ((*r)[0].reason, release_reason::disconnected);
    EXPECT_EQ((*r)[0].status, task_status::pending);
    EXPECT_EQ(get_task("t_1")->status, task_status::pending);
    EXPECT_EQ(get_task("t_1")->attempts, 1);
    auto a = get_agent("a_1");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->status, agent_status::online);
    EXPECT_EQ(a->running, 0u);
    EXPECT_EQ(heartbeat("a_1", std::nullopt, at(3))->cancel.size(), 2u);
    EXPECT_EQ(release_agent_tasks("a_nope", at(3)).err().code, errc::not_found);
}

TEST_P(store_contract, ListAgentsFiltersAndPages) {
    ASSERT_TRUE(register_agent(agent_spec("a_1", {"x"}), at(0)));
    ASSERT_TRUE(register_agent(agent_spec("a_2", {"x", "y"}), at(1)));
    ASSERT_TRUE(register_agent(agent_spec("a_3", {"y"}), at(2)));
    ASSERT_TRUE(register_agent(agent_spec("a_4", {"x"}), at(3)));
    ASSERT_TRUE(heartbeat("a_4", agent_status::draining, at(4)));
    agent_filter f;
    f.queue = "x";
    f.limit = 2;
    auto p1 = list_agents(f);
    ASSERT_TRUE(p1);
    ASSERT_EQ(p1->items.size(), 2u);
    EXPECT_EQ(p1->items[0].id, "a_1");
    EXPECT_EQ(p1->items[1].id, "a_2");
    ASSERT_TRUE(p1->next_cursor);
    f.cursor = *p1->next_cursor;
    auto p2 = list_agents(f);
    ASSERT_TRUE(p2);
    ASSERT_EQ(p2->items.size(), 1u);
    EXPECT_EQ(p2->items[0].id, "a_4");
    EXPECT_FALSE(p2->next_cursor);
    agent_filter draining;
    draining.status = agent_status::draining;
    auto d = list_agents(draining);
    ASSERT_EQ(d->items.size(), 1u);
    EXPECT_EQ(d->items[0].id, "a_4");
    agent_filter bad;
    bad.cursor = "not-a-cursor";
    EXPECT_EQ(list_agents(bad).err().code, errc::bad_request);
}

TEST_P(store_contract, ListTasksNewestFirstWithFiltersAndCursor) {
    ASSERT_TRUE(register_agent(agent_spec("a_1", {"x", "y"}, {}, 10), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_1", "x"), at(1)));
    ASSERT_TRUE(submit_one(task_spec("t_2", "y"), at(2)));
    new_task typed = task_spec("t_3", "x");
    typed.type = "special";
    ASSERT_TRUE(submit_one(std::move(typed), at(3)));
    ASSERT_TRUE(submit_one(task_spec("t_4", "x"), at(4)));
    ASSERT_EQ(claim_ids("a_1", 1, at(5)), std::vector<std::string>{"t_1"});

    task_filter all;
    all.limit = 3;
    auto p1 = list_tasks(all);
    ASSERT_TRUE(p1);
    ASSERT_EQ(p1->items.size(), 3u);
    EXPECT_EQ(p1->items[0].id, "t_4");
    EXPECT_EQ(p1->items[2].id, "t_2");
    ASSERT_TRUE(p1->next_cursor);
    all.cursor = *p1->next_cursor;
    auto p2 = list_tasks(all);
    ASSERT_EQ(p2->items.size(), 1u);
    EXPECT_EQ(p2->items[0].id, "t_1");
    EXPECT_FALSE(p2->next_cursor);

    task_filter pending_x;
    pending_x.status = task_status::pending;
    pending_x.queue = "x";
    pending_x.limit = 1;
    auto q1 = list_tasks(pending_x);
    ASSERT_EQ(q1->items.size(), 1u);
    EXPECT_EQ(q1->items[0].id, "t_4");
    pending_x.cursor = *q1->next_cursor;
    auto q2 = list_tasks(pending_x);
    ASSERT_EQ(q2->items.size(), 1u);
    EXPECT_EQ(q2->items[0].id, "t_3");
    EXPECT_FALSE(q2->next_cursor);

    task_filter special;
    special.type = "special";
    EXPECT_EQ(list_tasks(special)->items.size(), 1u);
    task_filter by_agent;
    by_agent.agent_id = "a_1";
    auto held = list_tasks(by_agent);
    ASSERT_EQ(held->items.size(), 1u);
    EXPECT_EQ(held->items[0].id, "t_1");
    task_filter bad;
    bad.cursor = "x1";
    EXPECT_EQ(list_tasks(bad).err().code, errc::bad_request);
}

TEST_P(store_contract, StatsAndQueueDepthsCountByStatus) {
    ASSERT_TRUE(register_agent(agent_spec("a_1", {"x"}), at(0)));
    ASSERT_TRUE(register_agent(agent_spec("a_2", {"x"}), at(0)));
    ASSERT_TRUE(heartbeat("a_2", agent_status::draining, at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_1", "x"), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_2", "x"), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_3", "y"), at(0)));
    ASSERT_EQ(claim_ids("a_1", 1, at(1)).size(), 1u);
    ASSERT_TRUE(cancel("t_3", at(2)));
    auto s = stats();
    ASSERT_TRUE(s);
    auto n = [](const status_counts& c, task_status st) { return c[static_cast<std::size_t>(st)]; };
    EXPECT_EQ(n(s->tasks, task_status::pending), 1u);
    EXPECT_EQ(n(s->tasks, task_status::assigned), 1u);
    EXPECT_EQ(n(s->tasks, task_status::cancelled), 1u);
    ASSERT_EQ(s->queues.size(), 2u);
    EXPECT_EQ(s->queues[0].first, "x");
    EXPECT_EQ(n(s->queues[0].second, task_status::pending), 1u);
    EXPECT_EQ(n(s->queues[0].second, task_status::assigned), 1u);
    EXPECT_EQ(s->queues[1].first, "y");
    EXPECT_EQ(n(s->queues[1].second, task_status::cancelled), 1u);
    EXPECT_EQ(s->agents[static_cast<std::size_t>(agent_status::online)], 1u);
    EXPECT_EQ(s->agents[static_cast<std::size_t>(agent_status::draining)], 1u);
    auto d = queue_depths();
    ASSERT_TRUE(d);
    ASSERT_EQ(d->size(), 2u);
    EXPECT_EQ((*d)[0].queue, "x");
    EXPECT_EQ((*d)[0].pending, 1u);
    EXPECT_EQ((*d)[1].pending, 0u);
}

TEST_P(store_contract, AQueueWithNoTasksAndNoAgentsLeavesTheStats) {
    ASSERT_TRUE(register_agent(agent_spec("a_1", {"tmp"}), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_1", "tmp"), at(0)));
    ASSERT_TRUE(cancel("t_1", at(1)));
    ASSERT_TRUE(deregister("a_1", at(2)));
    ASSERT_TRUE(reap(at(601)));  // retention ends for the cancelled task
    auto s = stats();
    ASSERT_TRUE(s);
    for (const auto& [queue, counts] : s->queues) {
        EXPECT_NE(queue, "tmp");
    }
    EXPECT_TRUE(queue_depths()->empty());
}

}  // namespace pm_agent::store::testing
