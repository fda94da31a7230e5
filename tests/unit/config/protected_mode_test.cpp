#include <gtest/gtest.h>

#include "pm_agent/config/load.hpp"
#include "unit/config/config_test_support.hpp"

namespace pm_agent::config {
namespace {

using testing::contains;

TEST(ConfigProtectedMode, LoopbackHosts) {
    for (const auto* host :
         {"127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LocalHost", "::ffff:127.0.0.1"}) {
        EXPECT_TRUE(is_loopback_host(host)) << host;
    }
    for (const auto* host : {"0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "example.com", "", "::2",
                             "localhost.example.com", "[::1"}) {
        EXPECT_FALSE(is_loopback_host(host)) << host;
    }
}

TEST(ConfigProtectedMode, NonLoopbackWithoutTokensIsRefusedWithAFix) {
    config c;
    c.server.host = "0.0.0.0";
    const auto violation = protected_mode_violation(c);
    ASSERT_TRUE(violation.has_value());
    EXPECT_TRUE(contains(*violation, "0.0.0.0"));
    EXPECT_TRUE(contains(*violation, "PM_AGENT_SUBMIT_TOKENS"));
    EXPECT_TRUE(contains(*violation, "PM_AGENT_REGISTRATION_TOKENS"));
    EXPECT_TRUE(contains(*violation, "127.0.0.1"));
}

TEST(ConfigProtectedMode, LoopbackWithoutTokensMayStart) {
    config c;
    EXPECT_FALSE(protected_mode_violation(c).has_value());
    c.server.host = "::1";
    EXPECT_FALSE(protected_mode_violation(c).has_value());
}

TEST(ConfigProtectedMode, AnyKindOfTokenLiftsIt) {
    config submit;
    submit.server.host = "0.0.0.0";
    submit.auth.submit_tokens = {"s"};
    EXPECT_FALSE(protected_mode_violation(submit).has_value());
    config admin;
    admin.server.host = "10.1.2.3";
    admin.auth.admin_tokens = {"a"};
    EXPECT_FALSE(protected_mode_violation(admin).has_value());
    config registration;
    registration.server.host = "::";
    registration.auth.registration_tokens = {"r"};
    EXPECT_FALSE(protected_mode_violation(registration).has_value());
}

}  // namespace
}  // namespace pm_agent::config
