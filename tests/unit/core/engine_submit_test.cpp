// Engine: submission rules (validation, batches, idempotency, bound, schedules).
#include "engine_fixture.hpp"

namespace pm_agent::core::testing {

using store::task_status;

namespace {

task_spec spec_of(std::string type) {
    task_spec s;
    s.type = std::move(type);
    return s;
}

}  // namespace

TEST_F(engine_test, SubmitAppliesDefaults) {
    auto r = submit_spec(spec_of("t"));
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->created);
    const store::task& t = *r->record;
    EXPECT_EQ(t.id.size(), 15u);
    EXPECT_EQ(t.id.substr(0, 2), "t_");
    EXPECT_EQ(t.queue, "default");
    EXPECT_EQ(t.priority, 0);
    EXPECT_EQ(t.max_attempts, 3);
    EXPECT_EQ(t.timeout_s, 0u);
    EXPECT_EQ(t.status, task_status::pending);
    EXPECT_EQ(engine_.counters().submitted, 1u);
    engine_.queue_depths([](store::result<std::vector<store::queue_depth>> d) {
        ASSERT_TRUE(d);
        ASSERT_EQ(d->size(), 1u);
        EXPECT_EQ((*d)[0].queue, "default");
        EXPECT_EQ((*d)[0].pending, 1u);
    });
}

TEST_F(engine_test, SubmitRejectsOutOfRangeValuesNamingTheField) {
    auto expect_bad = [&](task_spec s, std::string_view field) {
        auto r = submit_spec(std::move(s));
        ASSERT_FALSE(r);
        EXPECT_EQ(r.err().code, store::errc::bad_request);
        EXPECT_EQ(r.err().message.rfind(field, 0), 0u) << r.err().message;
    };
    task_spec s = spec_of("t");
    s.priority = 101;
    expect_bad(s, "priority");
    s = spec_of("t");
    s.max_attempts = 0;
    expect_bad(s, "max_attempts");
    s = spec_of("");
    expect_bad(s, "type");
    s = spec_of("t");
    s.delay_s = -1;
    expect_bad(s, "delay_s");
    s = spec_of("t");
    s.delay_s = 1;
    s.run_at = now_;
    expect_bad(s, "delay_s");
    s = spec_of("t");
    s.required_capabilities = {"gpu", ""};
    expect_bad(s, "required_capabilities");
    s = spec_of("t");
    s.queue = "";
    expect_bad(s, "queue");
    s = spec_of("t");
    s.timeout_s = 0;
    expect_bad(s, "timeout_s");
    EXPECT_EQ(count(task_status::pending), 0u);
}

TEST_F(engine_test, BatchIsAllOrNothing) {
    std::vector<task_spec> batch{spec_of("a"), spec_of("b"), spec_of("c")};
    batch[1].priority = -500;
    std::optional<store::error> err;
    engine_.submit_batch(std::move(batch), now_,
                         [&](store::result<std::span<const store::submitted>> r) {
                             ASSERT_FALSE(r);
                             err = r.err();
                         });
    ASSERT_TRUE(err);
    EXPECT_EQ(err->code, store::errc::bad_request);
    EXPECT_EQ(err->message.rfind("tasks[1].priority", 0), 0u) << err->message;
    EXPECT_EQ(count(task_status::pending), 0u);

    std::vector<std::string> ids;
    std::vector<task_spec> good{spec_of("a"), spec_of("b")};
    good[1].priority = 9;
    engine_.submit_batch(std::move(good), now_,
                         [&](store::result<std::span<const store::submitted>> r) {
                             ASSERT_TRUE(r);
                             for (const store::submitted& s : *r) {
                                 ids.push_back(s.record->id);
                             }
                         });
    ASSERT_EQ(ids.size(), 2u);
    EXPECT_EQ(get(ids[0])->type, "a");  // answered in request order
    EXPECT_EQ(get(ids[1])->type, "b");
    engine_.submit_batch({}, now_, [](store::result<std::span<const store::submitted>> r) {
        EXPECT_EQ(r.err().code, store::errc::bad_request);
    });
}

TEST_F(engine_test, BatchBeyondTheQueueBoundCreatesNothing) {
    engine_options o = options();
    o.queue.task_queue_size = 3;
    auto st = store::make_memory_store(o.queue, o.agents);
    engine small(*st, o, rng_);
    std::vector<task_spec> four(4, spec_of("x"));
    small.submit_batch(std::move(four), now_,
                       [](store::result<std::span<const store::submitted>> r) {
                           ASSERT_FALSE(r);
                           EXPECT_EQ(r.err().code, store::errc::queue_full);
                       });
    std::vector<task_spec> three(3, spec_of("x"));
    small.submit_batch(std::move(three), now_,
                       [](store::result<std::span<const store::submitted>> r) { ASSERT_TRUE(r); });
    small.submit(spec_of("x"), now_, [](store::result<store::submitted> r) {
        EXPECT_EQ(r.err().code, store::errc::queue_full);
    });
}

TEST_F(engine_test, IdempotentRepeatAnswersTheSameTask) {
    task_spec s = spec_of("t");
    s.idempotency_key = "order-42";
    s.payload = {{"order", 42}};
    auto first = submit_spec(s);
    auto second = submit_spec(s);
    ASSERT_TRUE(first && second);
    EXPECT_TRUE(first->created);
    EXPECT_FALSE(second->created);
    EXPECT_EQ(first->record->id, second->record->id);
    s.payload = {{"order", 43}};
    EXPECT_EQ(submit_spec(s).err().code, store::errc::conflict);
    EXPECT_EQ(engine_.counters().submitted, 1u);
}

TEST_F(engine_test, DelayedTaskArmsTheTimerAndRunsWhenDue) {
    fake_sink sink;
    add_ws_agent(sink, 1);
    task_spec s = spec_of("later");
    s.delay_s = 2.5;
    auto r = submit_spec(s);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->record->status, task_status::scheduled);
    const time_point due = now_ + std::chrono::milliseconds(2500);
    EXPECT_EQ(hooks_.back(), due);
    EXPECT_EQ(engine_.tick(now_ + std::chrono::seconds(1)), due);
    EXPECT_TRUE(sink.tasks.empty());
    now_ = due;
    engine_.tick(now_);
    ASSERT_EQ(sink.tasks.size(), 1u);
    EXPECT_EQ(sink.tasks[0].type, "later");
}

TEST_F(engine_test, TickWithNothingDueReturnsMax) {
    EXPECT_EQ(engine_.tick(now_), time_point::max());
}

TEST_F(engine_test, RetentionDeletesFinishedTasks) {
    fake_sink sink;
    const std::string a = add_ws_agent(sink, 1);
    const std::string t = submit();
    ASSERT_TRUE(complete(t, a));
    for (int i = 0; i < 121; ++i) {  // 3630 s > retention (3600 s)
        advance_s(30);
        ASSERT_TRUE(heartbeat(a));
    }
    EXPECT_EQ(get(t).err().code, store::errc::not_found);
    EXPECT_EQ(engine_.counters().deleted, 1u);
}

}  // namespace pm_agent::core::testing
