#include <gtest/gtest.h>

#include <sys/wait.h>

#include <csignal>

#include "pm_agent/process/restart_policy.hpp"

namespace pm_agent::process {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using time_point = restart_policy::clock::time_point;

const time_point k_t0{seconds(1000)};

/// Fails a worker that ran `ran` starting at `*now`, then advances `*now` past the back-off.
restart_policy::decision fail_after(restart_policy& policy, time_point& now,
                                    restart_policy::clock::duration ran) {
    const auto started = now;
    now += ran;
    const auto decision = policy.on_failure(started, now);
    now += decision.delay;
    return decision;
}

TEST(RestartPolicy, BackoffDoublesFromInitialUpToTheCap) {
    restart_policy policy;
    auto now = k_t0;
    std::vector<long> delays;
    for (int i = 0; i < 8; ++i) {
        const auto d = fail_after(policy, now, seconds(2));  // not a start-up failure
        ASSERT_FALSE(d.give_up);
        delays.push_back(static_cast<long>(d.delay.count()));
    }
    EXPECT_EQ(delays, (std::vector<long>{100, 200, 400, 800, 1600, 3200, 5000, 5000}));
}

TEST(RestartPolicy, BackoffResetsAfterAWorkerRanThirtySeconds) {
    restart_policy policy;
    auto now = k_t0;
    for (int i = 0; i < 4; ++i) {
        fail_after(policy, now, seconds(2));
    }
    EXPECT_EQ(fail_after(policy, now, seconds(29)).delay, milliseconds(1600));
    EXPECT_EQ(fail_after(policy, now, seconds(30)).delay, milliseconds(100));
    EXPECT_EQ(fail_after(policy, now, seconds(2)).delay, milliseconds(200));
}

TEST(RestartPolicy, GivesUpAfterFiveStartupFailuresInARow) {
    restart_policy policy;
    auto now = k_t0;
    for (int i = 1; i <= 4; ++i) {
        const auto d = fail_after(policy, now, milliseconds(300));
        EXPECT_FALSE(d.give_up) << "failure " << i;
        EXPECT_EQ(policy.fast_failures(), i);
    }
    EXPECT_TRUE(fail_after(policy, now, milliseconds(300)).give_up);
}

TEST(RestartPolicy, AWorkerThatRanPastOneSecondBreaksTheStreak) {
    restart_policy policy;
    auto now = k_t0;
    for (int i = 0; i < 4; ++i) {
        fail_after(policy, now, milliseconds(999));
    }
    EXPECT_FALSE(fail_after(policy, now, milliseconds(1000)).give_up);
    EXPECT_EQ(policy.fast_failures(), 0);
    for (int i = 0; i < 4; ++i) {
        EXPECT_FALSE(fail_after(policy, now, milliseconds(10)).give_up);
    }
    EXPECT_TRUE(fail_after(policy, now, milliseconds(10)).give_up);
}

TEST(RestartPolicy, ThresholdsComeFromOptions) {
    restart_options options;
    options.initial_backoff = milliseconds(10);
    options.max_backoff = milliseconds(25);
    options.max_fast_failures = 2;
    restart_policy policy(options);
    auto now = k_t0;
    EXPECT_EQ(fail_after(policy, now, seconds(5)).delay, milliseconds(10));
    EXPECT_EQ(fail_after(policy, now, seconds(5)).delay, milliseconds(20));
    EXPECT_EQ(fail_after(policy, now, milliseconds(1)).delay, milliseconds(25));
    EXPECT_TRUE(fail_after(policy, now, milliseconds(1)).give_up);
}

/// A wait status as waitpid() reports it, from a real child.
int wait_status_of(void (*body)()) {
    const pid_t pid = ::fork();
    if (pid == 0) {
        body();
        ::_exit(0);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return status;
}

TEST(ExitStatus, DescribesExitCodesAndSignals) {
    const auto clean = exit_status::from_wait_status(wait_status_of([] { ::_exit(0); }));
    EXPECT_TRUE(clean.clean());
    EXPECT_EQ(clean.describe(), "exit:0");

    const auto failed = exit_status::from_wait_status(wait_status_of([] { ::_exit(2); }));
    EXPECT_FALSE(failed.clean());
    EXPECT_EQ(failed.describe(), "exit:2");

    const auto killed = exit_status::from_wait_status(wait_status_of([] { ::raise(SIGKILL); }));
    EXPECT_FALSE(killed.clean());
    EXPECT_TRUE(killed.by_signal);
    EXPECT_EQ(killed.describe(), "signal:9");
}

}  // namespace
}  // namespace pm_agent::process
