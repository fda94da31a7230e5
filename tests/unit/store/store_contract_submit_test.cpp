// Store contract: idempotency keys, the queue bound and all-or-nothing batches.
#include "store_contract.hpp"

namespace pm_agent::store::testing {

namespace {

new_task keyed(std::string id, std::string key) {
    new_task t;
    t.id = std::move(id);
    t.queue = "default";
    t.type = "work";
    t.payload = {{"n", 1}};
    t.max_attempts = 3;
    t.idempotency_key = std::move(key);
    return t;
}

}  // namespace

TEST_P(store_contract, SameKeySameBodyAnswersTheExistingTask) {
    auto first = submit({keyed("t_1", "k")}, at(0));
    ASSERT_TRUE(first);
    EXPECT_TRUE(first->front().created);
    auto again = submit({keyed("t_2", "k")}, at(5));
    ASSERT_TRUE(again) << again.err().message;
    EXPECT_FALSE(again->front().created);
    EXPECT_EQ(again->front().record.id, "t_1");
    EXPECT_EQ(get_task("t_2").err().code, errc::not_found);
}

TEST_P(store_contract, SameKeyDifferentBodyIsAConflict) {
    ASSERT_TRUE(submit({keyed("t_1", "k")}, at(0)));
    new_task other = keyed("t_2", "k");
    other.payload = {{"n", 2}};
    auto r = submit({std::move(other)}, at(1));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code, errc::conflict);
    new_task prio = keyed("t_3", "k");
    prio.priority = 1;
    EXPECT_EQ(submit({std::move(prio)}, at(1)).err().code, errc::conflict);
}

TEST_P(store_contract, TheSameDelayAtAnotherTimeIsTheSameBody) {
    new_task a = keyed("t_1", "k");
    a.delay = std::chrono::milliseconds(5000);
    new_task b = keyed("t_2", "k");
    b.delay = std::chrono::milliseconds(5000);
    ASSERT_TRUE(submit({std::move(a)}, at(0)));
    auto r = submit({std::move(b)}, at(3));
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->front().created);
    EXPECT_EQ(r->front().record.run_at, at(5));
}

TEST_P(store_contract, KeysRepeatedInsideABatch) {
    std::vector<new_task> same;
    same.push_back(keyed("t_1", "k"));
    same.push_back(keyed("t_2", "k"));
    auto r = submit(std::move(same), at(0));
    ASSERT_TRUE(r);
    EXPECT_TRUE((*r)[0].created);
    EXPECT_FALSE((*r)[1].created);
    EXPECT_EQ((*r)[1].record.id, "t_1");

    std::vector<new_task> differ;
    differ.push_back(keyed("t_3", "j"));
    differ.push_back(keyed("t_4", "j"));
    differ.back().type = "other";
    auto c = submit(std::move(differ), at(1));
    ASSERT_FALSE(c);
    EXPECT_EQ(c.err().code, errc::conflict);
    EXPECT_NE(c.err().message.find("tasks[1]"), std::string::npos);
    EXPECT_EQ(get_task("t_3").err().code, errc::not_found);
}

TEST_P(store_contract, ABatchWithAConflictCreatesNothing) {
    ASSERT_TRUE(submit({keyed("t_1", "k")}, at(0)));
    std::vector<new_task> batch;
    batch.push_back(task_spec("t_2"));
    new_task clash = keyed("t_3", "k");
    clash.payload = {{"n", 99}};
    batch.push_back(std::move(clash));
    EXPECT_EQ(submit(std::move(batch), at(1)).err().code, errc::conflict);
    EXPECT_EQ(get_task("t_2").err().code, errc::not_found);
    EXPECT_EQ(stats()->tasks[static_cast<std::size_t>(task_status::pending)], 1u);
}

TEST_P(store_contract, QueueBoundCountsPendingAndScheduledOnly) {
    // task_queue_size is 10 in the contract configuration.
    std::vector<new_task> nine;
    for (int i = 0; i < 8; ++i) {
        nine.push_back(task_spec("t_" + std::to_string(i)));
    }
    new_task later = task_spec("t_later");
    later.delay = std::chrono::milliseconds(60000);
    nine.push_back(std::move(later));
    ASSERT_TRUE(submit(std::move(nine), at(0)));
    std::vector<new_task> two{task_spec("t_a"), task_spec("t_b")};
    auto full = submit(std::move(two), at(1));
    ASSERT_FALSE(full);
    EXPECT_EQ(full.err().code, errc::queue_full);
    EXPECT_EQ(get_task("t_a").err().code, errc::not_found);
    ASSERT_TRUE(submit_one(keyed("t_k", "k"), at(1)));  // the 10th
    EXPECT_EQ(submit_one(task_spec("t_c"), at(1)).err().code, errc::queue_full);
    // An idempotent repeat creates nothing and is answered even when full.
    auto repeat = submit({keyed("t_k2", "k")}, at(1));
    ASSERT_TRUE(repeat);
    EXPECT_FALSE(repeat->front().created);
    // Assigned tasks do not count.
    ASSERT_TRUE(register_agent(agent_spec("a_1"), at(1)));
    ASSERT_EQ(claim_ids("a_1", 1, at(2)).size(), 1u);
    EXPECT_TRUE(submit_one(task_spec("t_c"), at(3)));
}

TEST_P(store_contract, DuplicateTaskIdIsRejected) {
    ASSERT_TRUE(submit_one(task_spec("t_1"), at(0)));
    EXPECT_FALSE(submit_one(task_spec("t_1"), at(1)));
}

}  // namespace pm_agent::store::testing
