// pg::reconnect_delay: jittered, doubling, capped.

#include "pg/reconnect_delay.hpp"

#include <gtest/gtest.h>

namespace pm_agent::pg {
namespace {

using std::chrono::milliseconds;

TEST(reconnect_delay, a_just_lost_connection_retries_within_the_minimum) {
    EXPECT_EQ(reconnect_delay(milliseconds(100), milliseconds(5000), 0, 0.0), milliseconds(0));
    EXPECT_EQ(reconnect_delay(milliseconds(100), milliseconds(5000), 0, 0.5), milliseconds(50));
}

TEST(reconnect_delay, doubles_from_min_to_max_with_equal_jitter) {
    const milliseconds min(100);
    const milliseconds max(5000);
    EXPECT_EQ(reconnect_delay(min, max, 1, 0.0), milliseconds(50));
    EXPECT_EQ(reconnect_delay(min, max, 1, 0.999), milliseconds(99));
    EXPECT_EQ(reconnect_delay(min, max, 2, 0.0), milliseconds(100));
    EXPECT_EQ(reconnect_delay(min, max, 3, 0.0), milliseconds(200));
    EXPECT_EQ(reconnect_delay(min, max, 7, 0.0), milliseconds(2500));  // 6400 capped at 5000
    EXPECT_EQ(reconnect_delay(min, max, 1000, 0.999), milliseconds(4997));
}

TEST(reconnect_delay, a_zero_minimum_still_backs_off) {
    EXPECT_GT(reconnect_delay(milliseconds(0), milliseconds(1000), 20, 0.0), milliseconds(0));
}

}  // namespace
}  // namespace pm_agent::pg
