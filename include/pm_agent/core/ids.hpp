#pragma once
/// Task and agent ids: a prefix and 13 lowercase base32 characters (15 bytes, so they fit the
/// small-string buffer and never allocate). Each id is a fixed bijective mix of a random
/// per-process base plus a counter: unique within the process, unguessable in practice, and
/// two workers collide only if their 64-bit bases land within each other's counts.

#include <cstdint>
#include <string>

#include "pm_agent/core/random.hpp"

namespace pm_agent::core {

/// Generates ids; one per engine.
class id_generator {
  public:
    /// Draws the per-process base from `rng`.
    explicit id_generator(random_source& rng);
    /// "t_..." for a task.
    std::string next_task_id();
    /// "a_..." for an agent.
    std::string next_agent_id();

  private:
    std::string make(char prefix);

    std::uint64_t base_;
    std::uint64_t counter_ = 0;
};

}  // namespace pm_agent::core
