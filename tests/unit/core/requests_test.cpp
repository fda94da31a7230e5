#include "pm_agent/core/requests.hpp"

#include <gtest/gtest.h>

namespace pm_agent::core {

TEST(core_validate_task, NormalizesCapabilitiesAndConvertsTheDelay) {
    task_spec s;
    s.type = "t";
    s.required_capabilities = {"ssd", "gpu", "ssd"};
    s.delay_s = 1.25;
    auto r = validate_task(std::move(s), task_defaults{5, 60}, "");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->required_capabilities, (std::vector<std::string>{"gpu", "ssd"}));
    EXPECT_EQ(r->delay, std::chrono::milliseconds(1250));
    EXPECT_EQ(r->max_attempts, 5);
    EXPECT_EQ(r->timeout_s, 60u);
    EXPECT_EQ(r->queue, "default");
}

TEST(core_validate_task, PrefixesTheFieldForBatches) {
    task_spec s;
    s.type = "t";
    s.priority = -101;
    auto r = validate_task(std::move(s), task_defaults{}, "tasks[7].");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().message.rfind("tasks[7].priority: ", 0), 0u);
}

TEST(core_validate_agent, AppliesDefaultsAndChecksRanges) {
    agent_spec s;
    s.name = "w";
    s.queues = {"b", "a", "b"};
    auto r = validate_agent(std::move(s));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->queues, (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(r->max_concurrency, 1u);
    agent_spec bad;
    bad.name = "w";
    bad.max_concurrency = 10001;
    EXPECT_EQ(validate_agent(std::move(bad)).err().code, store::errc::bad_request);
    agent_spec labelled;
    labelled.name = "w";
    labelled.labels = {{"", "x"}};
    EXPECT_EQ(validate_agent(std::move(labelled)).err().message.rfind("labels", 0), 0u);
    agent_spec unnamed;
    EXPECT_EQ(validate_agent(std::move(unnamed)).err().message.rfind("name", 0), 0u);
}

}  // namespace pm_agent::core
