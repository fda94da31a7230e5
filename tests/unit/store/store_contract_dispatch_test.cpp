// Store contract: which task a claim takes (priority, FIFO, queues, capabilities).
#include "store_contract.hpp"

namespace pm_agent::store::testing {

using ids = std::vector<std::string>;

TEST_P(store_contract, HigherPriorityFirstThenFifo) {
    ASSERT_TRUE(register_agent(agent_spec("a_1", {"default"}, {}, 10), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_low", "default", -5), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_mid", "default", 0), at(1)));
    ASSERT_TRUE(submit_one(task_spec("t_hi1", "default", 10), at(2)));
    ASSERT_TRUE(submit_one(task_spec("t_hi2", "default", 10), at(3)));
    EXPECT_EQ(claim_ids("a_1", 10, at(4)), (ids{"t_hi1", "t_hi2", "t_mid", "t_low"}));
}

TEST_P(store_contract, OldTaskIsNotStarvedByNewerOnesOfTheSamePriority) {
    ASSERT_TRUE(register_agent(agent_spec("a_1", {"default"}, {}, 1), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_old"), at(0)));
    std::vector<new_task> newer;
    for (int i = 0; i < 5; ++i) {
        newer.push_back(task_spec("t_new" + std::to_string(i)));
    }
    ASSERT_TRUE(submit(std::move(newer), at(1)));
    EXPECT_EQ(claim_ids("a_1", 1, at(2)), ids{"t_old"});
    ASSERT_TRUE(complete("t_old", "a_1", nullptr, at(3)));
    EXPECT_EQ(claim_ids("a_1", 1, at(4)), ids{"t_new0"});
}

TEST_P(store_contract, RequeuedTaskKeepsItsPlaceInLine) {
    ASSERT_TRUE(register_agent(agent_spec("a_1", {"default"}, {}, 1), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_first"), at(0)));
    ASSERT_EQ(claim_ids("a_1", 1, at(1)), ids{"t_first"});
    ASSERT_TRUE(submit_one(task_spec("t_second"), at(2)));
    ASSERT_TRUE(deregister("a_1", at(3)));
    ASSERT_TRUE(register_agent(agent_spec("a_2", {"default"}, {}, 1), at(3)));
    EXPECT_EQ(claim_ids("a_2", 1, at(4)), ids{"t_first"});
}

TEST_P(store_contract, RequiredCapabilitiesMustBeASubsetOfTheAgents) {
    ASSERT_TRUE(register_agent(agent_spec("a_plain", {"default"}, {}, 10), at(0)));
    ASSERT_TRUE(register_agent(agent_spec("a_gpu", {"default"}, {"avx", "gpu"}, 10), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_gpu", "default", 0, {"gpu"}), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_both", "default", 0, {"avx", "gpu"}), at(1)));
    ASSERT_TRUE(submit_one(task_spec("t_tpu", "default", 0, {"tpu"}), at(2)));
    ASSERT_TRUE(submit_one(task_spec("t_any", "default", -1), at(3)));
    EXPECT_EQ(claim_ids("a_plain", 10, at(4)), ids{"t_any"});
    EXPECT_EQ(claim_ids("a_gpu", 10, at(4)), (ids{"t_gpu", "t_both"}));
}

TEST_P(store_contract, OrderHoldsAcrossCapabilityBuckets) {
    ASSERT_TRUE(register_agent(agent_spec("a_gpu", {"default"}, {"gpu"}, 10), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_a", "default", 0, {}), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_b", "default", 0, {"gpu"}), at(1)));
    ASSERT_TRUE(submit_one(task_spec("t_c", "default", 0, {}), at(2)));
    ASSERT_TRUE(submit_one(task_spec("t_d", "default", 5, {"gpu"}), at(3)));
    EXPECT_EQ(claim_ids("a_gpu", 10, at(4)), (ids{"t_d", "t_a", "t_b", "t_c"}));
}

TEST_P(store_contract, AgentsOnlyGetTasksOfTheirQueues) {
    ASSERT_TRUE(register_agent(agent_spec("a_x", {"x"}, {}, 10), at(0)));
    ASSERT_TRUE(register_agent(agent_spec("a_xy", {"x", "y"}, {}, 10), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_y1", "y"), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_x1", "x"), at(1)));
    ASSERT_TRUE(submit_one(task_spec("t_z1", "z"), at(2)));
    ASSERT_TRUE(submit_one(task_spec("t_y2", "y", 3), at(3)));
    EXPECT_EQ(claim_ids("a_x", 1, at(4)), ids{"t_x1"});
    EXPECT_EQ(claim_ids("a_xy", 10, at(4)), (ids{"t_y2", "t_y1"}));
    EXPECT_EQ(get_task("t_z1")->status, task_status::pending);
}

TEST_P(store_contract, ClaimOfZeroTakesNothing) {
    ASSERT_TRUE(register_agent(agent_spec("a_1"), at(0)));
    ASSERT_TRUE(submit_one(task_spec("t_1"), at(0)));
    EXPECT_TRUE(claim_ids("a_1", 0, at(1)).empty());
    EXPECT_EQ(get_task("t_1")->status, task_status::pending);
}

}  // namespace pm_agent::store::testing
