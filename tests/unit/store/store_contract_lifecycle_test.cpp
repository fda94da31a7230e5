// Store contract: submission, claiming and the holder's operations.
#include "store_contract.hpp"

namespace pm_agent::store::testing {

TEST_P(store_contract, SubmitStoresAPendingTask) {
    new_task spec = task_spec("t_1", "q", 7, {"gpu"});
    spec.timeout_s = 30;
    spec.idempotency_key = "k";
    auto t = submit_one(std::move(spec), at(0));
    ASSERT_TRUE(t) << t.err().message;
    EXPECT_EQ(t->id, "t_1");
    EXPECT_EQ(t->queue, "q");
    EXPECT_EQ(t->type, "work");
    EXPECT_EQ(t->payload, (boost::json::value{{"n", 1}}));
    EXPECT_EQ(t->priority, 7);
    EXPECT_EQ(t->status, task_status::pending);
    EXPECT_EQ(t->attempts, 0);
    EXPECT_EQ(t->max_attempts, 3);
    EXPECT_EQ(t->required_capabilities, std::vector<std::string>{"gpu"});
    EXPECT_EQ(t->timeout_s, 30u);
    EXPECT_EQ(t->idempotency_key, "k");
    EXPECT_FALSE(t->agent_id);
    EXPECT_TRUE(t->result.is_null());
    EXPECT_EQ(t->created_at, at(0));
    EXPECT_EQ(t->ready_at, at(0));
    auto again = get_task("t_1");
    ASSERT_TRUE(again);
    EXPECT_EQ(again->status, task_status::pending);
}

TEST_P(store_contract, RunAtOrDelayInTheFutureIsScheduled) {
    new_task later = task_spec("t_run_at");
    later.run_at = at(100);
    new_task delayed = task_spec("t_delay");
    delayed.delay = std::chrono::milliseconds(2500);
    new_task past = task_spec("t_past");
    past.run_at = at(-5);
    auto a = submit_one(std::move(later), at(0));
    auto b = submit_one(std::move(delayed), at(0));
    auto c = submit_one(std::move(past), at(0));
    ASSERT_TRUE(a && b && c);
    EXPECT_EQ(a->status, task_status::scheduled);
    EXPECT_EQ(a->run_at, at(100));
    EXPECT_EQ(b->status, task_status::scheduled);
    EXPECT_EQ(b->run_at, at(2.5));
    EXPECT_EQ(c->status, task_status::pending);
}

TEST_P(store_contract, ClaimAssignsTakesALeaseAndCountsTheAttempt) {
    ASSERT_TRUE(register_agent(agent_spec("a_1"), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_1"), at(0)));
    auto c = claim("a_1", 1, at(2));
    ASSERT_TRUE(c);
    ASSERT_EQ(c->tasks.size(), 1u);
    const task& t = c->tasks[0];
    EXPECT_EQ(t.status, task_status::assigned);
    EXPECT_EQ(t.agent_id, "a_1");
    EXPECT_EQ(t.attempts, 1);
    EXPECT_EQ(t.attempt, 1u);
    EXPECT_EQ(t.lease_expires_at, at(32));
    EXPECT_EQ(c->claimer.running, 1u);
    EXPECT_EQ(get_agent("a_1")->running, 1u);
    EXPECT_TRUE(claim_ids("a_1", 5, at(3)).empty());
}

// The claimer as the claim leaves it, also when the claim found nothing: the engine sizes its
// next claim by it.
TEST_P(store_contract, AClaimAnswersTheClaimersRunningCountAlsoWhenEmpty) {
    ASSERT_TRUE(register_agent(agent_spec("a_1"), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_1"), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_2"), at(0)));
    auto first = claim("a_1", 5, at(1));
    ASSERT_TRUE(first);
    EXPECT_EQ(first->tasks.size(), 2u);
    EXPECT_EQ(first->claimer.running, 2u);
    auto empty = claim("a_1", 5, at(2));
    ASSERT_TRUE(empty);
    EXPECT_TRUE(empty->tasks.empty());
    EXPECT_EQ(empty->claimer.running, 2u);
    EXPECT_EQ(empty->claimer.max_concurrency, 4u);
    EXPECT_EQ(empty->claimer.status, agent_status::online);
    EXPECT_FALSE(claim("a_nobody", 1, at(3)));
}

TEST_P(store_contract, StartThenCompleteSucceedsAndFreesTheSlot) {
    ASSERT_TRUE(register_agent(agent_spec("a_1"), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_1"), at(0)));
    ASSERT_EQ(claim_ids("a_1", 1, at(1)).size(), 1u);
    auto s = start("t_1", "a_1", at(2));
    ASSERT_TRUE(s);
    EXPECT_EQ(s->status, task_status::running);
    auto done = complete("t_1", "a_1", boost::json::value{{"ok", true}}, at(3));
    ASSERT_TRUE(done) << done.err().message;
    EXPECT_EQ(done->status, task_status::succeeded);
    EXPECT_EQ(done->result, (boost::json::value{{"ok", true}}));
    EXPECT_EQ(done->agent_id, "a_1");
    EXPECT_EQ(done->updated_at, at(3));
    EXPECT_EQ(get_agent("a_1")->running, 0u);
}

TEST_P(store_contract, CompleteWithoutStartAndProgressImpliesRunning) {
    ASSERT_TRUE(register_agent(agent_spec("a_1"), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_1"), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_2"), at(0)));
    ASSERT_EQ(claim_ids("a_1", 2, at(1)).size(), 2u);
    auto p = progress("t_2", "a_1", 0.5, at(10));
    ASSERT_TRUE(p);
    EXPECT_EQ(p->status, task_status::running);
    ASSERT_TRUE(p->progress);
    EXPECT_DOUBLE_EQ(p->progress->value, 0.5);
    EXPECT_EQ(p->progress->message, "working");
    // Progress renews all of the agent's leases.
    EXPECT_EQ(p->lease_expires_at, at(40));
    EXPECT_EQ(get_task("t_1")->lease_expires_at, at(40));
    auto done = complete("t_1", "a_1", nullptr, at(11));
    ASSERT_TRUE(done);
    EXPECT_EQ(done->status, task_status::succeeded);
}

TEST_P(store_contract, UnknownIdsAreNotFound) {
    ASSERT_TRUE(register_agent(agent_spec("a_1"), at(0)));
    EXPECT_EQ(get_task("t_nope").err().code, errc::not_found);
    EXPECT_EQ(start("t_nope", "a_1", at(1)).err().code, errc::not_found);
    EXPECT_EQ(complete("t_nope", "a_1", nullptr, at(1)).err().code, errc::not_found);
    EXPECT_EQ(fail("t_nope", "a_1", "x", true, 0, at(1)).err().code, errc::not_found);
    EXPECT_EQ(cancel("t_nope", at(1)).err().code, errc::not_found);
    EXPECT_EQ(claim("a_nope", 1, at(1)).err().code, errc::not_found);
    EXPECT_EQ(get_agent("a_nope").err().code, errc::not_found);
    EXPECT_EQ(heartbeat("a_nope", std::nullopt, at(1)).err().code, errc::not_found);
    EXPECT_EQ(deregister("a_nope", at(1)).err().code, errc::not_found);
}

TEST_P(store_contract, ClaimStopsAtMaxConcurrency) {
    ASSERT_TRUE(register_agent(agent_spec("a_1", {"default"}, {}, 2), at(0)));
    for (int i = 0; i < 5; ++i) {
        ASSERT_TRUE(submit_one(task_spec("t_" + std::to_string(i)), at(0)));
    }
    EXPECT_EQ(claim_ids("a_1", 5, at(1)).size(), 2u);
    EXPECT_TRUE(claim_ids("a_1", 5, at(1)).empty());
    ASSERT_TRUE(complete("t_0", "a_1", nullptr, at(2)));
    EXPECT_EQ(claim_ids("a_1", 5, at(3)), std::vector<std::string>{"t_2"});
}

TEST_P(store_contract, DrainingAndOfflineAgentsGetNoTasks) {
    ASSERT_TRUE(register_agent(agent_spec("a_1"), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_1"), at(0)));
    auto hb = heartbeat("a_1", agent_status::draining, at(1));
    ASSERT_TRUE(hb);
    EXPECT_EQ(hb->record.status, agent_status::draining);
    auto c = claim("a_1", 1, at(2));
    ASSERT_TRUE(c);
    EXPECT_TRUE(c->tasks.empty());
    EXPECT_EQ(c->claimer.status, agent_status::draining);
    // A heartbeat without a status keeps draining.
    EXPECT_EQ(heartbeat("a_1", std::nullopt, at(3))->record.status, agent_status::draining);
    ASSERT_TRUE(heartbeat("a_1", agent_status::online, at(4)));
    ASSERT_TRUE(reap(at(100)));  // silent: offline
    EXPECT_EQ(get_agent("a_1")->status, agent_status::offline);
    EXPECT_TRUE(claim_ids("a_1", 1, at(101)).empty());
}

TEST_P(store_contract, HeartbeatRejectsOfflineAsAStatus) {
    ASSERT_TRUE(register_agent(agent_spec("a_1"), at(0)));
    EXPECT_EQ(heartbeat("a_1", agent_status::offline, at(1)).err().code, errc::bad_request);
}

}  // namespace pm_agent::store::testing
