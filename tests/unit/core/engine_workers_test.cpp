// Engine: the hooks that let workers sharing a store act as one (DESIGN.md §2 Redis). Two
// engines over one memory store stand for two workers over one database; the observer stands
// for the Redis link that carries the wake-ups and cancel notices between them.
#include <algorithm>

#include "engine_fixture.hpp"

namespace pm_agent::core::testing {

using ids = std::vector<std::string>;

namespace {

struct recording_observer final : engine_observer {
    void on_dispatched(store::time_point) override {}
    void on_heartbeat(const store::agent& agent, time_point) override {
        heartbeats.push_back(agent.id);
    }
    void on_unclaimed(std::string_view queue) override { unclaimed.emplace_back(queue); }
    void on_hungry(std::string_view queue) override { hungry.emplace_back(queue); }
    void on_notice_elsewhere(std::string_view agent_id) override { notices.emplace_back(agent_id); }
    void on_attached(std::string_view agent_id, time_point at) override {
        attached.emplace_back(agent_id);
        attached_at = at;
    }
    ids heartbeats, unclaimed, hungry, notices, attached;
    time_point attached_at{};
};

}  // namespace

/// engine_ is worker A (its agents attach there); other_ is worker B on the same store.
class engine_workers_test : public engine_test {
  protected:
    engine_workers_test() : other_(*store_, options(), rng_) {
        engine_.set_observer(&observer_a_);
        other_.set_observer(&observer_b_);
    }
    ~engine_workers_test() override {
        engine_.set_observer(nullptr);
        other_.set_observer(nullptr);
    }

    std::string submit_on_b(std::string queue = "default") {
        task_spec spec;
        spec.type = "t";
        spec.queue = std::move(queue);
        std::string id;
        other_.submit(std::move(spec), now_, [&](store::result<store::submitted> r) {
            ASSERT_TRUE(r) << r.err().message;
            id = r->record->id;
        });
        return id;
    }

    /// A task that times out after 1 s (timeout_s), for a lease a reaper ends.
    void submit_timing_out(std::optional<std::int64_t> max_attempts = std::nullopt) {
        task_spec spec;
        spec.type = "t";
        spec.timeout_s = 1;
        spec.max_attempts = max_attempts;
        ASSERT_TRUE(submit_spec(std::move(spec)));
    }

