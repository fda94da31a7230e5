#include "pm_agent/store/backoff.hpp"

#include <algorithm>

namespace pm_agent::store {

std::chrono::milliseconds retry_delay(const config::queue_config& queue, int attempts,
                                      double jitter) {
    using std::chrono::milliseconds;
    const auto cap = std::chrono::duration_cast<milliseconds>(queue.retry_max);
    auto ceiling = std::chrono::duration_cast<milliseconds>(queue.retry_base);
    // Doubling stops at the cap, so a task with max_attempts = 1000 cannot overflow.
    for (int i = 1; i < attempts && ceiling < cap; ++i) {
        ceiling *= 2;
    }
    ceiling = std::min(ceiling, cap);
    jitter = std::clamp(jitter, 0.0, 1.0);
    return milliseconds(
        static_cast<milliseconds::rep>(jitter * static_cast<double>(ceiling.count())));
}

}  // namespace pm_agent::store
