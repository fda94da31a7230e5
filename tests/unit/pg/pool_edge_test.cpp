// pg::pool at its edges: a server that never answers the handshake, prepared statements that
// vanish from the session, and transactions too big for one socket write.

#include <boost/asio/ip/tcp.hpp>

#include <functional>
#include <string>
#include <vector>

#include "pool_fixture.hpp"

namespace pm_agent::pg::testing {
namespace {

using namespace std::chrono_literals;

TEST_F(pool_test, connect_timeout_bounds_an_attempt_to_a_silent_server) {
    // Accepts TCP connections and never says a word.
    boost::asio::ip::tcp::acceptor silent(
        ioc_, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
    std::vector<boost::asio::ip::tcp::socket> accepted;
    std::function<void()> accept = [&] {
        silent.async_accept(
            [&](const boost::system::error_code& ec, boost::asio::ip::tcp::socket socket) {
                if (!ec) {
                    accepted.push_back(std::move(socket));
                    accept();
                }
            });
    };
    accept();

    pool_options opts;
    opts.url = "postgresql://127.0.0.1:" + std::to_string(silent.local_endpoint().port()) +
               "/x?sslmode=disable";
    opts.size = 1;
    opts.connect_timeout = 200ms;
    opts.reconnect_min = 50ms;
    opts.queue_timeout = 5s;
    pool p(ioc_, opts, registry_);
    p.start();
    auto& failures = registry_
                         .counter("pm_agent_db_connect_failures_total",
                                  "Database connection attempts that failed")
                         .get();
    const auto begin = std::chrono::steady_clock::now();
    ASSERT_TRUE(run_until([&] { return failures.value() >= 1; }, 3s));
    const auto waited = std::chrono::steady_clock::now() - begin;
    EXPECT_GE(waited, 150ms);
    EXPECT_LT(waited, 1s);
    EXPECT_FALSE(accepted.empty());
    EXPECT_FALSE(p.healthy());
    silent.close();
}

TEST_F(pool_test, a_prepared_statement_gone_from_the_session_replaces_the_connection) {
    auto opts = options(1);
    opts.prepared_statements = true;
    opts.reconnect_min = 10ms;
    auto p = started(opts);
    constexpr std::string_view sql = "SELECT $1::int + 100";
    ASSERT_FALSE(run(*p, {{"pool_test_add", sql, {"1"}}}).error);
    ASSERT_FALSE(run(*p, {{"", "DEALLOCATE ALL", {}}}).error);
    outcome answer = run(*p, {{"pool_test_add", sql, {"2"}}});
    ASSERT_TRUE(answer.error);
    EXPECT_EQ(answer.error->kind, failure_kind::connection);
    ASSERT_TRUE(run_until([&] { return p->healthy(); }));
    answer = run(*p, {{"pool_test_add", sql, {"3"}}});
    ASSERT_FALSE(answer.error) << answer.error->message;
    EXPECT_EQ(answer.results[0].get(0, 0), "103");
}

TEST_F(pool_test, large_parameters_and_results_cross_many_socket_writes_and_reads) {
    auto p = started(options(1));
    const std::string big(8 * 1024 * 1024, 'x');  // far past any socket buffer
    const outcome answer = run(*p, {{"", "SELECT length($1)", {big}},
                                    {"", "SELECT repeat('y', 8 * 1024 * 1024)", {}},
                                    {"", "SELECT $1::text = repeat('x', 8 * 1024 * 1024)", {big}}});
    ASSERT_FALSE(answer.error) << answer.error->message;
    EXPECT_EQ(answer.results[0].get(0, 0), std::to_string(big.size()));
    EXPECT_EQ(answer.results[1].get(0, 0).size(), big.size());
    EXPECT_EQ(answer.results[2].get(0, 0), "t");
}

TEST_F(pool_test, transactions_spread_over_the_connections) {
    auto p = started(options(4));
    ASSERT_TRUE(run_until([&] { return p->status().connected == 4; }));
    int answered = 0;
    for (int i = 0; i < 4; ++i) {
        p->transact({{"", "SELECT pg_sleep(0.3)", {}}}, [&](outcome o) {
            EXPECT_FALSE(o.error);
            ++answered;
        });
    }
    EXPECT_EQ(p->status().busy, 4u);
    EXPECT_EQ(p->status().waiting, 0u);
    const auto begin = std::chrono::steady_clock::now();
    ASSERT_TRUE(run_until([&] { return answered == 4; }));
    EXPECT_LT(std::chrono::steady_clock::now() - begin, 1s);  // in parallel, not one by one
}

}  // namespace
}  // namespace pm_agent::pg::testing
