// Store contract: cancellation and lease fencing.
#include "store_contract.hpp"

namespace pm_agent::store::testing {

TEST_P(store_contract, CancelPendingAndScheduledTasks) {
    ASSERT_TRUE(register_agent(agent_spec("a_1"), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_1"), at(0)));
    new_task later = task_spec("t_2");
    later.delay = std::chrono::milliseconds(1000);
    ASSERT_TRUE(submit_one(std::move(later), at(0)));
    auto c1 = cancel("t_1", at(1));
    ASSERT_TRUE(c1);
    EXPECT_EQ(c1->record.status, task_status::cancelled);
    EXPECT_FALSE(c1->was_held);
    auto c2 = cancel("t_2", at(1));
    ASSERT_TRUE(c2);
    EXPECT_EQ(c2->record.status, task_status::cancelled);
    auto r = reap(at(5));
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->due.empty());
    EXPECT_TRUE(claim_ids("a_1", 5, at(6)).empty());
    EXPECT_EQ(get_task("t_2")->status, task_status::cancelled);
}

TEST_P(store_contract, CancelHeldTaskTellsTheHolderAndFreesItsSlot) {
    ASSERT_TRUE(register_agent(agent_spec("a_1"), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_1"), at(0)));
    ASSERT_EQ(claim_ids("a_1", 1, at(1)).size(), 1u);
    auto c = cancel("t_1", at(2));
    ASSERT_TRUE(c);
    EXPECT_TRUE(c->was_held);
    EXPECT_EQ(c->record.agent_id, "a_1");
    EXPECT_EQ(get_agent("a_1")->running, 0u);
    auto hb = heartbeat("a_1", std::nullopt, at(3));
    ASSERT_TRUE(hb);
    EXPECT_EQ(hb->cancel, std::vector<std::string>{"t_1"});
    EXPECT_TRUE(heartbeat("a_1", std::nullopt, at(4))->cancel.empty());
    EXPECT_EQ(complete("t_1", "a_1", nullptr, at(5)).err().code, errc::conflict);
}

TEST_P(store_contract, CancellingAFinishedTaskIsAConflict) {
    ASSERT_TRUE(register_agent(agent_spec("a_1"), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_1"), at(0)));
    ASSERT_EQ(claim_ids("a_1", 1, at(1)).size(), 1u);
    ASSERT_TRUE(complete("t_1", "a_1", nullptr, at(2)));
    auto c = cancel("t_1", at(3));
    ASSERT_FALSE(c);
    EXPECT_EQ(c.err().code, errc::conflict);
    ASSERT_TRUE(submit_one(task_spec("t_2"), at(4)));
    ASSERT_TRUE(cancel("t_2", at(5)));
    EXPECT_EQ(cancel("t_2", at(6)).err().code, errc::conflict);
}

TEST_P(store_contract, AnotherAgentCannotTouchTheLease) {
    ASSERT_TRUE(register_agent(agent_spec("a_1"), at(0)));
    ASSERT_TRUE(register_agent(agent_spec("a_2"), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_1"), at(0)));
    ASSERT_EQ(claim_ids("a_1", 1, at(1)).size(), 1u);
    EXPECT_EQ(start("t_1", "a_2", at(2)).err().code, errc::conflict);
    EXPECT_EQ(progress("t_1", "a_2", 0.1, at(2)).err().code, errc::conflict);
    EXPECT_EQ(complete("t_1", "a_2", nullptr, at(2)).err().code, errc::conflict);
    EXPECT_EQ(fail("t_1", "a_2", "x", true, 0, at(2)).err().code, errc::conflict);
    auto t = get_task("t_1");
    ASSERT_TRUE(t);
    EXPECT_EQ(t->status, task_status::assigned);
    EXPECT_EQ(t->agent_id, "a_1");
    EXPECT_FALSE(t->progress);
}

TEST_P(store_contract, ALostLeaseCannotCompleteEvenAfterReassignment) {
    ASSERT_TRUE(register_agent(agent_spec("a_1"), at(0)));
    ASSERT_TRUE(register_agent(agent_spec("a_2"), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_1"), at(0)));
    ASSERT_EQ(claim_ids("a_1", 1, at(1)).size(), 1u);
    ASSERT_TRUE(heartbeat("a_2", std::nullopt, at(20)));
    ASSERT_TRUE(reap(at(31)));  // a_1's lease (30 s) ended
    EXPECT_EQ(complete("t_1", "a_1", nullptr, at(32)).err().code, errc::conflict);
    ASSERT_EQ(claim_ids("a_2", 1, at(33)), std::vector<std::string>{"t_1"});
    EXPECT_EQ(complete("t_1", "a_1", nullptr, at(34)).err().code, errc::conflict);
    auto t = get_task("t_1");
    EXPECT_EQ(t->agent_id, "a_2");
    EXPECT_EQ(t->attempts, 2);
    EXPECT_EQ(t->attempt, 2u);
    EXPECT_TRUE(complete("t_1", "a_2", nullptr, at(35)));
}

TEST_P(store_contract, AFinishedTaskCannotBeCompletedAgain) {
    ASSERT_TRUE(register_agent(agent_spec("a_1"), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_1"), at(0)));
    ASSERT_EQ(claim_ids("a_1", 1, at(1)).size(), 1u);
    ASSERT_TRUE(complete("t_1", "a_1", boost::json::value(1), at(2)));
    auto again = complete("t_1", "a_1", boost::json::value(2), at(3));
    ASSERT_FALSE(again);
    EXPECT_EQ(again.err().code, errc::conflict);
    EXPECT_EQ(get_task("t_1")->result, boost::json::value(1));
    EXPECT_EQ(fail("t_1", "a_1", "late", true, 0, at(3)).err().code, errc::conflict);
}

}  // namespace pm_agent::store::testing
