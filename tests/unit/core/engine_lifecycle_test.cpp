// Engine: cancellation, lost agents, timeouts, draining, deregistration, authentication.
#include "engine_fixture.hpp"
#include "pm_agent/core/token.hpp"

namespace pm_agent::core::testing {

using std::chrono::milliseconds;
using store::task_status;
using ids = std::vector<std::string>;

TEST_F(engine_test, CancelPushesToTheHolderAndCreditsItsSlotBack) {
    fake_sink sink;
    add_ws_agent(sink, 1, {"default"}, {}, 1);
    const std::string t1 = submit();
    const std::string t2 = submit();
    ASSERT_EQ(sink.task_ids(), ids{t1});
    auto c = cancel(t1);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->status, task_status::cancelled);
    EXPECT_EQ(sink.cancels, ids{t1});
    EXPECT_EQ(sink.task_ids(), (ids{t1, t2}));  // the freed slot took the next task
    EXPECT_EQ(cancel(t1).err().code, store::errc::conflict);
}

TEST_F(engine_test, SilentAgentsTasksAreRedeliveredWithTheAttemptCounted) {
    fake_sink lost;
    fake_sink healthy;
    const std::string a = add_ws_agent(lost, 1);
    const std::string t = submit();
    ASSERT_EQ(lost.task_ids(), ids{t});
    engine_.detach(a, lost);  // connection lost, no reconnect
    const std::string b = add_ws_agent(healthy, 1);
    for (int i = 0; i < 4; ++i) {
        advance_s(10);
        ASSERT_TRUE(heartbeat(b));  // b stays alive, a is silent
    }
    EXPECT_TRUE(healthy.tasks.empty());
    advance_s(5);  // 45 s after a's registration
    ASSERT_EQ(healthy.task_ids(), ids{t});
    EXPECT_EQ(healthy.tasks[0].attempts, 2);
    EXPECT_EQ(healthy.tasks[0].agent_id, b);
    EXPECT_EQ(engine_.counters().lease_expired, 1u);
    EXPECT_EQ(engine_.counters().requeued, 1u);
    EXPECT_EQ(complete(t, a).err().code, store::errc::conflict);
    EXPECT_TRUE(complete(t, b));
}

TEST_F(engine_test, TaskTimeoutPushesCancelAndRequeues) {
    fake_sink sink;
    const std::string a = add_ws_agent(sink, 1, {"default"}, {}, 1);
    task_spec spec;
    spec.type = "quick";
    spec.timeout_s = 5;
    const std::string t = submit_spec(std::move(spec))->record->id;
    ASSERT_EQ(sink.task_ids(), ids{t});
    EXPECT_EQ(hooks_.back(), now_ + std::chrono::seconds(5));
    advance_s(5);
    EXPECT_EQ(sink.cancels, ids{t});
    // Its slot came back and the task was pending again: it is offered again (attempt 2).
    ASSERT_EQ(sink.task_ids(), (ids{t, t}));
    EXPECT_EQ(sink.tasks[1].attempts, 2);
    EXPECT_EQ(engine_.counters().timed_out, 1u);
    ASSERT_TRUE(heartbeat(a));
}

TEST_F(engine_test, SilentAgentOnTheLastAttemptLeavesTheTaskDead) {
    const std::string a = add_agent();
    task_spec spec;
    spec.type = "once";
    spec.max_attempts = 1;
    const std::string t = submit_spec(std::move(spec))->record->id;
    ASSERT_EQ(poll(a, 1, milliseconds(0))->tasks.size(), 1u);
    advance_s(46);
    auto dead = get(t);
    EXPECT_EQ(dead->status, task_status::dead);
    ASSERT_TRUE(dead->error);
    EXPECT_NE(dead->error->find("offline"), std::string::npos);
    EXPECT_EQ(engine_.counters().dead, 1u);
}

TEST_F(engine_test, DrainingAgentsGetNoNewTasks) {
    fake_sink draining;
    fake_sink other;
    const std::string a = add_ws_agent(draining, 4);
    ASSERT_TRUE(heartbeat(a, store::agent_status::draining));
    const std::string t1 = submit();
    EXPECT_TRUE(draining.tasks.empty());
    EXPECT_EQ(get(t1)->status, task_status::pending);
    const std::string b = add_ws_agent(other, 1);
    EXPECT_EQ(other.task_ids(), ids{t1});
    const std::string t2 = submit();
    EXPECT_TRUE(draining.tasks.empty());
    ASSERT_TRUE(heartbeat(a, store::agent_status::online));
    EXPECT_EQ(draining.task_ids(), ids{t2});
    EXPECT_FALSE(b.empty());
}

TEST_F(engine_test, DeregisterRequeuesToOthersEndsPollsAndClosesTheSink) {
    fake_sink leaving;
    fake_sink staying;
    const std::string a = add_ws_agent(leaving, 1);
    const std::string t = submit();
    ASSERT_EQ(leaving.task_ids(), ids{t});
    auto p = poll(a, 1, milliseconds(30000));
    EXPECT_FALSE(p->answered);
    const std::string b = add_ws_agent(staying, 0);
    bool done = false;
    engine_.deregister(a, now_, [&](store::result<void> r) {
        EXPECT_TRUE(r);
        done = true;
    });
    EXPECT_TRUE(done);
    EXPECT_EQ(leaving.deregistered_calls, 1);
    EXPECT_TRUE(p->answered);
    EXPECT_TRUE(p->tasks.empty());
    EXPECT_EQ(get(t)->status, task_status::pending);
    EXPECT_EQ(engine_.attached_agents(), 1u);
    ASSERT_TRUE(engine_.ready(b, 1, now_));
    EXPECT_EQ(staying.task_ids(), ids{t});
    EXPECT_FALSE(engine_.ready(a, 1, now_));
    engine_.deregister(
        a, now_, [](store::result<void> r) { EXPECT_EQ(r.err().code, store::errc::not_found); });
}

