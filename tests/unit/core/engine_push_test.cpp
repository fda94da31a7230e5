// Engine: WebSocket credit flow and pushes.
#include "engine_fixture.hpp"

namespace pm_agent::core::testing {

using store::task_status;
using ids = std::vector<std::string>;

TEST_F(engine_test, SubmitPushesToAnAttachedAgentWithCredit) {
    fake_sink sink;
    const std::string a = add_ws_agent(sink, 2);
    const std::string t = submit();
    ASSERT_EQ(sink.task_ids(), ids{t});
    EXPECT_EQ(sink.tasks[0].status, task_status::assigned);
    EXPECT_EQ(sink.tasks[0].agent_id, a);
    EXPECT_EQ(sink.tasks[0].attempts, 1);
    EXPECT_EQ(get(t)->status, task_status::assigned);
    EXPECT_EQ(engine_.counters().dispatched, 1u);
}

TEST_F(engine_test, NoCreditNoPushUntilReady) {
    fake_sink sink;
    const std::string a = add_ws_agent(sink, 0);
    const std::string t1 = submit("default", 0);
    const std::string t2 = submit("default", 5);
    EXPECT_TRUE(sink.tasks.empty());
    EXPECT_EQ(count(task_status::pending), 2u);
    ASSERT_TRUE(engine_.ready(a, 1, now_));
    EXPECT_EQ(sink.task_ids(), ids{t2});  // priority first
    ASSERT_TRUE(engine_.ready(a, 1, now_));
    EXPECT_EQ(sink.task_ids(), (ids{t2, t1}));
}

TEST_F(engine_test, CreditIsCappedByMaxConcurrency) {
    fake_sink sink;
    add_ws_agent(sink, 10, {"default"}, {}, 2);
    for (int i = 0; i < 5; ++i) {
        submit();
    }
    EXPECT_EQ(sink.tasks.size(), 2u);
    EXPECT_EQ(count(task_status::pending), 3u);
}

TEST_F(engine_test, CompletionCreditsTheSlotBackAndPushesTheNext) {
    fake_sink sink;
    const std::string a = add_ws_agent(sink, 1, {"default"}, {}, 1);
    const std::string t1 = submit();
    const std::string t2 = submit();
    ASSERT_EQ(sink.task_ids(), ids{t1});
    auto done = complete(t1, a);
    ASSERT_TRUE(done) << done.err().message;
    EXPECT_EQ(done->status, task_status::succeeded);
    EXPECT_EQ(sink.task_ids(), (ids{t1, t2}));
    // A failure credits back too.
    const std::string t3 = submit();
    auto failed = fail(t2, a, /*retryable=*/false);
    ASSERT_TRUE(failed);
    EXPECT_EQ(failed->status, task_status::dead);
    EXPECT_EQ(sink.task_ids(), (ids{t1, t2, t3}));
    EXPECT_EQ(engine_.counters().succeeded, 1u);
    EXPECT_EQ(engine_.counters().dead, 1u);
}

TEST_F(engine_test, CompletionKeepsGrantedCreditConstant) {
    fake_sink sink;
    const std::string a = add_ws_agent(sink, 2, {"default"}, {}, 4);
    const std::string t1 = submit();
    ASSERT_TRUE(complete(t1, a));
    // Granted 2, one used and credited back: two more are pushed, not three.
    submit();
    submit();
    submit();
    EXPECT_EQ(sink.tasks.size(), 3u);
    EXPECT_EQ(count(task_status::pending), 1u);
}

TEST_F(engine_test, RetryableFailureIsScheduledWithBackoffThenRedelivered) {
    fake_sink sink;
    const std::string a = add_ws_agent(sink, 1, {"default"}, {}, 1);
    const std::string t = submit();
    auto f = fail(t, a);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->status, task_status::scheduled);
    ASSERT_TRUE(f->run_at);
    EXPECT_GE(*f->run_at, now_);
    EXPECT_LT(*f->run_at, now_ + std::chrono::seconds(1));  // attempt 1: at most retry_base
    EXPECT_EQ(engine_.counters().retried, 1u);
    ASSERT_FALSE(hooks_.empty());
    EXPECT_EQ(hooks_.back(), *f->run_at);  // the timer is re-armed for the retry
    now_ = *f->run_at;
    engine_.tick(now_);
    ASSERT_EQ(sink.tasks.size(), 2u);
    EXPECT_EQ(sink.tasks[1].id, t);
    EXPECT_EQ(sink.tasks[1].attempts, 2);
}

TEST_F(engine_test, ReadyIsRefusedWhenNotAttached) {
    const std::string a = add_agent();
    EXPECT_FALSE(engine_.ready(a, 1, now_));
    EXPECT_FALSE(engine_.ready("a_unknown", 1, now_));
}

