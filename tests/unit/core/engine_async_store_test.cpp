// Engine over an asynchronous store: the same code, with every store answer arriving later.
#include "deferred_store.hpp"
#include "engine_fixture.hpp"

namespace pm_agent::core::testing {

using std::chrono::milliseconds;
using ids = std::vector<std::string>;

class engine_async_test : public ::testing::Test {
  protected:
    static inline const time_point t0 = time_point(std::chrono::hours(24 * 365 * 50));

    engine_async_test()
        : memory_(store::make_memory_store(opts().queue, opts().agents)),
          deferred_(*memory_),
          rng_(3),
          engine_(deferred_, opts(), rng_) {}

    static engine_options opts() {
        engine_options o;
        o.agents.heartbeat_timeout = std::chrono::seconds(45);
        o.agents.lease_timeout = std::chrono::seconds(60);
        return o;
    }

    std::string add_agent(std::int64_t max_concurrency, std::vector<std::string> caps = {}) {
        agent_spec spec;
        spec.name = "w";
        spec.max_concurrency = max_concurrency;
        spec.capabilities = std::move(caps);
        std::string id;
        engine_.register_agent(std::move(spec), now_, [&](store::result<registration> r) {
            ASSERT_TRUE(r);
            id = r->agent->id;
        });
        EXPECT_TRUE(id.empty());  // not before the store answered
        deferred_.run();
        return id;
    }

    std::string attach(fake_sink& sink, std::int64_t max_concurrency,
                       std::vector<std::string> caps = {}) {
        const std::string id = add_agent(max_concurrency, std::move(caps));
        bool attached = false;
        engine_.attach(id, sink, now_, [&](store::result<const store::agent*> r) {
            ASSERT_TRUE(r);
            attached = true;
        });
        deferred_.run();
        EXPECT_TRUE(attached);
        return id;
    }

    void submit(std::vector<std::string>* out = nullptr) {
        task_spec spec;
        spec.type = "work";
        engine_.submit(std::move(spec), now_, [out](store::result<store::submitted> r) {
            ASSERT_TRUE(r);
            if (out != nullptr) {
                out->push_back(r->record->id);
            }
        });
    }

    /// An attached agent with `credit` granted, whose first claim found nothing.
    std::string free_consumer(fake_sink& sink, std::uint32_t credit,
                              std::vector<std::string> caps = {}) {
        const std::string id = attach(sink, credit, std::move(caps));
        EXPECT_TRUE(engine_.ready(id, credit, now_));
        deferred_.run();
        return id;
    }

    /// n tasks in one submit_batch: one store operation, as one transaction writes them.
    void submit_batch(std::size_t n, std::vector<std::string>* out = nullptr,
                      std::vector<std::string> last_needs = {}) {
        std::vector<task_spec> specs(n);
        for (task_spec& spec : specs) {
            spec.type = "work";
        }
        specs.back().required_capabilities = std::move(last_needs);
        engine_.submit_batch(std::move(specs), now_,
                             [out](store::result<std::span<const store::submitted>> r) {
                                 ASSERT_TRUE(r);
                                 for (const store::submitted& entry : *r) {
                                     if (out != nullptr) {
                                         out->push_back(entry.record->id);
                                     }
                                 }
                             });
    }

    /// A pending task written behind the engine's back, as another worker would.
    void write_elsewhere(const std::string& id, int priority) {
        store::new_task t;
        t.id = id;
        t.queue = "default";
        t.type = "work";
        t.priority = priority;
        std::vector<store::new_task> one;
        one.push_back(std::move(t));
        memory_->submit(std::move(one), now_,
                        [](store::result<std::span<const store::submitted>> r) { ASSERT_TRUE(r); });
    }

