#pragma once
/// When the supervisor restarts a failed worker, and when it stops trying. Sans-I/O: the caller
/// passes the times, so the policy is tested without processes or clocks.

#include <chrono>
#include <string>

namespace pm_agent::process {

/// Back-off and give-up thresholds (defaults: 100 ms doubling to 5 s, reset after 30 s of
/// healthy running; 5 failures in a row each within 1 s of the start stop the supervisor).
struct restart_options {
    std::chrono::milliseconds initial_backoff{100};
    std::chrono::milliseconds max_backoff{5000};
    /// A worker that ran at least this long before failing starts again from initial_backoff.
    std::chrono::milliseconds stable_after{30000};
    /// A failure this soon after the start counts as a start-up failure.
    std::chrono::milliseconds fast_failure_within{1000};
    /// This many start-up failures in a row: the worker cannot start (a config or bind error)
    /// and restarting it would only hide that.
    int max_fast_failures = 5;
};

/// Restart state of one worker slot.
class restart_policy {
  public:
    using clock = std::chrono::steady_clock;

    /// What to do about a worker that failed.
    struct decision {
        bool give_up = false;
        std::chrono::milliseconds delay{0};  ///< wait this long before starting it again
    };

    explicit restart_policy(restart_options options = {});

    /// The worker started at `started` failed (signal or non-zero exit) at `exited`.
    decision on_failure(clock::time_point started, clock::time_point exited);

    /// Start-up failures in a row so far.
    int fast_failures() const { return fast_failures_; }

  private:
    restart_options options_;
    std::chrono::milliseconds next_backoff_;
    int fast_failures_ = 0;
};

/// How a worker ended, from a waitpid() status.
struct exit_status {
    bool by_signal = false;
    int code = 0;  ///< exit code, or the signal number when by_signal

    static exit_status from_wait_status(int wait_status);
    /// A clean exit (code 0): the worker drained; it is not restarted.
    bool clean() const { return !by_signal && code == 0; }
    /// `exit:N` or `signal:N`, for the supervisor's log lines.
    std::string describe() const;
};

}  // namespace pm_agent::process
