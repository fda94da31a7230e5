#include "pm_agent/store/backoff.hpp"

#include <gtest/gtest.h>

namespace pm_agent::store {

using std::chrono::milliseconds;

TEST(store_retry_delay, DoublesFromTheBaseUpToTheCap) {
    config::queue_config q;
    q.retry_base = std::chrono::seconds(1);
    q.retry_max = std::chrono::seconds(10);
    // Full jitter: jitter close to 1 shows the ceiling.
    EXPECT_EQ(retry_delay(q, 1, 0.999999), milliseconds(999));
    EXPECT_EQ(retry_delay(q, 2, 0.999999), milliseconds(1999));
    EXPECT_EQ(retry_delay(q, 3, 0.999999), milliseconds(3999));
    EXPECT_EQ(retry_delay(q, 4, 0.999999), milliseconds(7999));
    EXPECT_EQ(retry_delay(q, 5, 0.999999), milliseconds(9999));
    EXPECT_EQ(retry_delay(q, 1000, 0.999999), milliseconds(9999));
}

TEST(store_retry_delay, JitterSpansZeroToTheCeiling) {
    config::queue_config q;
    q.retry_base = std::chrono::seconds(2);
    q.retry_max = std::chrono::seconds(300);
    EXPECT_EQ(retry_delay(q, 2, 0.0), milliseconds(0));
    EXPECT_EQ(retry_delay(q, 2, 0.25), milliseconds(1000));
    EXPECT_EQ(retry_delay(q, 2, 0.5), milliseconds(2000));
}

}  // namespace pm_agent::store
