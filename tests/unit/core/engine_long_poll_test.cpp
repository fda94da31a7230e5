// Engine: REST long polls.
#include "engine_fixture.hpp"

namespace pm_agent::core::testing {

using std::chrono::milliseconds;
using store::task_status;

TEST_F(engine_test, LongPollAnswersAtOnceWhenTasksWait) {
    const std::string a = add_agent({"default"}, {}, 10);
    const std::string t1 = submit("default", 0);
    const std::string t2 = submit("default", 1);
    submit("default", -1);
    auto r = poll(a, 2, milliseconds(30000));
    ASSERT_TRUE(r->answered);
    ASSERT_EQ(r->tasks.size(), 2u);
    EXPECT_EQ(r->tasks[0].id, t2);
    EXPECT_EQ(r->tasks[1].id, t1);
    EXPECT_EQ(r->tasks[0].status, task_status::assigned);
    EXPECT_EQ(r->tasks[0].agent_id, a);
    EXPECT_EQ(engine_.waiting_requests(), 0u);
}

TEST_F(engine_test, LongPollIsWokenByASubmit) {
    const std::string a = add_agent();
    auto r = poll(a, 1, milliseconds(30000));
    EXPECT_FALSE(r->answered);
    EXPECT_EQ(engine_.waiting_requests(), 1u);
    ASSERT_FALSE(hooks_.empty());
    // The first deadline armed: its agent's liveness renewal, a third of heartbeat_timeout
    // (45 s) into the 30 s wait (the wait's own end comes after it).
    EXPECT_EQ(hooks_.back(), now_ + milliseconds(15000));
    now_ += milliseconds(1500);
    const std::string t = submit();
    ASSERT_TRUE(r->answered);
    ASSERT_EQ(r->tasks.size(), 1u);
    EXPECT_EQ(r->tasks[0].id, t);
    EXPECT_EQ(get(t)->agent_id, a);
    EXPECT_EQ(engine_.waiting_requests(), 0u);
}

TEST_F(engine_test, LongPollEndsEmptyAtItsDeadline) {
    const std::string a = add_agent();
    auto r = poll(a, 1, milliseconds(10000));
    EXPECT_EQ(engine_.tick(now_ + milliseconds(9999)), now_ + milliseconds(10000));
    EXPECT_FALSE(r->answered);
    now_ += milliseconds(10000);
    engine_.tick(now_);
    ASSERT_TRUE(r->answered);
    EXPECT_FALSE(r->error);
    EXPECT_TRUE(r->tasks.empty());
    // A task arriving later stays pending for the next poll.
    const std::string t = submit();
    EXPECT_EQ(get(t)->status, task_status::pending);
}

TEST_F(engine_test, WaitZeroAnswersEmptyAtOnce) {
    const std::string a = add_agent();
    auto r = poll(a, 1, milliseconds(0));
    ASSERT_TRUE(r->answered);
    EXPECT_TRUE(r->tasks.empty());
    EXPECT_EQ(engine_.waiting_requests(), 0u);
}

TEST_F(engine_test, AbandonedPollIsNeverAnsweredAndTakesNothing) {
    const std::string a = add_agent();
    request_id id = 0;
    auto r = poll(a, 1, milliseconds(30000), &id);
    engine_.abandon_request(id);
    const std::string t = submit();
    EXPECT_FALSE(r->answered);
    EXPECT_EQ(get(t)->status, task_status::pending);
    engine_.abandon_request(id);  // twice is harmless
}

TEST_F(engine_test, LongPollRespectsMaxConcurrency) {
    const std::string a = add_agent({"default"}, {}, 1);
    submit();
    submit();
    auto first = poll(a, 5, milliseconds(30000));
    ASSERT_TRUE(first->answered);
    ASSERT_EQ(first->tasks.size(), 1u);
    auto second = poll(a, 5, milliseconds(30000));
    EXPECT_FALSE(second->answered);  // at capacity: waits although a task is pending
    ASSERT_TRUE(complete(first->tasks[0].id, a));
    ASSERT_TRUE(second->answered);  // the completion made room
    EXPECT_EQ(second->tasks.size(), 1u);
}

TEST_F(engine_test, WaitZeroAtCapacityAnswersEmptyAtOnce) {
    const std::string a = add_agent({"default"}, {}, 1);
    submit();
    submit();
    ASSERT_EQ(poll(a, 1, milliseconds(0))->tasks.size(), 1u);
    auto r = poll(a, 1, milliseconds(0));
    ASSERT_TRUE(r->answered);
    EXPECT_TRUE(r->tasks.empty());
    EXPECT_EQ(engine_.waiting_requests(), 0u);
}

TEST_F(engine_test, PollsOfOneAgentAreAnsweredInOrder) {
    const std::string a = add_agent({"default"}, {}, 10);
    auto p1 = poll(a, 1, milliseconds(30000));
    auto p2 = poll(a, 1, milliseconds(30000));
    const std::string t1 = submit();
    ASSERT_TRUE(p1->answered);
    EXPECT_FALSE(p2->answered);
    EXPECT_EQ(p1->tasks[0].id, t1);
    submit();
    EXPECT_TRUE(p2->answered);
}

TEST_F(engine_test, BadPollArgumentsAreRejected) {
    const std::string a = add_agent();
    EXPECT_EQ(poll(a, 0, milliseconds(0))->error->code, store::errc::bad_request);
    EXPECT_EQ(poll(a, 1001, milliseconds(0))->error->code, store::errc::bad_request);
    EXPECT_EQ(poll(a, 1, milliseconds(61000))->error->code, store::errc::bad_request);
    EXPECT_EQ(poll("a_unknown", 1, milliseconds(1000))->error->code, store::errc::not_found);
    EXPECT_EQ(engine_.waiting_requests(), 0u);
}

TEST_F(engine_test, RestHolderLearnsOfACancelInItsHeartbeat) {
    const std::string a = add_agent();
    const std::string t = submit();
    auto r = poll(a, 1, milliseconds(0));
    ASSERT_EQ(r->tasks.size(), 1u);
    auto c = cancel(t);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->status, task_status::cancelled);
    auto hb = heartbeat(a);
    ASSERT_TRUE(hb);
    EXPECT_EQ(*hb, std::vector<std::string>{t});
    EXPECT_EQ(engine_.counters().cancelled, 1u);
}

}  // namespace pm_agent::core::testing

