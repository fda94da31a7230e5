// Wake-ups per queue: the first at once, more within the window held to its end (pure).
#include "api/wake_throttle.hpp"

#include <gtest/gtest.h>

namespace pm_agent::api {
namespace {

using namespace std::chrono_literals;
using strings = std::vector<std::string>;

TEST(wake_throttle, TheFirstLeavesAtOnceAndTheRestAtTheWindowsEnd) {
    wake_throttle t(5ms);
    const auto t0 = wake_throttle::time_point{} + 1s;
    t.want("q");
    EXPECT_EQ(t.take_due(t0), strings{"q"});
    EXPECT_FALSE(t.next_due());
    t.want("q");
    t.want("q");
    EXPECT_EQ(t.take_due(t0 + 1ms), strings{});
    EXPECT_EQ(t.next_due(), t0 + 5ms);
    EXPECT_EQ(t.take_due(t0 + 4ms), strings{});
    EXPECT_EQ(t.take_due(t0 + 5ms), strings{"q"});  // both wants, one wake-up
    EXPECT_FALSE(t.next_due());
    // Quiet for a window: the next one leaves at once again.
    t.want("q");
    EXPECT_EQ(t.take_due(t0 + 11ms), strings{"q"});
}

TEST(wake_throttle, QueuesAreHeldEachOnItsOwn) {
    wake_throttle t(5ms);
    const auto t0 = wake_throttle::time_point{} + 1s;
    t.want("a");
    EXPECT_EQ(t.take_due(t0), strings{"a"});
    t.want("a");
    t.want("b");
    EXPECT_EQ(t.take_due(t0 + 2ms), strings{"b"});
    EXPECT_EQ(t.next_due(), t0 + 5ms);
    t.want("b");
    EXPECT_EQ(t.take_due(t0 + 5ms), strings{"a"});
    EXPECT_EQ(t.next_due(), t0 + 7ms);
    EXPECT_EQ(t.take_due(t0 + 7ms), strings{"b"});
}

TEST(wake_throttle, ClearDropsWhatWasHeld) {
    wake_throttle t(5ms);
    const auto t0 = wake_throttle::time_point{} + 1s;
    t.want("q");
    t.take_due(t0);
    t.want("q");
    t.clear();
    EXPECT_FALSE(t.next_due());
    EXPECT_EQ(t.take_due(t0 + 1ms), strings{});
    t.want("q");
    EXPECT_EQ(t.take_due(t0 + 1ms), strings{"q"});  // nothing remembered: at once
}

}  // namespace
}  // namespace pm_agent::api
