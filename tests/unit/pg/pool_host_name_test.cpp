// pg::pool with a host name: resolved by Asio's resolver, handed to libpq as hostaddr.

#include <libpq-fe.h>

#include <memory>
#include <string>

#include "pool_fixture.hpp"

namespace pm_agent::pg::testing {
namespace {

using namespace std::chrono_literals;

// The test database's URL with its loopback address replaced by "localhost"; empty when the
// URL is not a loopback TCP one (a socket directory, a remote host), where the swap is unsound.
std::string with_localhost(const std::string& url) {
    char* error = nullptr;
    std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> options(
        PQconninfoParse(url.c_str(), &error), &PQconninfoFree);
    if (error != nullptr) {
        PQfreemem(error);
    }
    if (!options) {
        return {};
    }
    std::string conninfo = "host=localhost";
    bool loopback = false;
    for (const PQconninfoOption* option = options.get(); option->keyword != nullptr; ++option) {
        if (option->val == nullptr) {
            continue;
        }
        const std::string keyword = option->keyword;
        const std::string value = option->val;
        if (keyword == "host") {
            loopback = value == "127.0.0.1" || value == "localhost" || value == "::1";
        } else if (keyword != "hostaddr") {
            std::string quoted;
            for (const char c : value) {
                if (c == '\'' || c == '\\') {
                    quoted += '\\';
                }
                quoted += c;
            }
            conninfo += " " + keyword + "='" + quoted + "'";
        }
    }
    return loopback ? conninfo : std::string();
}

TEST_F(pool_test, a_host_name_is_resolved_asynchronously) {
    const std::string conninfo = with_localhost(url_);
    if (conninfo.empty()) {
        GTEST_SKIP() << "the test database is not on a loopback TCP address";
    }
    auto opts = options(1);
    opts.url = conninfo;
    auto p = started(std::move(opts));
    ASSERT_TRUE(p->healthy());
    const outcome answer = run(*p, {{"", "SELECT 1", {}}});
    ASSERT_FALSE(answer.error) << answer.error->message;
    EXPECT_EQ(answer.results[0].get(0, 0), "1");
}

TEST_F(pool_test, an_unknown_host_name_fails_like_an_unreachable_database) {
    auto opts = options(1);
    opts.url = "postgresql://no-such-host.invalid/x";
    opts.queue_timeout = 300ms;
    pool p(ioc_, opts, registry_);
    p.start();
    std::optional<outcome> answer;
    p.transact({{"", "SELECT 1", {}}}, [&](outcome o) { answer = std::move(o); });
    ASSERT_TRUE(run_until([&] { return answer.has_value(); }, std::chrono::seconds(3)));
    ASSERT_TRUE(answer->error);
    EXPECT_EQ(answer->error->kind, failure_kind::connection);
    EXPECT_FALSE(p.healthy());
}

}  // namespace
}  // namespace pm_agent::pg::testing
