#pragma once
/// The pause before a pool connection's next connection attempt. Sans-I/O (jitter injected).

#include <chrono>

namespace pm_agent::pg {

/// failures: attempts failed in a row since the connection was last usable (0: it was just
/// lost, so the database was fine a moment ago). 0 gives jitter * min, so connections dropped
/// together (a database restart) do not reconnect in one burst; after that the delay doubles
/// from min up to max, with "equal jitter" (half fixed, half random) so it never collapses to 0.
/// jitter is uniform in [0, 1).
std::chrono::milliseconds reconnect_delay(std::chrono::milliseconds min,
                                          std::chrono::milliseconds max, int failures,
                                          double jitter);

}  // namespace pm_agent::pg
