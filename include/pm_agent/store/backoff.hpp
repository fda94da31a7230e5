#pragma once
/// Retry back-off of a reported failure: exponential from retry_base, capped at retry_max,
/// with full jitter (AWS "Exponential Backoff and Jitter"), so retries of many tasks that
/// failed together spread out instead of stampeding.

#include <chrono>

#include "pm_agent/config/config.hpp"

namespace pm_agent::store {

/// The delay before retry number `attempts` (the attempts made so far, >= 1):
/// jitter * min(retry_max, retry_base * 2^(attempts-1)), jitter uniform in [0, 1).
std::chrono::milliseconds retry_delay(const config::queue_config& queue, int attempts,
                                      double jitter);

}  // namespace pm_agent::store
