#include "pm_agent/api/auth.hpp"

#include <gtest/gtest.h>

namespace pm_agent::api {
namespace {

config::auth_config tokens() {
    config::auth_config auth;
    auth.submit_tokens = {"sub-1", "sub-2"};
    auth.admin_tokens = {"adm"};
    auth.registration_tokens = {"reg"};
    return auth;
}

TEST(bearer, parses_the_scheme_case_insensitively) {
    EXPECT_EQ(bearer_token("Bearer abc"), "abc");
    EXPECT_EQ(bearer_token("bearer   abc  "), "abc");
    EXPECT_EQ(bearer_token("Basic abc"), "");
    EXPECT_EQ(bearer_token("Bearer "), "");
    EXPECT_EQ(bearer_token(""), "");
}

TEST(authenticator, each_kind_accepts_its_own_tokens) {
    authenticator auth(tokens(), false);
    EXPECT_EQ(auth.check("sub-2", token_kind::submit), auth_outcome::allowed);
    EXPECT_EQ(auth.check("adm", token_kind::admin), auth_outcome::allowed);
    EXPECT_EQ(auth.check("reg", token_kind::registration), auth_outcome::allowed);
}

TEST(authenticator, admin_may_do_what_a_submitter_may) {
    authenticator auth(tokens(), false);
    EXPECT_EQ(auth.check("adm", token_kind::submit), auth_outcome::allowed);
    EXPECT_EQ(auth.check("sub-1", token_kind::admin), auth_outcome::forbidden);
}

TEST(authenticator, missing_or_unknown_is_401_wrong_kind_is_403) {
    authenticator auth(tokens(), false);
    EXPECT_EQ(auth.check("", token_kind::submit), auth_outcome::unauthorized);
    EXPECT_EQ(auth.check("nope", token_kind::submit), auth_outcome::unauthorized);
    EXPECT_EQ(auth.check("reg", token_kind::submit), auth_outcome::forbidden);
    EXPECT_EQ(auth.check("sub-1", token_kind::registration), auth_outcome::forbidden);
    EXPECT_EQ(auth.check("agent-token", token_kind::submit, true), auth_outcome::forbidden);
}

TEST(authenticator, unconfigured_kind_is_open_only_on_loopback) {
    config::auth_config only_submit;
    only_submit.submit_tokens = {"s"};
    authenticator loopback(only_submit, true);
    EXPECT_FALSE(loopback.enforced(token_kind::registration));
    EXPECT_EQ(loopback.check("", token_kind::registration), auth_outcome::allowed);
    EXPECT_EQ(loopback.check("", token_kind::submit), auth_outcome::unauthorized);

    authenticator exposed(only_submit, false);
    EXPECT_TRUE(exposed.enforced(token_kind::registration));
    EXPECT_EQ(exposed.check("", token_kind::registration), auth_outcome::unauthorized);
    EXPECT_EQ(exposed.check("s", token_kind::registration), auth_outcome::forbidden);
}

}  // namespace
}  // namespace pm_agent::api
