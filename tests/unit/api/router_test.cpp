#include "pm_agent/api/router.hpp"

#include <gtest/gtest.h>

namespace pm_agent::api {
namespace {

TEST(router, matches_literal_routes) {
    auto r = match_route(http_method::get, "/health");
    ASSERT_TRUE(r.match);
    EXPECT_EQ(r.match->id, route_id::health);
    EXPECT_EQ(r.match->route_template, "/health");
}

TEST(router, head_matches_get) {
    auto r = match_route(http_method::head, "/ready");
    ASSERT_TRUE(r.match);
    EXPECT_EQ(r.match->id, route_id::ready);
}

TEST(router, extracts_the_path_parameter) {
    auto r = match_route(http_method::post, "/api/v1/tasks/t_123/complete");
    ASSERT_TRUE(r.match);
    EXPECT_EQ(r.match->id, route_id::complete_task);
    EXPECT_EQ(r.match->param, "t_123");
    EXPECT_EQ(r.match->route_template, "/api/v1/tasks/{id}/complete");
}

TEST(router, literal_segment_wins_over_parameter) {
    auto batch = match_route(http_method::post, "/api/v1/tasks/batch");
    ASSERT_TRUE(batch.match);
    EXPECT_EQ(batch.match->id, route_id::submit_batch);
    auto request = match_route(http_method::post, "/api/v1/tasks/request");
    ASSERT_TRUE(request.match);
    EXPECT_EQ(request.match->id, route_id::request_tasks);
    auto get = match_route(http_method::get, "/api/v1/tasks/t_9");
    ASSERT_TRUE(get.match);
    EXPECT_EQ(get.match->id, route_id::get_task);
}

TEST(router, wrong_method_on_known_path_lists_allow) {
    auto r = match_route(http_method::post, "/health");
    EXPECT_FALSE(r.match);
    EXPECT_EQ(r.allow, "GET, HEAD");
    auto agent = match_route(http_method::put, "/api/v1/agents/a_1");
    EXPECT_FALSE(agent.match);
    EXPECT_EQ(agent.allow, "GET, HEAD, DELETE");
}

TEST(router, unknown_path_is_not_found) {
    for (auto path : {"/", "/nope", "/health/", "/api/v1/tasks/", "/api/v1/tasks//complete",
                      "/api/v1/tasks/t_1/complete/extra"}) {
        auto r = match_route(http_method::get, path);
        EXPECT_FALSE(r.match) << path;
        EXPECT_TRUE(r.allow.empty()) << path;
    }
}

TEST(router, websocket_paths) {
    auto fresh = match_route(http_method::get, "/ws/agent");
    ASSERT_TRUE(fresh.match);
    EXPECT_EQ(fresh.match->id, route_id::ws_agent_new);
    auto known = match_route(http_method::get, "/ws/agent/a_7");
    ASSERT_TRUE(known.match);
    EXPECT_EQ(known.match->id, route_id::ws_agent);
    EXPECT_EQ(known.match->param, "a_7");
}

}  // namespace
}  // namespace pm_agent::api
