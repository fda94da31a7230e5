#pragma once
// The memory store's pending index. Pending tasks are bucketed per (queue, required
// capability set); each bucket is ordered by (priority desc, seq asc), so its first element is
// the task that should run next among tasks with that exact requirement. A claim looks at the
// non-empty buckets of the agent's queues whose capability set is a subset of the agent's
// capabilities and takes the best head: O(Q * B * c + log n) for Q queues of the agent, B
// non-empty buckets per queue, c capabilities per set, n pending tasks in the bucket. B is the
// number of distinct capability sets currently waiting in a queue, in practice a handful.

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "node_pool.hpp"
#include "pm_agent/store/store.hpp"

namespace pm_agent::store {

struct task_rec;

/// Order inside a bucket: higher priority first, then submission order.
struct pending_key {
    int neg_priority = 0;
    std::uint64_t seq = 0;
    auto operator<=>(const pending_key&) const = default;
};

using pending_map = std::map<pending_key, task_rec*>;

struct bucket {
    std::vector<std::string> caps;
    pending_map tasks;
    std::size_t active_pos = 0;  // index in queue_state::active while non-empty
};

/// Orders capability sets so that a bucket is found by a span without building a vector.
struct caps_less {
    using is_transparent = void;
    bool operator()(std::span<const std::string> a, std::span<const std::string> b) const;
};

/// Everything the store tracks per queue name.
struct queue_state {
    std::string name;
    status_counts counts{};
    std::size_t agent_refs = 0;  // registered agents listing the queue
    std::map<std::vector<std::string>, std::unique_ptr<bucket>, caps_less> buckets;
    std::vector<bucket*> active;  // non-empty buckets, in no particular order

    std::uint64_t total() const;
};

class pending_index {
  public:
    pending_index() = default;
    pending_index(const pending_index&) = delete;
    pending_index& operator=(const pending_index&) = delete;

    /// The state of a queue, created on first use.
    queue_state& queue(std::string_view name);
    queue_state* find_queue(std::string_view name);
    /// Drops a queue nobody refers to any more (no task, no agent).
    void release_queue_if_unused(queue_state& q);

    /// Adds a task that just became pending (its rec.q must be set).
    void insert(task_rec& rec);
    /// Removes a pending task.
    void erase(task_rec& rec);
    /// The best pending task for an agent serving `queues` with capabilities `caps`.
    task_rec* best(std::span<queue_state* const> queues, std::span<const std::string> caps) const;

    /// All queues, unordered.
    const std::unordered_map<std::string_view, std::unique_ptr<queue_state>>& queues() const {
        return queues_;
    }

  private:
    void collect_empty_buckets(queue_state& q);

    std::unordered_map<std::string_view, std::unique_ptr<queue_state>> queues_;
    node_pool<pending_map> pool_;
};

}  // namespace pm_agent::store
