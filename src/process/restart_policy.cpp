#include "pm_agent/process/restart_policy.hpp"

#include <sys/wait.h>

#include <algorithm>

namespace pm_agent::process {

restart_policy::restart_policy(restart_options options)
    : options_(options), next_backoff_(options.initial_backoff) {}

restart_policy::decision restart_policy::on_failure(clock::time_point started,
                                                    clock::time_point exited) {
    const auto ran = exited - started;
    if (ran >= options_.stable_after) {
        next_backoff_ = options_.initial_backoff;
    }
    if (ran < options_.fast_failure_within) {
        ++fast_failures_;
    } else {
        fast_failures_ = 0;
    }
    if (fast_failures_ >= options_.max_fast_failures) {
        return {.give_up = true, .delay = std::chrono::milliseconds(0)};
    }
    const auto delay = next_backoff_;
    next_backoff_ = std::min(next_backoff_ * 2, options_.max_backoff);
    return {.give_up = false, .delay = delay};
}

exit_status exit_status::from_wait_status(int wait_status) {
    if (WIFSIGNALED(wait_status)) {
        return {.by_signal = true, .code = WTERMSIG(wait_status)};
    }
    return {.by_signal = false, .code = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 1};
}

std::string exit_status::describe() const {
    return (by_signal ? "signal:" : "exit:") + std::to_string(code);
}

}  // namespace pm_agent::process
