// Which queues other workers wait on: wake-ups only for those, a held one when the
// announcement comes after the task (pure).
#include "api/peer_hunger.hpp"

#include <gtest/gtest.h>

namespace pm_agent::api {
namespace {

using namespace std::chrono_literals;

const auto t0 = peer_hunger::time_point{} + 10s;

TEST(peer_hunger, NoWakeUpWhileNobodyElseWaits) {
    peer_hunger h(1500ms);
    EXPECT_FALSE(h.wake_wanted("q", t0));
    EXPECT_FALSE(h.wake_wanted("q", t0 + 1ms));
}

TEST(peer_hunger, AnAnnouncedQueueIsWokenUntilTheAnnouncementLapses) {
    peer_hunger h(1500ms);
    EXPECT_FALSE(h.heard("q", t0));  // nothing was held back
    EXPECT_TRUE(h.wake_wanted("q", t0 + 1ms));
    EXPECT_TRUE(h.wake_wanted("q", t0 + 1499ms));
    EXPECT_FALSE(h.wake_wanted("other", t0 + 2ms));  // each queue on its own
    EXPECT_FALSE(h.wake_wanted("q", t0 + 1500ms));
    // Repeated announcements keep it wanted.
    EXPECT_TRUE(h.heard("q", t0 + 1600ms));  // held back at t0 + 1500ms: due now
    EXPECT_TRUE(h.wake_wanted("q", t0 + 3000ms));
}

TEST(peer_hunger, AWakeUpHeldBackLeavesWhenTheAnnouncementComesWithinTheTtl) {
    peer_hunger h(1500ms);
    EXPECT_FALSE(h.wake_wanted("q", t0));
    EXPECT_TRUE(h.heard("q", t0 + 5ms));
    // Once: the held wake-up is spent, a repeated announcement does not send it again.
    EXPECT_FALSE(h.heard("q", t0 + 6ms));
}

TEST(peer_hunger, AWakeUpHeldBackTooLongAgoIsNotSent) {
    peer_hunger h(1500ms);
    EXPECT_FALSE(h.wake_wanted("q", t0));
    // The consumer that announces now claimed after that task was committed: it saw it.
    EXPECT_FALSE(h.heard("q", t0 + 1501ms));
}

TEST(peer_hunger, SweepForgetsLapsedQueues) {
    peer_hunger h(1500ms);
    h.heard("a", t0);
    h.wake_wanted("b", t0);
    h.sweep(t0 + 1s);
    EXPECT_EQ(h.size(), 2u);
    h.sweep(t0 + 1501ms);
    EXPECT_EQ(h.size(), 0u);
    EXPECT_FALSE(h.wake_wanted("a", t0 + 1502ms));
}

TEST(peer_hunger, NameListsRoundTripAnyBytesAndRefuseMalformedOnes) {
    std::string list;
    const std::vector<std::string> names{"default", "a:b", std::string("new\nline\0x", 10), "q"};
    for (const std::string& n : names) {
        append_name(list, n);
    }
    const auto parsed = parse_names(list);
    ASSERT_TRUE(parsed);
    ASSERT_EQ(parsed->size(), names.size());
    for (std::size_t i = 0; i < names.size(); ++i) {
        EXPECT_EQ((*parsed)[i], names[i]);
    }
    EXPECT_TRUE(parse_names("")->empty());
    for (const char* bad : {"8:default", "x:q", ":q", "3", "3:abcd2", "99999999999999999999:q"}) {
        EXPECT_FALSE(parse_names(bad)) << bad;
    }
}

}  // namespace
}  // namespace pm_agent::api