TEST_F(engine_test, DetachedAgentGetsNoPushesButKeepsItsTasks) {
    fake_sink sink;
    const std::string a = add_ws_agent(sink, 2);
    const std::string t1 = submit();
    engine_.detach(a, sink);
    EXPECT_EQ(engine_.attached_agents(), 0u);
    submit();
    EXPECT_EQ(sink.tasks.size(), 1u);
    // Reconnecting carries on with the lease, starting from 0 credit.
    fake_sink again;
    engine_.attach(a, again, now_, [](store::result<const store::agent*> r) { ASSERT_TRUE(r); });
    EXPECT_TRUE(again.tasks.empty());
    EXPECT_TRUE(complete(t1, a));
    EXPECT_EQ(again.tasks.size(), 1u);  // the slot credited back by the completion
}

namespace {

// A connection whose outbound queue holds `capacity` frames; the next push overflows it and the
// transport drops the connection as too slow, from inside push_task as a real one may.
class slow_sink final : public agent_sink {
  public:
    slow_sink(engine& e, std::size_t capacity, time_point now)
        : e_(e), capacity_(capacity), now_(now) {}
    void push_task(const store::task& task) override {
        if (tasks.size() == capacity_) {
            e_.detach_too_slow(agent_id, *this, now_);
            return;
        }
        tasks.push_back(task.id);
    }
    void push_cancel(std::string_view) override {}
    void deregistered() override {}
    void replaced() override {}

    std::string agent_id;
    std::vector<std::string> tasks;

  private:
    engine& e_;
    std::size_t capacity_;
    time_point now_;
};

}  // namespace

TEST_F(engine_test, ATooSlowConsumerIsDroppedAndItsTasksRequeuedAtOnce) {
    slow_sink slow(engine_, 1, now_);
    slow.agent_id = add_agent({"default"}, {}, 4);
    engine_.attach(slow.agent_id, slow, now_,
                   [](store::result<const store::agent*> r) { ASSERT_TRUE(r); });
    std::vector<task_spec> batch(3);
    for (task_spec& s : batch) {
        s.type = "work";
    }
    std::vector<std::string> ids_in_order;
    engine_.submit_batch(std::move(batch), now_,
                         [&](store::result<std::span<const store::submitted>> r) {
                             ASSERT_TRUE(r);
                             for (const store::submitted& s : *r) {
                                 ids_in_order.push_back(s.record->id);
                             }
                         });
    ASSERT_TRUE(engine_.ready(slow.agent_id, 3, now_));  // the second push overflows
    EXPECT_EQ(slow.tasks, ids{ids_in_order[0]});
    EXPECT_EQ(engine_.attached_agents(), 0u);
    EXPECT_EQ(count(task_status::pending), 3u);       // including the one it did receive
    EXPECT_EQ(engine_.counters().lease_expired, 3u);  // all three were claimed for it
    fake_sink healthy;
    add_ws_agent(healthy, 3);
    ASSERT_EQ(healthy.tasks.size(), 3u);
    EXPECT_EQ(healthy.tasks[0].id, ids_in_order[0]);
    EXPECT_EQ(healthy.tasks[0].attempts, 2);
}

TEST_F(engine_test, ADetachOfAReplacedConnectionIsIgnored) {
    fake_sink old_sink;
    fake_sink new_sink;
    const std::string a = add_ws_agent(old_sink, 0);
    engine_.attach(a, new_sink, now_, [](store::result<const store::agent*> r) { ASSERT_TRUE(r); });
    EXPECT_EQ(old_sink.replaced_calls, 1);  // told to close: the newer connection is kept
    EXPECT_EQ(new_sink.replaced_calls, 0);
    engine_.detach(a, old_sink);
    ASSERT_TRUE(engine_.ready(a, 1, now_));
    submit();
    EXPECT_EQ(new_sink.tasks.size(), 1u);
    EXPECT_TRUE(old_sink.tasks.empty());
}

}  // namespace pm_agent::core::testing

namespace pm_agent::core::testing {

// A push can die with its connection unread. On reconnect the tasks the agent never reported
// on come again (their leases would otherwise be renewed forever with nobody on them); a task
// it reported on, and one pushed on the new connection, do not.
TEST_F(engine_test, AReconnectedAgentGetsTheTasksItNeverReportedOnAgain) {
    fake_sink first;
    const std::string a = add_ws_agent(first, 2, {"default"}, {}, 2);
    const std::string lost = submit();
    const std::string started = submit();
    ASSERT_EQ(first.task_ids(), (std::vector<std::string>{lost, started}));
    engine_.progress({started, a}, 0.5, "", now_, [](store::result<const store::task*> r) {
        ASSERT_TRUE(r);
    });
    engine_.detach(a, first);  // the connection died
    now_ += std::chrono::seconds(1);
    fake_sink second;
    engine_.attach(a, second, now_, [](store::result<const store::agent*> r) { ASSERT_TRUE(r); });
    ASSERT_EQ(second.task_ids(), std::vector<std::string>{lost});
    EXPECT_EQ(second.tasks[0].attempts, 1);  // the same assignment, not a new one
    EXPECT_EQ(engine_.counters().repushed, 1u);
    EXPECT_EQ(engine_.counters().dispatched, 2u);
    // Its slots are still taken by the two tasks: no new one without a completion.
    engine_.ready(a, 2, now_);
    submit();
    EXPECT_EQ(second.tasks.size(), 1u);
}

}  // namespace pm_agent::core::testing
