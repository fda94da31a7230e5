// pg::pool against a real PostgreSQL: results, errors and rollback, prepared statements, FIFO,
// bounded waiters, an unreachable database, timeouts and re-entrant completions.

#include <chrono>
#include <string>
#include <vector>

#include "pool_fixture.hpp"

namespace pm_agent::pg::testing {
namespace {

using namespace std::chrono_literals;

TEST_F(pool_test, statements_return_their_rows_in_order) {
    auto p = started(options());
    const outcome answer = run(
        *p, {{"", "SELECT $1::int + 1 AS next, $2::text IS NULL AS missing", {"41", std::nullopt}},
             {"", "SELECT array_length($1::text[], 1), ($1::text[])[2]", {"{a,\"b c\"}"}},
             {"", "SELECT generate_series(1, 3)", {}},
             {"", "SELECT NULL::text", {}}});
    ASSERT_FALSE(answer.error) << answer.error->message;
    ASSERT_EQ(answer.results.size(), 4u);
    EXPECT_EQ(answer.results[0].get(0, 0), "42");
    EXPECT_EQ(answer.results[0].get(0, 1), "t");
    EXPECT_EQ(answer.results[1].get(0, 0), "2");
    EXPECT_EQ(answer.results[1].get(0, 1), "b c");
    ASSERT_EQ(answer.results[2].size(), 3u);
    EXPECT_EQ(answer.results[2].get(2, 0), "3");
    EXPECT_TRUE(answer.results[3].is_null(0, 0));
    EXPECT_EQ(answer.results[3].get(0, 0), "");
    EXPECT_EQ(counter_value("committed"), 1);
}

TEST_F(pool_test, a_failing_statement_rolls_back_the_transaction_and_the_connection_is_reused) {
    auto opts = options(1);  // one connection: every transaction below runs on the same one
    auto p = started(opts);
    const std::string name = table("rollback");
    const std::string create = "CREATE TABLE " + name + " (id int PRIMARY KEY)";
    const std::string drop = "DROP TABLE IF EXISTS " + name;
    const std::string insert = "INSERT INTO " + name + " VALUES ($1)";
    const std::string count = "SELECT count(*) FROM " + name;
    ASSERT_FALSE(run(*p, {{"", drop, {}}, {"", create, {}}}).error);

    outcome answer = run(
        *p,
        {{"", insert, {"1"}}, {"", insert, {"2"}}, {"", "SELECT 1/0", {}}, {"", insert, {"3"}}});
    ASSERT_TRUE(answer.error);
    EXPECT_EQ(answer.error->kind, failure_kind::statement);
    EXPECT_EQ(answer.error->statement_index, 2u);
    EXPECT_EQ(answer.error->sqlstate, "22012");  // division_by_zero
    EXPECT_FALSE(answer.error->message.empty());
    EXPECT_TRUE(answer.results.empty());

    answer = run(*p, {{"", insert, {"7"}}, {"", insert, {"7"}}});
    ASSERT_TRUE(answer.error);
    EXPECT_EQ(answer.error->statement_index, 1u);
    EXPECT_EQ(answer.error->sqlstate, "23505");  // unique_violation

    answer = run(*p, {{"", count, {}}});
    ASSERT_FALSE(answer.error) << answer.error->message;
    EXPECT_EQ(answer.results[0].get(0, 0), "0");  // nothing of the failed transactions stayed

    answer = run(*p, {{"", insert, {"1"}}, {"", insert, {"2"}}, {"", count, {}}});
    ASSERT_FALSE(answer.error) << answer.error->message;
    EXPECT_EQ(answer.results[0].affected(), 1u);
    EXPECT_EQ(answer.results[2].get(0, 0), "2");
    EXPECT_FALSE(run(*p, {{"", drop, {}}}).error);
    EXPECT_EQ(counter_value("statement_error"), 2);
}

class pool_prepared_test : public pool_test, public ::testing::WithParamInterface<bool> {};

TEST_P(pool_prepared_test, named_statements_work_repeatedly_on_one_connection) {
    auto opts = options(1);
    opts.prepared_statements = GetParam();
    auto p = started(opts);
    constexpr std::string_view sql = "SELECT $1::int * 2";
    for (int round = 0; round < 3; ++round) {
        const outcome answer = run(*p, {{"pool_test_double", sql, {std::to_string(round)}},
                                        {"pool_test_double", sql, {"21"}},
                                        {"", "SELECT 'unnamed'", {}}});
        ASSERT_FALSE(answer.error) << answer.error->message;
        EXPECT_EQ(answer.results[0].get(0, 0), std::to_string(round * 2));
        EXPECT_EQ(answer.results[1].get(0, 0), "42");
        EXPECT_EQ(answer.results[2].get(0, 0), "unnamed");
    }
    // Prepared in a transaction that then fails: the statement lives in the session, not in the
    // transaction, so the next use on the same connection still finds it.
    outcome answer =
        run(*p, {{"pool_test_triple", "SELECT $1::int * 3", {"1"}}, {"", "SELECT 1/0", {}}});
    ASSERT_TRUE(answer.error);
    EXPECT_EQ(answer.error->statement_index, 1u);
    answer = run(*p, {{"pool_test_triple", "SELECT $1::int * 3", {"5"}}});
    ASSERT_FALSE(answer.error) << answer.error->message;
    EXPECT_EQ(answer.results[0].get(0, 0), "15");

    // A named statement whose SQL is wrong fails as that statement, and the pool carries on.
    answer = run(*p, {{"", "SELECT 1", {}}, {"pool_test_broken", "SELEC 1", {}}});
    ASSERT_TRUE(answer.error);
    EXPECT_EQ(answer.error->statement_index, 1u);
    EXPECT_EQ(answer.error->sqlstate, "42601");  // syntax_error
    answer = run(*p, {{"pool_test_double", sql, {"4"}}});
    ASSERT_FALSE(answer.error) << answer.error->message;
    EXPECT_EQ(answer.results[0].get(0, 0), "8");
}

// The statement timeout every transaction starts with is prepared once per connection too, so
// the server does not parse it again for each transaction; without prepared statements (a
// pooler in transaction mode) nothing stays in the session.
TEST_P(pool_prepared_test, the_statement_timeout_of_each_transaction_is_prepared_once) {
    auto opts = options(1);
    opts.prepared_statements = GetParam();
    auto p = started(opts);
    constexpr std::string_view count =
        "SELECT count(*) FROM pg_prepared_statements WHERE name = 'pm_set_statement_timeout'";
    for (int round = 0; round < 3; ++round) {
        const outcome answer = run(*p, {{"", count, {}}, {"", "SHOW statement_timeout", {}}});
        ASSERT_FALSE(answer.error) << answer.error->message;
        EXPECT_EQ(answer.results[0].get(0, 0), GetParam() ? "1" : "0");
        EXPECT_EQ(answer.results[1].get(0, 0), "5s");
    }
}

INSTANTIATE_TEST_SUITE_P(prepared, pool_prepared_test, ::testing::Bool());

TEST_F(pool_test, queued_transactions_start_in_submission_order) {
    auto p = started(options(1));
    std::vector<int> order;
    constexpr int k_count = 50;
    for (int i = 0; i < k_count; ++i) {
        p->transact({{"", "SELECT $1::int", {std::to_string(i)}}}, [&order, i](outcome o) {
            EXPECT_FALSE(o.error);
            EXPECT_EQ(o.results.at(0).get(0, 0), std::to_string(i));
            order.push_back(i);
        });
    }
    EXPECT_EQ(p->status().waiting, static_cast<std::size_t>(k_count - 1));
    EXPECT_EQ(p->status().busy, 1u);
    ASSERT_TRUE(run_until([&] { return order.size() == k_count; }));
    for (int i = 0; i < k_count; ++i) {
        EXPECT_EQ(order[i], i);
    }
    EXPECT_EQ(p->status().waiting, 0u);
}

TEST_F(pool_test, past_max_waiters_a_transaction_is_refused_overloaded_from_the_loop) {
    auto opts = options(1);
    opts.max_waiters = 2;
    auto p = started(opts);
    std::vector<std::optional<outcome>> answers(4);
    for (std::size_t i = 0; i < answers.size(); ++i) {
        p->transact({{"", "SELECT pg_sleep(0.05)", {}}},
                    [&answers, i](outcome o) { answers[i] = std::move(o); });
    }
    // One in flight, two queued, the fourth refused, and nobody answered inline.
    for (const auto& answer : answers) {
        EXPECT_FALSE(answer.has_value());
    }
    ASSERT_TRUE(run_until([&] { return answers[3].has_value(); }));
    ASSERT_TRUE(answers[3]->error);
    EXPECT_EQ(answers[3]->error->kind, failure_kind::overloaded);
    ASSERT_TRUE(run_until([&] {
        return answers[0].has_value() && answers[1].has_value() && answers[2].has_value();
    }));
    for (std::size_t i = 0; i < 3; ++i) {
        EXPECT_FALSE(answers[i]->error) << i;
    }
    EXPECT_EQ(counter_value("overloaded"), 1);
}

TEST_F(pool_test, an_unreachable_database_fails_transactions_within_queue_timeout) {
    pool_options opts;
    opts.url = "postgresql://127.0.0.1:1/x";
    opts.size = 2;
    opts.queue_timeout = 300ms;
    opts.reconnect_min = 50ms;
    opts.reconnect_max = 200ms;
    pool p(ioc_, opts, registry_);
    p.start();

    std::optional<outcome> answer;
    const auto begin = std::chrono::steady_clock::now();
    p.transact({{"", "SELECT 1", {}}}, [&](outcome o) { answer = std::move(o); });
    EXPECT_FALSE(answer.has_value());
    ASSERT_TRUE(run_until([&] { return answer.has_value(); }, 3s));
    const auto waited = std::chrono::steady_clock::now() - begin;
    ASSERT_TRUE(answer->error);
    EXPECT_EQ(answer->error->kind, failure_kind::connection);
    EXPECT_GE(waited, 250ms);
    EXPECT_LT(waited, 1500ms);
    EXPECT_FALSE(p.healthy());
    EXPECT_EQ(p.status().connected, 0u);

    // Down for longer than queue_timeout: the next one is refused at once (still from the loop).
    answer.reset();
    const auto again = std::chrono::steady_clock::now();
    p.transact({{"", "SELECT 1", {}}}, [&](outcome o) { answer = std::move(o); });
    EXPECT_FALSE(answer.has_value());
    ASSERT_TRUE(run_until([&] { return answer.has_value(); }, 3s));
    EXPECT_LT(std::chrono::steady_clock::now() - again, 100ms);
    ASSERT_TRUE(answer->error);
    EXPECT_EQ(answer->error->kind, failure_kind::connection);

    // It keeps trying: several attempts per connection within a second of back-off.
    run_until([] { return false; }, 500ms);
    EXPECT_GE(registry_
                  .counter("pm_agent_db_connect_failures_total",
                           "Database connection attempts that failed")
                  .get()
                  .value(),
              4);
}

TEST_F(pool_test, a_completion_may_submit_the_next_transaction) {
    auto p = started(options(1));
    std::vector<std::string> seen;
    std::function<void(int)> step = [&](int n) {
        p->transact({{"", "SELECT $1::int", {std::to_string(n)}}}, [&, n](outcome o) {
            ASSERT_FALSE(o.error);
            seen.emplace_back(o.results.at(0).get(0, 0));
            if (n < 5) {
                step(n + 1);
            }
        });
    };
    step(1);
    ASSERT_TRUE(run_until([&] { return seen.size() == 5; }));
    EXPECT_EQ(seen, (std::vector<std::string>{"1", "2", "3", "4", "5"}));
}

TEST_F(pool_test, a_completion_may_destroy_the_pool_and_the_rest_is_dropped_uncalled) {
    auto p = started(options(1));
    bool first = false;
    bool second = false;
    p->transact({{"", "SELECT 1", {}}}, [&](outcome) {
        first = true;
        p.reset();
    });
    p->transact({{"", "SELECT 2", {}}}, [&](outcome) { second = true; });
    ASSERT_TRUE(run_until([&] { return first; }));
    run_until([] { return false; }, 200ms);
    EXPECT_FALSE(second);
}

TEST_F(pool_test, the_server_enforces_statement_timeout) {
    auto opts = options(1);
    opts.statement_timeout = 200ms;
    auto p = started(opts);
    const outcome answer = run(*p, {{"", "SELECT pg_sleep(2)", {}}});
    ASSERT_TRUE(answer.error);
    EXPECT_EQ(answer.error->kind, failure_kind::statement);
    EXPECT_EQ(answer.error->sqlstate, "57014");  // query_canceled
    // The timeout was local to that transaction, and the connection is fine.
    const outcome next = run(*p, {{"", "SHOW statement_timeout", {}}});
    ASSERT_FALSE(next.error) << next.error->message;
}

TEST_F(pool_test, a_transaction_unanswered_past_statement_timeout_is_failed_and_replaced) {
    auto opts = options(1);
    opts.statement_timeout = 200ms;
    opts.reconnect_min = 10ms;
    auto p = started(opts);
    // The caller's statement lifts the server's timeout, so only the pool's own deadline
    // (statement_timeout + 1 s) can end the wait.
    const auto begin = std::chrono::steady_clock::now();
    const outcome answer = run(*p, {{"", "SELECT set_config('statement_timeout', '0', true)", {}},
                                    {"", "SELECT pg_sleep(3)", {}}});
    ASSERT_TRUE(answer.error);
    EXPECT_EQ(answer.error->kind, failure_kind::timeout);
    EXPECT_LT(std::chrono::steady_clock::now() - begin, 2500ms);
    EXPECT_EQ(counter_value("timeout"), 1);
    // A new connection replaces the dropped one.
    ASSERT_TRUE(run_until([&] { return p->healthy(); }));
    const outcome next = run(*p, {{"", "SELECT 1", {}}});
    EXPECT_FALSE(next.error);
}

TEST_F(pool_test, a_connection_killed_by_the_server_is_dropped_and_replaced) {
    auto opts = options(1);
    opts.reconnect_min = 10ms;
    auto p = started(opts);
    outcome answer = run(*p, {{"", "SELECT pg_backend_pid()::text", {}}});
    ASSERT_FALSE(answer.error);
    const std::string pid(answer.results[0].get(0, 0));
    // A second pool kills the first one's backend while it is idle.
    auto killer = started(options(1));
    answer = run(*killer, {{"", "SELECT pg_terminate_backend($1::int)", {pid}}});
    ASSERT_FALSE(answer.error) << answer.error->message;
    ASSERT_TRUE(run_until([&] { return !p->healthy(); }, 5s));
    ASSERT_TRUE(run_until([&] { return p->healthy(); }, 5s));
    answer = run(*p, {{"", "SELECT pg_backend_pid()::text", {}}});
    ASSERT_FALSE(answer.error);
    EXPECT_NE(answer.results[0].get(0, 0), pid);
}

TEST_F(pool_test, the_destructor_drops_transactions_in_flight_and_queued_uncalled) {
    int called = 0;
    {
        auto p = started(options(1));
        p->transact({{"", "SELECT pg_sleep(0.2)", {}}}, [&](outcome) { ++called; });
        p->transact({{"", "SELECT 1", {}}}, [&](outcome) { ++called; });
        run_until([] { return false; }, 20ms);
    }
    run_until([] { return false; }, 400ms);
    EXPECT_EQ(called, 0);
}

TEST_F(pool_test, metrics_follow_the_pool_state) {
    auto p = started(options(2));
    ASSERT_TRUE(run_until([&] { return p->status().connected == 2; }));
    const std::string text = registry_.render();
    EXPECT_NE(text.find("pm_agent_db_pool_connections{state=\"connected\"} 2"), std::string::npos)
        << text;
    EXPECT_NE(text.find("pm_agent_db_pool_size 2"), std::string::npos);
    EXPECT_NE(text.find("pm_agent_db_pool_waiting 0"), std::string::npos);
    run(*p, {{"", "SELECT 1", {}}});
    EXPECT_NE(registry_.render().find("pm_agent_db_transaction_duration_seconds_count 1"),
              std::string::npos);
}

}  // namespace
}  // namespace pm_agent::pg::testing