namespace pm_agent::core::testing {

namespace {
store::agent_status status_of(store::store& st, const std::string& agent_id) {
    store::agent_status status = store::agent_status::offline;
    st.get_agent(agent_id, [&](store::result<const store::agent*> r) {
        ASSERT_TRUE(r);
        status = (*r)->status;
    });
    return status;
}
}  // namespace

// API.md: an agent silent past heartbeat_timeout_s (45 s here) is offline. A REST agent that
// polls and reports on its task without POST /heartbeat is not silent.
TEST_F(engine_test, ARestAgentsReportsKeepItAliveWithoutHeartbeats) {
    const std::string a = add_agent();
    const std::string t = submit();
    ASSERT_EQ(poll(a, 1, milliseconds(0))->tasks.size(), 1u);
    advance_s(30);
    engine_.heard(a, now_);  // e.g. its progress report
    advance_s(30);           // 60 s after its registration, 30 s after the report
    EXPECT_EQ(status_of(*store_, a), store::agent_status::online);
    EXPECT_EQ(get(t)->status, task_status::assigned);  // its lease was renewed too
    advance_s(16);  // 46 s of silence
    EXPECT_EQ(status_of(*store_, a), store::agent_status::offline);
    EXPECT_EQ(get(t)->status, task_status::pending);
}

TEST_F(engine_test, ATaskRequestCountsAsLivenessAndBringsAnOfflineAgentBack) {
    const std::string a = add_agent();
    advance_s(40);
    EXPECT_TRUE(poll(a, 1, milliseconds(0))->answered);
    advance_s(40);  // 80 s after registration, 40 s after the poll
    EXPECT_EQ(status_of(*store_, a), store::agent_status::online);
    advance_s(10);
    ASSERT_EQ(status_of(*store_, a), store::agent_status::offline);
    const std::string t = submit();
    auto r = poll(a, 1, milliseconds(0));  // back online, and served at once
    ASSERT_EQ(r->tasks.size(), 1u);
    EXPECT_EQ(r->tasks[0].id, t);
    EXPECT_EQ(status_of(*store_, a), store::agent_status::online);
}

}  // namespace pm_agent::core::testing

namespace pm_agent::core::testing {

// A poll of up to 60 s (API.md) outlasts heartbeat_timeout (45 s here): while it waits it
// keeps its agent online, and a task submitted late in the wait still reaches it.
TEST_F(engine_test, AWaitingPollKeepsItsAgentAlive) {
    const std::string a = add_agent();
    auto r = poll(a, 1, milliseconds(60'000));
    for (int i = 0; i < 55; ++i) {
        advance_s(1);
    }
    EXPECT_FALSE(r->answered);
    EXPECT_EQ(status_of(*store_, a), store::agent_status::online);
    const std::string t = submit();
    ASSERT_TRUE(r->answered);
    ASSERT_EQ(r->tasks.size(), 1u);
    EXPECT_EQ(r->tasks[0].id, t);
}

}  // namespace pm_agent::core::testing

namespace pm_agent::core::testing {

// With a heartbeat_timeout of a few seconds the renewal period must not round down to 0 s
// (renewing in a loop inside tick()).
TEST_F(engine_test, AWaitingPollKeepsItsAgentAliveWithAShortHeartbeatTimeout) {
    engine_options short_timeout = options();
    short_timeout.agents.heartbeat_timeout = std::chrono::seconds(2);
    auto st = store::make_memory_store(short_timeout.queue, short_timeout.agents);
    engine e(*st, short_timeout, rng_);
    std::string id;
    e.register_agent(agent_spec{.name = "w", .queues = {"default"}}, now_,
                     [&](store::result<registration> r) {
                         ASSERT_TRUE(r);
                         id = r->agent->id;
                     });
    bool answered = false;
    e.request_tasks(id, 1, milliseconds(5000), now_,
                    [&](store::result<std::span<const store::task* const>>) { answered = true; });
    for (int i = 0; i < 40; ++i) {  // 4 s
        now_ += milliseconds(100);
        e.tick(now_);
    }
    EXPECT_FALSE(answered);
    EXPECT_EQ(status_of(*st, id), store::agent_status::online);
}

}  // namespace pm_agent::core::testing
