#pragma once
/// The embedded store: all state in this process, nothing durable. It is the product's fast
/// path (single worker), not a mock: every operation completes inline in O(log n).

#include <memory>

#include "pm_agent/config/config.hpp"
#include "pm_agent/store/store.hpp"

namespace pm_agent::store {

/// A new, empty memory store using the queue bound, retention, back-off and agent timeouts of
/// the given configuration.
std::unique_ptr<store> make_memory_store(const config::queue_config& queue,
                                         const config::agents_config& agents);

}  // namespace pm_agent::store