    recording_observer observer_a_, observer_b_;
    engine other_;
};

TEST_F(engine_workers_test, ATaskNoLocalConsumerCanTakeIsReportedAndOfferedElsewhere) {
    fake_sink sink;
    const std::string a = add_ws_agent(sink, 1);
    const std::string t = submit_on_b();
    EXPECT_TRUE(sink.tasks.empty());  // worker A was not told
    EXPECT_EQ(observer_b_.unclaimed, ids{"default"});
    engine_.offer("default", now_);  // the wake-up arrives at A
    EXPECT_EQ(sink.task_ids(), ids{t});
}

TEST_F(engine_workers_test, ATaskALocalConsumerTakesIsNotReported) {
    fake_sink sink;
    add_ws_agent(sink, 1);
    const std::string t = submit();
    EXPECT_EQ(sink.task_ids(), ids{t});
    EXPECT_TRUE(observer_a_.unclaimed.empty());
    submit();  // the one consumer has no credit left
    EXPECT_EQ(observer_a_.unclaimed, ids{"default"});
}

// Hunger: a free consumer whose claim found nothing waits for work, and only then are other
// workers' wake-ups worth publishing for its queues.
TEST_F(engine_workers_test, AFreeConsumerThatFoundNothingIsHungryUntilItGetsWork) {
    fake_sink sink;
    const std::string a = add_ws_agent(sink, 1, {"default", "other"});
    EXPECT_EQ(engine_.hungry_queues(), (ids{"default", "other"}));
    EXPECT_EQ(observer_a_.hungry, (ids{"default", "other"}));
    // A second such consumer of "default" is no news.
    fake_sink sink2;
    add_ws_agent(sink2, 1);
    EXPECT_EQ(observer_a_.hungry.size(), 2u);
    // The first takes a task: "other" has nobody waiting any more, "default" still has one.
    const std::string t = submit("other");
    EXPECT_EQ(sink.task_ids(), ids{t});
    EXPECT_EQ(engine_.hungry_queues(), ids{"default"});
    submit();  // the second consumer takes it
    EXPECT_TRUE(engine_.hungry_queues().empty());
    // Its slot back, the first claims at once, finds nothing and waits again.
    ASSERT_TRUE(complete(t, a));
    EXPECT_EQ(engine_.hungry_queues(), (ids{"default", "other"}));
    EXPECT_EQ(observer_a_.hungry, (ids{"default", "other", "default", "other"}));
}

TEST_F(engine_workers_test, AConsumerLeftWithCreditAfterAShortClaimIsHungry) {
    fake_sink sink;
    add_ws_agent(sink, 3);
    const std::string t = submit();
    EXPECT_EQ(sink.task_ids(), ids{t});  // one of the three it could take
    EXPECT_EQ(engine_.hungry_queues(), ids{"default"});
    submit();
    submit();
    EXPECT_EQ(sink.tasks.size(), 3u);
    EXPECT_TRUE(engine_.hungry_queues().empty());  // no credit left
}

// A long poll of an agent at its max_concurrency waits; its task ends on another worker, and
// the agent's next heartbeat here shows the slot free: the poll looks for work at once (a task
// already pending reaches it) instead of waiting for an offer.
TEST_F(engine_workers_test, ASlotFreedOnAnotherWorkerLooksForWorkAtTheNextHeartbeat) {
    const std::string a = add_agent({"default"}, {}, 1);
    const std::string held = submit();
    auto first = poll(a, 1, std::chrono::milliseconds(0));
    ASSERT_TRUE(first->answered);
    ASSERT_EQ(first->tasks.size(), 1u);
    auto waiting = poll(a, 1, std::chrono::seconds(30));
    EXPECT_FALSE(waiting->answered);         // no room
    const std::string next = submit_on_b();  // B has no consumer; A is not told
    other_.complete(store::lease_ref{held, a}, boost::json::value(nullptr), now_,
                    [](store::result<const store::task*> r) { ASSERT_TRUE(r); });
    EXPECT_FALSE(waiting->answered);
    ASSERT_TRUE(heartbeat(a));
    ASSERT_TRUE(waiting->answered);
    ASSERT_EQ(waiting->tasks.size(), 1u);
    EXPECT_EQ(waiting->tasks[0].id, next);
}

// A REST agent behind nginx: it polls on A and completes on B. Its next poll on A finds the
// slot free and takes the task waiting, with no heartbeat in between.
TEST_F(engine_workers_test, ALongPollSeesASlotFreedOnAnotherWorker) {
    const std::string a = add_agent({"default"}, {}, 1);
    const std::string held = submit();
    auto first = poll(a, 1, std::chrono::milliseconds(0));
    ASSERT_TRUE(first->answered);
    ASSERT_EQ(first->tasks.size(), 1u);
    const std::string next = submit_on_b();
    other_.complete(store::lease_ref{held, a}, boost::json::value(nullptr), now_,
                    [](store::result<const store::task*> r) { ASSERT_TRUE(r); });
    auto second = poll(a, 1, std::chrono::seconds(30));
    ASSERT_TRUE(second->answered);
    ASSERT_EQ(second->tasks.size(), 1u);
    EXPECT_EQ(second->tasks[0].id, next);
}

TEST_F(engine_workers_test, AConsumerWithoutCreditOrGoneIsNotHungry) {
    fake_sink sink;
    const std::string a = add_ws_agent(sink, 0);  // ready, but no credit: takes nothing
    EXPECT_TRUE(engine_.hungry_queues().empty());
    fake_sink sink2;
    const std::string b = add_ws_agent(sink2, 1);
    EXPECT_EQ(engine_.hungry_queues(), ids{"default"});
    engine_.detach(b, sink2);
    EXPECT_TRUE(engine_.hungry_queues().empty());
}

TEST_F(engine_workers_test, ACancelOnAnotherWorkerReachesTheAttachedAgentOnce) {
    fake_sink sink;
    const std::string a = add_ws_agent(sink, 1);
    const std::string t = submit();
    ASSERT_EQ(sink.task_ids(), ids{t});
    other_.cancel(t, now_, [](store::result<const store::task*> r) { ASSERT_TRUE(r); });
    EXPECT_EQ(observer_b_.notices, ids{a});
    EXPECT_TRUE(sink.cancels.empty());
    engine_.deliver_notices(a, now_);
    EXPECT_EQ(sink.cancels, ids{t});
    // The notice was taken: a later heartbeat does not repeat it.
    ASSERT_TRUE(heartbeat(a));
    EXPECT_EQ(sink.cancels, ids{t});
    // Not attached on B: nothing to deliver there.
    EXPECT_FALSE(other_.is_attached(a));
    EXPECT_TRUE(engine_.is_attached(a));
}

// API.md: after `cancel` the slot is free. A task cancelled on another worker frees the slot of
// the agent attached here once the notice arrives: the task waiting for it is pushed without a
// new `ready`, and the slot is credited once however often the agent heartbeats.
TEST_F(engine_workers_test, ACancelOnAnotherWorkerCreditsTheSlotBackOnce) {
    fake_sink sink;
    const std::string a = add_ws_agent(sink, 1, {"default"}, {}, 2);
    const std::string t = submit();
    ASSERT_EQ(sink.task_ids(), ids{t});
    const std::string next = submit_on_b();  // pending: the agent has no credit left
    submit_on_b();  // one more, which must wait for the agent's next `ready`
    other_.cancel(t, now_, [](store::result<const store::task*> r) { ASSERT_TRUE(r); });
    engine_.deliver_notices(a, now_);
    EXPECT_EQ(sink.cancels, ids{t});
    EXPECT_EQ(sink.task_ids(), (ids{t, next}));
    ASSERT_TRUE(heartbeat(a));
    ASSERT_TRUE(heartbeat(a));
    EXPECT_EQ(sink.task_ids(), (ids{t, next}));  // one slot granted, one credited back
}

// The same for a lease another worker's reaper ended (the task's timeout_s passed there).
TEST_F(engine_workers_test, ALeaseEndedByAnotherWorkerCreditsTheSlotBack) {
    fake_sink sink;
    const std::string a = add_ws_agent(sink, 1);
    submit_timing_out(1);
    ASSERT_EQ(sink.tasks.size(), 1u);
    const std::string next = submit_on_b();
    now_ += std::chrono::seconds(2);
    other_.tick(now_);
    engine_.deliver_notices(a, now_);
    ASSERT_EQ(sink.cancels.size(), 1u);
    ASSERT_EQ(sink.tasks.size(), 2u);
    EXPECT_EQ(sink.tasks[1].id, next);
}

TEST_F(engine_workers_test, ALocalCancelIsPushedOnceThoughItsNoticeComesBackInAHeartbeat) {
    fake_sink sink;
    const std::string a = add_ws_agent(sink, 1);
    const std::string t = submit();
    ASSERT_TRUE(cancel(t));
    EXPECT_EQ(sink.cancels, ids{t});
    EXPECT_TRUE(observer_a_.notices.empty());  // its connection is here
    auto hb = heartbeat(a);
    ASSERT_TRUE(hb);
    EXPECT_EQ(*hb, ids{t});           // the store's notice, as a REST agent would get it
    EXPECT_EQ(sink.cancels, ids{t});  // but not pushed twice
}

TEST_F(engine_workers_test, HeartbeatsAndAttachesAreReported) {
    fake_sink sink;
    const std::string a = add_ws_agent(sink, 1);
    ASSERT_TRUE(heartbeat(a));
    EXPECT_EQ(observer_a_.heartbeats, (ids{a, a}));
}

TEST_F(engine_workers_test, AnAttachOnAnotherWorkerClosesTheOlderConnectionHere) {
    fake_sink here;
    const std::string a = add_ws_agent(here, 1);
    EXPECT_EQ(observer_a_.attached, ids{a});
    // The agent reconnects to worker B; B's attach is announced to A (the Redis link).
    fake_sink there;
    const auto later = now_ + std::chrono::seconds(1);
    other_.attach(a, there, later, [](store::result<const store::agent*> r) { ASSERT_TRUE(r); });
    ASSERT_EQ(observer_b_.attached, ids{a});
    engine_.replaced_elsewhere(a, observer_b_.attached_at);
    EXPECT_EQ(here.replaced_calls, 1);
    EXPECT_EQ(engine_.attached_agents(), 0u);
    // Detached here: a task submitted on A is not pushed into the stale connection.
    submit();
    EXPECT_TRUE(here.tasks.empty());
    // A late copy of the message is a no-op.
    engine_.replaced_elsewhere(a, observer_b_.attached_at);
    EXPECT_EQ(here.replaced_calls, 1);
    EXPECT_EQ(there.replaced_calls, 0);
}

TEST_F(engine_workers_test, AnAttachElsewhereOlderThanTheConnectionHereChangesNothing) {
    // The agent went to B, then came back to A before B's announcement arrived.
    fake_sink here;
    const std::string a = add_ws_agent(here, 1);
    engine_.replaced_elsewhere(a, now_ - std::chrono::milliseconds(5));
    EXPECT_EQ(here.replaced_calls, 0);
    EXPECT_EQ(engine_.attached_agents(), 1u);
    submit();
    EXPECT_EQ(here.tasks.size(), 1u);
}

TEST_F(engine_workers_test, ALeaseEndedByAnotherWorkersReaperIsReportedForTheHolder) {
    fake_sink sink;
    const std::string a = add_ws_agent(sink, 1);
    submit_timing_out();
    ASSERT_EQ(sink.tasks.size(), 1u);
    now_ += std::chrono::seconds(2);
    other_.tick(now_);  // B's reaper ends the lease (the memory store runs it wherever called)
    EXPECT_EQ(observer_b_.notices, ids{a});
}

}  // namespace pm_agent::core::testing
