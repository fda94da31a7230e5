// Exponential reconnect back-off with jitter (see reconnect_delay.hpp).

#include "pg/reconnect_delay.hpp"

#include <algorithm>
#include <cstdint>

namespace pm_agent::pg {

std::chrono::milliseconds reconnect_delay(std::chrono::milliseconds min,
                                          std::chrono::milliseconds max, int failures,
                                          double jitter) {
    jitter = std::clamp(jitter, 0.0, 1.0);
    const double low = static_cast<double>(std::max<std::int64_t>(min.count(), 0));
    const double high = std::max(low, static_cast<double>(max.count()));
    if (failures <= 0) {
        return std::chrono::milliseconds(static_cast<std::int64_t>(low * jitter));
    }
    double base = std::max(low, 1.0);  // a zero minimum must not spin the loop
    // Capped doubling: 2^failures overflows nothing because it stops at high.
    for (int i = 1; i < failures && base < high; ++i) {
        base *= 2;
    }
    base = std::min(base, high);
    return std::chrono::milliseconds(static_cast<std::int64_t>(base / 2 + base / 2 * jitter));
}

}  // namespace pm_agent::pg