TEST_F(engine_test, RegistrationIssuesATokenThatAuthenticates) {
    agent_spec spec;
    spec.name = "w";
    std::string id;
    std::string token;
    engine_.register_agent(std::move(spec), now_, [&](store::result<registration> r) {
        ASSERT_TRUE(r);
        id = r->agent->id;
        token = r->token;
        EXPECT_EQ(r->agent->token_hash, hash_token(r->token));
        EXPECT_EQ(r->agent->queues, std::vector<std::string>{"default"});
        EXPECT_EQ(r->agent->max_concurrency, 1u);
    });
    EXPECT_EQ(id.substr(0, 2), "a_");
    EXPECT_EQ(token.size(), 43u);
    auto check = [&](std::string_view agent, std::string_view tok) {
        std::optional<store::errc> code;
        engine_.authenticate(agent, tok, [&](store::result<const store::agent*> r) {
            code = r ? std::optional<store::errc>() : r.err().code;
        });
        return code;
    };
    EXPECT_EQ(check(id, token), std::nullopt);
    EXPECT_EQ(check(id, token + "x"), store::errc::unauthorized);
    EXPECT_EQ(check("a_unknown", token), store::errc::unauthorized);
}

TEST_F(engine_test, RegistrationValidatesRanges) {
    agent_spec spec;
    spec.name = "w";
    spec.max_concurrency = 0;
    std::optional<store::error> err;
    engine_.register_agent(std::move(spec), now_, [&](store::result<registration> r) {
        ASSERT_FALSE(r);
        err = r.err();
    });
    ASSERT_TRUE(err);
    EXPECT_EQ(err->code, store::errc::bad_request);
    EXPECT_EQ(err->message.rfind("max_concurrency", 0), 0u);
}

TEST_F(engine_test, AttachPushesCancelsMissedWhileDisconnected) {
    fake_sink first;
    const std::string a = add_ws_agent(first, 1);
    const std::string t = submit();
    engine_.detach(a, first);
    ASSERT_TRUE(cancel(t));
    EXPECT_TRUE(first.cancels.empty());
    fake_sink second;
    bool registered_first = false;
    engine_.attach(a, second, now_, [&](store::result<const store::agent*> r) {
        ASSERT_TRUE(r);
        registered_first = second.cancels.empty();
    });
    EXPECT_TRUE(registered_first);
    EXPECT_EQ(second.cancels, ids{t});
}

TEST_F(engine_test, ProgressIsValidatedAndRenewsTheLease) {
    const std::string a = add_agent();
    const std::string t = submit();
    ASSERT_EQ(poll(a, 1, milliseconds(0))->tasks.size(), 1u);
    std::optional<store::result<store::task>> out;
    auto capture = [&](store::result<const store::task*> r) {
        if (r) {
            out.emplace(**r);
        } else {
            out.emplace(r.err());
        }
    };
    engine_.progress({t, a}, 1.5, "", now_, capture);
    EXPECT_EQ(out->err().code, store::errc::bad_request);
    now_ += std::chrono::seconds(30);
    engine_.progress({t, a}, 0.25, "a quarter", now_, capture);
    ASSERT_TRUE(*out);
    EXPECT_EQ((*out)->status, task_status::running);
    EXPECT_EQ((*out)->lease_expires_at, now_ + std::chrono::seconds(60));
    engine_.start({t, a}, now_, capture);
    ASSERT_TRUE(*out);
    EXPECT_EQ((*out)->status, task_status::running);
    engine_.start({t, "a_other"}, now_, capture);
    EXPECT_EQ(out->err().code, store::errc::conflict);
}

TEST_F(engine_test, OfflineAgentsWithoutConnectionAreForgotten) {
    fake_sink sink;
    const std::string a = add_ws_agent(sink, 1);
    const std::string b = add_agent();
    ASSERT_EQ(poll(b, 1, milliseconds(0))->tasks.size(), 0u);
    EXPECT_EQ(engine_.tracked_agents(), 2u);
    advance_s(46);  // both silent: offline; a is still attached
    EXPECT_EQ(engine_.tracked_agents(), 1u);
    engine_.detach(a, sink);
    EXPECT_EQ(engine_.tracked_agents(), 0u);
    // Coming back works as before.
    ASSERT_TRUE(heartbeat(a));
    fake_sink again;
    engine_.attach(a, again, now_, [](store::result<const store::agent*> r) { ASSERT_TRUE(r); });
    ASSERT_TRUE(engine_.ready(a, 1, now_));
    const std::string t = submit();
    EXPECT_EQ(again.task_ids(), ids{t});
}

TEST_F(engine_test, ListLimitsAreChecked) {
    store::task_filter tf;
    tf.limit = 0;
    engine_.list_tasks(tf, [](store::result<store::task_page> r) {
        EXPECT_EQ(r.err().code, store::errc::bad_request);
    });
    store::agent_filter af;
    af.limit = 1001;
    engine_.list_agents(af, [](store::result<store::agent_page> r) {
        EXPECT_EQ(r.err().code, store::errc::bad_request);
    });
}

}  // namespace pm_agent::core::testing
