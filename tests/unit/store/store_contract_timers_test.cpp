// Store contract: everything driven by time (retries, leases, silence, timeouts, schedules,
// retention) and next_due().
#include "store_contract.hpp"

namespace pm_agent::store::testing {

TEST_P(store_contract, RetryableFailureBacksOffThenDies) {
    ASSERT_TRUE(register_agent(agent_spec("a_1"), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_1"), at(0)));
    ASSERT_EQ(claim_ids("a_1", 1, at(0)).size(), 1u);
    // attempts 1: ceiling retry_base = 1 s, jitter 0.5 -> 0.5 s.
    auto f1 = fail("t_1", "a_1", "boom", true, 0.5, at(10));
    ASSERT_TRUE(f1) << f1.err().message;
    EXPECT_EQ(f1->status, task_status::scheduled);
    EXPECT_EQ(f1->run_at, at(10.5));
    EXPECT_EQ(f1->error, "boom");
    EXPECT_FALSE(f1->agent_id);
    EXPECT_EQ(get_agent("a_1")->running, 0u);
    EXPECT_TRUE(claim_ids("a_1", 1, at(10.4)).empty());
    ASSERT_TRUE(reap(at(10.4)));
    EXPECT_EQ(get_task("t_1")->status, task_status::scheduled);
    auto r = reap(at(10.5));
    ASSERT_TRUE(r);
    ASSERT_EQ(r->due.size(), 1u);
    EXPECT_EQ(r->due[0].queue, "default");
    ASSERT_EQ(claim_ids("a_1", 1, at(11)).size(), 1u);
    // attempts 2: ceiling 2 s, jitter 0.5 -> 1 s.
    auto f2 = fail("t_1", "a_1", "boom", true, 0.5, at(20));
    ASSERT_TRUE(f2);
    EXPECT_EQ(f2->run_at, at(21));
    ASSERT_TRUE(reap(at(21)));
    ASSERT_EQ(claim_ids("a_1", 1, at(22)).size(), 1u);
    auto f3 = fail("t_1", "a_1", "boom again", true, 0.5, at(30));
    ASSERT_TRUE(f3);
    EXPECT_EQ(f3->status, task_status::dead);
    EXPECT_EQ(f3->attempts, 3);
    EXPECT_EQ(f3->error, "boom again");
}

TEST_P(store_contract, NonRetryableFailureIsDeadAtOnce) {
    ASSERT_TRUE(register_agent(agent_spec("a_1"), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_1"), at(0)));
    ASSERT_EQ(claim_ids("a_1", 1, at(0)).size(), 1u);
    auto f = fail("t_1", "a_1", "bad input", false, 0.5, at(1));
    ASSERT_TRUE(f);
    EXPECT_EQ(f->status, task_status::dead);
    EXPECT_EQ(f->attempts, 1);
}

TEST_P(store_contract, UnrenewedLeaseExpiresAndTheTaskIsRequeued) {
    ASSERT_TRUE(register_agent(agent_spec("a_1"), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_1"), at(0)));
    ASSERT_EQ(claim_ids("a_1", 1, at(0)).size(), 1u);
    ASSERT_TRUE(heartbeat("a_1", std::nullopt, at(20)));  // lease -> 50 s
    auto early = reap(at(49));
    ASSERT_TRUE(early);
    EXPECT_TRUE(early->released.empty());
    auto r = reap(at(50));
    ASSERT_TRUE(r);
    ASSERT_EQ(r->released.size(), 1u);
    const released_task& rel = r->released[0];
    EXPECT_EQ(rel.task_id, "t_1");
    EXPECT_EQ(rel.agent_id, "a_1");
    EXPECT_EQ(rel.reason, release_reason::lease_expired);
    EXPECT_EQ(rel.status, task_status::pending);
    auto t = get_task("t_1");
    EXPECT_EQ(t->status, task_status::pending);
    EXPECT_EQ(t->attempts, 1);
    EXPECT_FALSE(t->agent_id);
    ASSERT_TRUE(t->error);
    EXPECT_NE(t->error->find("lease"), std::string::npos);
    EXPECT_EQ(get_agent("a_1")->running, 0u);
    EXPECT_EQ(get_agent("a_1")->status, agent_status::online);
    EXPECT_EQ(heartbeat("a_1", std::nullopt, at(51))->cancel, std::vector<std::string>{"t_1"});
}

TEST_P(store_contract, LostLeaseOnTheLastAttemptIsDead) {
    ASSERT_TRUE(register_agent(agent_spec("a_1"), at(0)));
    new_task once = task_spec("t_1");
    once.max_attempts = 1;
    ASSERT_TRUE(submit_one(std::move(once), at(0)));
    ASSERT_EQ(claim_ids("a_1", 1, at(0)).size(), 1u);
    auto r = reap(at(30));
    ASSERT_TRUE(r);
    ASSERT_EQ(r->released.size(), 1u);
    EXPECT_EQ(r->released[0].status, task_status::dead);
    auto t = get_task("t_1");
    EXPECT_EQ(t->status, task_status::dead);
    ASSERT_TRUE(t->error);
    EXPECT_NE(t->error->find("lease expired"), std::string::npos);
}

TEST_P(store_contract, SilentAgentGoesOfflineAndLosesItsTasks) {
    config::agents_config a = agents_config();
    a.lease_timeout = std::chrono::seconds(120);  // silence must win here
    store_ = GetParam().make(queue_config(), a);
    ASSERT_TRUE(register_agent(agent_spec("a_1"), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_1"), at(0)));
    ASSERT_EQ(claim_ids("a_1", 1, at(0)).size(), 1u);
    ASSERT_TRUE(heartbeat("a_1", std::nullopt, at(10)));
    EXPECT_TRUE(reap(at(54))->offline_agents.empty());
    auto r = reap(at(55));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->offline_agents, std::vector<std::string>{"a_1"});
    ASSERT_EQ(r->released.size(), 1u);
    EXPECT_EQ(r->released[0].reason, release_reason::agent_offline);
    EXPECT_EQ(get_agent("a_1")->status, agent_status::offline);
    EXPECT_EQ(get_task("t_1")->status, task_status::pending);
    auto back = heartbeat("a_1", std::nullopt, at(60));
    ASSERT_TRUE(back);
    EXPECT_TRUE(back->came_online);
    EXPECT_EQ(back->record.status, agent_status::online);
    EXPECT_EQ(back->cancel, std::vector<std::string>{"t_1"});
    EXPECT_EQ(claim_ids("a_1", 1, at(61)), std::vector<std::string>{"t_1"});
    EXPECT_EQ(get_task("t_1")->attempts, 2);
}

TEST_P(store_contract, AnAgentsOtherCallsKeepItAliveAndLeaveItsNotices) {
    config::agents_config a = agents_config();
    a.lease_timeout = std::chrono::seconds(120);  // silence must decide here
    store_ = GetParam().make(queue_config(), a);
    ASSERT_TRUE(register_agent(agent_spec("a_1"), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_1"), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_2"), at(0)));
    ASSERT_EQ(claim_ids("a_1", 2, at(0)).size(), 2u);
    ASSERT_TRUE(cancel("t_1", at(1)));  // leaves a notice
    // Calls at 30 s and 60 s, never a heartbeat: alive past 45 s of heartbeat silence.
    for (int s : {30, 60}) {
        auto renewed = renew_liveness("a_1", at(s));
        ASSERT_TRUE(renewed) << renewed.err().message;
        EXPECT_EQ(renewed->status, agent_status::online);
        EXPECT_EQ(renewed->last_heartbeat, at(s));
    }
    EXPECT_TRUE(reap(at(100))->offline_agents.empty());
    EXPECT_EQ(get_task("t_2")->status, task_status::assigned);
    // The notice is still there for the agent's heartbeat.
    EXPECT_EQ(heartbeat("a_1", std::nullopt, at(101))->cancel, std::vector<std::string>{"t_1"});
    // Taken offline by silence, a call brings it back online.
    EXPECT_EQ(reap(at(147))->offline_agents, std::vector<std::string>{"a_1"});
    auto back = renew_liveness("a_1", at(150));
    ASSERT_TRUE(back);
    EXPECT_EQ(back->status, agent_status::online);
    EXPECT_EQ(get_agent("a_1")->status, agent_status::online);
    EXPECT_EQ(renew_liveness("a_nobody", at(150)).err().code, errc::not_found);
}

TEST_P(store_contract, TaskHeldPastItsTimeoutIsTakenBack) {
    ASSERT_TRUE(register_agent(agent_spec("a_1"), at(0)));
    new_task quick = task_spec("t_1");
    quick.timeout_s = 10;
    ASSERT_TRUE(submit_one(std::move(quick), at(0)));
    ASSERT_EQ(claim_ids("a_1", 1, at(1)).size(), 1u);
    ASSERT_TRUE(progress("t_1", "a_1", 0.9, at(9)));  // progress does not extend timeout_s
    EXPECT_TRUE(reap(at(10.9))->released.empty());
    auto r = reap(at(11));
    ASSERT_TRUE(r);
    ASSERT_EQ(r->released.size(), 1u);
    EXPECT_EQ(r->released[0].reason, release_reason::timed_out);
    EXPECT_EQ(r->released[0].agent_id, "a_1");
    auto t = get_task("t_1");
    EXPECT_EQ(t->status, task_status::pending);
    EXPECT_NE(t->error->find("timed out"), std::string::npos);
    EXPECT_EQ(heartbeat("a_1", std::nullopt, at(12))->cancel, std::vector<std::string>{"t_1"});
}

TEST_P(store_contract, RetentionDeletesFinishedTasksAndTheirKeys) {
    ASSERT_TRUE(register_agent(agent_spec("a_1"), at(0)));
    new_task keyed = task_spec("t_1");
    keyed.idempotency_key = "k";
    ASSERT_TRUE(submit_one(std::move(keyed), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_open"), at(0)));
    ASSERT_EQ(claim_ids("a_1", 1, at(1)), std::vector<std::string>{"t_1"});
    ASSERT_TRUE(complete("t_1", "a_1", nullptr, at(10)));
    EXPECT_EQ(reap(at(609))->deleted_tasks, 0u);
    EXPECT_EQ(reap(at(610))->deleted_tasks, 1u);
    EXPECT_EQ(get_task("t_1").err().code, errc::not_found);
    EXPECT_TRUE(get_task("t_open"));  // unfinished tasks are never deleted
    new_task reuse = task_spec("t_2");
    reuse.idempotency_key = "k";
    reuse.payload = {{"different", true}};
    auto r = submit({std::move(reuse)}, at(611));
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->front().created);
}

TEST_P(store_contract, ADeadOrCancelledTaskIsRetriedAsNew) {
    ASSERT_TRUE(register_agent(agent_spec("a_1"), at(0)));
    new_task once = task_spec("t_1");
    once.max_attempts = 1;
    ASSERT_TRUE(submit_one(std::move(once), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_2"), at(0)));
    ASSERT_EQ(claim_ids("a_1", 1, at(1)), std::vector<std::string>{"t_1"});
    ASSERT_EQ(fail("t_1", "a_1", "boom", false, 0.5, at(2))->status, task_status::dead);
    EXPECT_EQ(retry("t_2", at(3)).err().code, errc::conflict);  // pending: nothing to retry
    EXPECT_EQ(retry("t_nope", at(3)).err().code, errc::not_found);
    auto again = retry("t_1", at(4));
    ASSERT_TRUE(again) << again.err().message;
    EXPECT_EQ(again->status, task_status::pending);
    EXPECT_EQ(again->attempts, 0);
    EXPECT_FALSE(again->agent_id);
    EXPECT_FALSE(again->error);
    EXPECT_EQ(get_task("t_1")->status, task_status::pending);
    // Claimed again (first: it was submitted first), its fencing number moved on.
    ASSERT_EQ(claim_ids("a_1", 1, at(5)), std::vector<std::string>{"t_1"});
    auto held = get_task("t_1");
    EXPECT_EQ(held->attempts, 1);
    ASSERT_TRUE(complete("t_1", "a_1", nullptr, at(6)));
    EXPECT_EQ(retry("t_1", at(7)).err().code, errc::conflict);  // succeeded: kept as it is
    // Retention counts from the last finish (at 6 s), not from the first death (at 2 s).
    EXPECT_EQ(reap(at(603))->deleted_tasks, 0u);
    EXPECT_TRUE(get_task("t_1"));
    ASSERT_TRUE(cancel("t_2", at(8)));
    auto uncancelled = retry("t_2", at(9));
    ASSERT_TRUE(uncancelled);
    EXPECT_EQ(uncancelled->status, task_status::pending);
}

TEST_P(store_contract, NextDueIsTheEarliestDeadline) {
    if (!GetParam().exact_next_due) {
        GTEST_SKIP() << "this store polls: next_due() is its polling period";
    }
    EXPECT_FALSE(store_->next_due());
    ASSERT_TRUE(register_agent(agent_spec("a_1"), at(0)));
    EXPECT_EQ(store_->next_due(), at(45));  // heartbeat timeout
    ASSERT_TRUE(submit_one(task_spec("t_1"), at(0)));
    ASSERT_EQ(claim_ids("a_1", 1, at(1)).size(), 1u);
    EXPECT_EQ(store_->next_due(), at(31));  // lease
    new_task soon = task_spec("t_2");
    soon.delay = std::chrono::milliseconds(3000);
    ASSERT_TRUE(submit_one(std::move(soon), at(2)));
    EXPECT_EQ(store_->next_due(), at(5));  // scheduled
    ASSERT_TRUE(reap(at(5)));
    EXPECT_EQ(store_->next_due(), at(31));
}

}  // namespace pm_agent::store::testing