    time_point now_ = t0;
    std::unique_ptr<store::store> memory_;
    deferred_store deferred_;
    seeded_random rng_;
    engine engine_;
};

TEST_F(engine_async_test, PushAndCreditFlowWhenTheStoreAnswersLater) {
    fake_sink sink;
    const std::string a = free_consumer(sink, 1);
    std::vector<std::string> tasks;
    submit(&tasks);
    submit(&tasks);
    EXPECT_TRUE(tasks.empty());
    deferred_.run();
    ASSERT_EQ(tasks.size(), 2u);
    ASSERT_EQ(sink.task_ids(), ids{tasks[0]});
    bool completed = false;
    engine_.complete({tasks[0], a}, nullptr, now_,
                     [&](store::result<const store::task*> r) { completed = r.ok(); });
    EXPECT_FALSE(completed);
    deferred_.run();
    EXPECT_TRUE(completed);
    EXPECT_EQ(sink.task_ids(), (ids{tasks[0], tasks[1]}));
}

TEST_F(engine_async_test, LongPollOfAnAgentNotSeenBefore) {
    const std::string a = add_agent(2);
    std::vector<std::string> got;
    bool answered = false;
    engine_.request_tasks(a, 2, milliseconds(30000), now_,
                          [&](store::result<std::span<const store::task* const>> r) {
                              ASSERT_TRUE(r);
                              answered = true;
                              for (const store::task* t : *r) {
                                  got.push_back(t->id);
                              }
                          });
    deferred_.run();
    EXPECT_FALSE(answered);
    EXPECT_EQ(engine_.waiting_requests(), 1u);
    std::vector<std::string> tasks;
    submit(&tasks);
    deferred_.run();
    ASSERT_TRUE(answered);
    EXPECT_EQ(got, tasks);
}

TEST_F(engine_async_test, APollWhoseClaimIsInFlightAtItsDeadlineGetsTheClaimedTasks) {
    const std::string a = add_agent(1);
    std::optional<std::size_t> got;
    engine_.request_tasks(a, 1, milliseconds(10000), now_,
                          [&](store::result<std::span<const store::task* const>> r) {
                              ASSERT_TRUE(r);
                              got = r->size();
                          });
    deferred_.run();
    submit();
    ASSERT_TRUE(deferred_.run_one());  // the submission; the claim for the poll is now queued
    EXPECT_EQ(deferred_.queued(), 1u);
    now_ += milliseconds(10000);
    // Not answered empty while its claim is in flight, and its deadline is not due again at
    // once (the worker's timer would spin until the claim returned).
    EXPECT_GT(engine_.tick(now_), now_);
    EXPECT_FALSE(got);
    deferred_.run();
    EXPECT_EQ(got, 1u);
}

TEST_F(engine_async_test, AbandonedWhileTheAgentLookupIsInFlight) {
    const std::string a = add_agent(1);
    bool answered = false;
    const request_id id = engine_.request_tasks(
        a, 1, milliseconds(30000), now_,
        [&](store::result<std::span<const store::task* const>>) { answered = true; });
    engine_.abandon_request(id);
    deferred_.run();
    std::vector<std::string> tasks;
    submit(&tasks);
    deferred_.run();
    EXPECT_FALSE(answered);
    EXPECT_EQ(engine_.waiting_requests(), 0u);
    std::optional<store::task_status> status;
    engine_.get_task(tasks.at(0),
                     [&](store::result<const store::task*> r) { status = (*r)->status; });
    deferred_.run();
    EXPECT_EQ(status, store::task_status::pending);
}

TEST_F(engine_async_test, AFailingClaimEndsTheLongPollWithTheError) {
    const std::string a = add_agent(1);
    deferred_.fail_claims = true;
    std::optional<store::errc> code;
    engine_.request_tasks(a, 1, milliseconds(30000), now_,
                          [&](store::result<std::span<const store::task* const>> r) {
                              code = r ? std::optional<store::errc>() : r.err().code;
                          });
    deferred_.run();
    EXPECT_EQ(code, store::errc::unavailable);
    EXPECT_EQ(engine_.waiting_requests(), 0u);
}

TEST_F(engine_async_test, ADetachBeforeTheAttachCompletesWins) {
    const std::string a = add_agent(1);
    fake_sink sink;
    std::optional<store::errc> code;
    engine_.attach(a, sink, now_, [&](store::result<const store::agent*> r) {
        code = r ? std::optional<store::errc>() : r.err().code;
    });
    engine_.detach(a, sink);
    deferred_.run();
    EXPECT_EQ(code, store::errc::unavailable);
    EXPECT_EQ(engine_.attached_agents(), 0u);
    EXPECT_FALSE(engine_.ready(a, 1, now_));
    submit();
    deferred_.run();
    EXPECT_TRUE(sink.tasks.empty());
}

TEST_F(engine_async_test, DeregisterWhileAClaimIsInFlight) {
    fake_sink sink;
    const std::string a = attach(sink, 2);
    bool deregistered = false;
    engine_.deregister(a, now_, [&](store::result<void> r) { deregistered = r.ok(); });
    ASSERT_TRUE(engine_.ready(a, 2, now_));  // its claim is queued behind the deregistration
    EXPECT_EQ(deferred_.queued(), 2u);
    deferred_.run();
    EXPECT_TRUE(deregistered);
    EXPECT_EQ(sink.deregistered_calls, 1);
    EXPECT_EQ(engine_.tracked_agents(), 0u);
    EXPECT_EQ(engine_.attached_agents(), 0u);
}

TEST_F(engine_async_test, TimersWorkWithADeferredReap) {
    fake_sink lost;
    const std::string a = attach(lost, 1);
    ASSERT_TRUE(engine_.ready(a, 1, now_));
    std::vector<std::string> tasks;
    submit(&tasks);
    deferred_.run();
    ASSERT_EQ(lost.tasks.size(), 1u);
    engine_.detach(a, lost);
    now_ += std::chrono::seconds(45);
    engine_.tick(now_);
    deferred_.run();
    EXPECT_EQ(engine_.tracked_agents(), 0u);  // offline and unreachable: forgotten
    EXPECT_EQ(engine_.counters().lease_expired, 1u);
    EXPECT_EQ(engine_.counters().requeued, 1u);
}

// The store learns which agents this worker holds a WebSocket for (a shared store lets the
// worker's liveness stand for theirs): once per connection, and not for a stale connection.
TEST_F(engine_async_test, TheStoreIsToldOfEachAttachAndDetach) {
    fake_sink first;
    const std::string a = attach(first, 1);
    EXPECT_EQ(deferred_.attachments, ids{"+" + a});
    fake_sink second;
    engine_.attach(a, second, now_, [](store::result<const store::agent*>) {});
    deferred_.run();
    engine_.detach(a, first);  // the connection replaced: nothing to tell
    EXPECT_EQ(deferred_.attachments, ids{"+" + a});
    engine_.detach(a, second);
    EXPECT_EQ(deferred_.attachments, (ids{"+" + a, "-" + a}));
}

// An idle agent's heartbeat is no reason to claim (on a database each claim is a round trip, and
// a fleet heartbeats all the time); work reaches it through offers. A heartbeat that brings it
// back online does claim.
TEST_F(engine_async_test, AHeartbeatClaimsOnlyWhenItChangesTheAgentsStatus) {
    fake_sink sink;
    const std::string a = free_consumer(sink, 1);
    const std::size_t claims = deferred_.claims;
    EXPECT_GE(claims, 1u);  // the ready grant looked for work
    for (int i = 0; i < 3; ++i) {
        now_ += std::chrono::seconds(5);
        engine_.heartbeat(a, std::nullopt, now_,
                          [](store::result<std::vector<std::string>> r) { EXPECT_TRUE(r); });
        deferred_.run();
    }
    EXPECT_EQ(deferred_.claims, claims);
    now_ += std::chrono::seconds(46);  // silent: offline
    engine_.tick(now_);
    deferred_.run();
    engine_.heartbeat(a, std::nullopt, now_, [](store::result<std::vector<std::string>>) {});
    deferred_.run();
    EXPECT_EQ(deferred_.claims, claims + 1);  // back online with a free slot
    std::vector<std::string> tasks;
    submit(&tasks);
    deferred_.run();
    EXPECT_EQ(sink.tasks.size(), 1u);  // and work still reaches it
}

// Tasks written in one transaction are counted on the first claim they start: the other free
// consumers are not sent to find nothing (a batch used to start a claim on every free consumer,
// all but the first coming back empty, and then once more for the offers they missed).
TEST_F(engine_async_test, ABatchOfTasksStartsOneClaimWhenOneConsumerHasRoomForAll) {
    fake_sink s1, s2, s3;
    free_consumer(s1, 10);
    free_consumer(s2, 10);
    free_consumer(s3, 10);
    const std::size_t claims = deferred_.claims;
    submit_batch(5);
    deferred_.run();
    EXPECT_EQ(deferred_.claims, claims + 1);
    EXPECT_EQ(s1.tasks.size() + s2.tasks.size() + s3.tasks.size(), 5u);
}

// A claim started before the write was answered may have read the queue before it: the task is
// not counted on it, a free consumer claims.
TEST_F(engine_async_test, AClaimStartedBeforeTheWriteIsNotCountedOn) {
    fake_sink s1, s2;
    const std::string a = attach(s1, 2), b = attach(s2, 2);
    ASSERT_TRUE(engine_.ready(b, 2, now_));
    deferred_.run();
    const std::size_t claims = deferred_.claims;
    submit();
    ASSERT_TRUE(engine_.ready(a, 2, now_));  // claims while the write is still unanswered
    EXPECT_EQ(deferred_.claims, claims + 1);
    ASSERT_TRUE(deferred_.run_one());  // the write
    EXPECT_EQ(deferred_.claims, claims + 2);
    deferred_.run();
    EXPECT_EQ(s1.tasks.size() + s2.tasks.size(), 1u);
}

// A claim counted on for more tasks than it took (it came back full: an older or higher task
// it was not told of came first) sends the other free consumers to look again.
TEST_F(engine_async_test, TasksLeftBehindByAFullClaimAreOfferedAgain) {
    fake_sink s1, s2;
    free_consumer(s1, 2);
    free_consumer(s2, 2);
    std::vector<std::string> batch;
    submit_batch(2, &batch);
    ASSERT_TRUE(deferred_.run_one());  // the write: both tasks counted on a's claim
    ASSERT_EQ(batch.size(), 2u);
    write_elsewhere("t-urgent", 9);
    deferred_.run();
    EXPECT_EQ(s1.task_ids(), (ids{"t-urgent", batch[0]}));
    EXPECT_EQ(s2.task_ids(), ids{batch[1]});
}

// A slot coming back claims only when something may be pending for the agent: not when its last
// claim took all it could see and no task has gone unoffered since (a claim per completion came
// back empty whenever the consumers kept up with the submitters).
TEST_F(engine_async_test, ACompletionClaimsOnlyIfATaskWentUnofferedSinceTheLastClaim) {
    fake_sink sink;
    const std::string a = free_consumer(sink, 3);
    std::vector<std::string> tasks;
    submit(&tasks);
    deferred_.run();
    ASSERT_EQ(sink.task_ids(), tasks);  // one of the three it asked for
    std::size_t claims = deferred_.claims;
    auto complete = [&](const std::string& id) {
        engine_.complete({id, a}, nullptr, now_,
                         [](store::result<const store::task*> r) { EXPECT_TRUE(r); });
        deferred_.run();
    };
    complete(tasks[0]);
    EXPECT_EQ(deferred_.claims, claims);
    // Two tasks written while its claim for the first is in flight: the second finds no free
    // consumer (the claim started before it was written), though the claim happens to see it.
    submit(&tasks);
    submit(&tasks);
    ASSERT_TRUE(deferred_.run_one());  // the first write: the claim goes behind the second
    ASSERT_TRUE(deferred_.run_one());  // the second write: nobody to offer it to
    deferred_.run();
    ASSERT_EQ(sink.tasks.size(), 3u);
    claims = deferred_.claims;
    complete(tasks[1]);
    EXPECT_EQ(deferred_.claims, claims + 1);
}

// A task submitted and claimed in one transaction (the claim ran after the insert) is not
// offered again when its submission is answered: another free consumer would find nothing.
TEST_F(engine_async_test, ATaskClaimedInTheTransactionThatWroteItIsNotOfferedAgain) {
    fake_sink s1, s2;
    free_consumer(s1, 4);
    free_consumer(s2, 4);
    std::vector<std::string> tasks;
    submit(&tasks);
    submit(&tasks);
    ASSERT_TRUE(deferred_.run_one());  // the first task written; a claim for it is queued
    const std::size_t claims = deferred_.claims;
    ASSERT_EQ(deferred_.queued(), 2u);  // the second write, then that claim
    deferred_.run_as_one_transaction(2);
    ASSERT_EQ(tasks.size(), 2u);
    EXPECT_EQ(s1.tasks.size() + s2.tasks.size(), 2u);
    EXPECT_EQ(deferred_.claims, claims);
    EXPECT_EQ(deferred_.queued(), 0u);
}

// A claim that came back full with every task counted on it sends nobody else looking.
TEST_F(engine_async_test, AFullClaimThatTookEveryTaskCountedOnItOffersNothingMore) {
    fake_sink s1, s2;
    free_consumer(s1, 2);
    free_consumer(s2, 2);
    const std::size_t claims = deferred_.claims;
    submit_batch(2);
    deferred_.run();
    EXPECT_EQ(s1.tasks.size(), 2u);
    EXPECT_EQ(deferred_.claims, claims + 1);
}

// A task needing a capability is not counted on a claim of an agent without it: the agent
// that has it claims.
TEST_F(engine_async_test, ATaskIsCountedOnlyOnAClaimWhoseAgentCanTakeIt) {
    fake_sink plain, gpu;
    free_consumer(plain, 10);
    free_consumer(gpu, 10, {"gpu"});
    std::vector<std::string> batch;
    submit_batch(2, &batch, {"gpu"});
    deferred_.run();
    ASSERT_EQ(batch.size(), 2u);
    EXPECT_EQ(plain.task_ids(), ids{batch[0]});
    EXPECT_EQ(gpu.task_ids(), ids{batch[1]});
}

// A store that takes at most claim_limit() tasks per claim: no claim is counted on for more.
TEST_F(engine_async_test, NoClaimIsCountedOnForMoreThanTheStoreTakesAtOnce) {
    deferred_.claim_cap = 2;
    fake_sink s1, s2;
    free_consumer(s1, 4);
    free_consumer(s2, 4);
    submit_batch(4);
    deferred_.run();
    EXPECT_EQ(s1.tasks.size() + s2.tasks.size(), 4u);
}

// A claim that failed saw nothing: the agent's next credit claims again.
TEST_F(engine_async_test, AfterAFailedClaimTheNextCreditClaims) {
    fake_sink sink;
    const std::string a = free_consumer(sink, 2);
    deferred_.fail_claims = true;
    engine_.offer("default", now_);  // a wake-up from another worker
    deferred_.run();
    deferred_.fail_claims = false;
    write_elsewhere("t-waiting", 0);
    ASSERT_TRUE(engine_.ready(a, 1, now_));
    deferred_.run();
    EXPECT_EQ(sink.task_ids(), ids{"t-waiting"});
}

// Tasks left behind by a full claim, with no consumer free here, are reported unclaimed so that
// other workers' consumers come for them.
TEST_F(engine_async_test, TasksLeftBehindWithNobodyFreeHereAreReportedUnclaimed) {
    struct unclaimed_observer final : engine_observer {
        void on_dispatched(store::time_point) override {}
        void on_unclaimed(std::string_view queue) override { queues.emplace_back(queue); }
        ids queues;
    } observer;
    fake_sink sink;
    free_consumer(sink, 2);
    engine_.set_observer(&observer);
    submit_batch(2);
    ASSERT_TRUE(deferred_.run_one());  // both counted on the one claim
    write_elsewhere("t-urgent", 9);
    deferred_.run();
    engine_.set_observer(nullptr);
    EXPECT_EQ(sink.tasks.size(), 2u);
    EXPECT_EQ(observer.queues, ids{"default"});
}

}  // namespace pm_agent::core::testing
