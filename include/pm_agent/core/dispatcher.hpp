#pragma once
/// Dispatch: which waiting consumer gets a task that just became pending.
///
/// How dispatch scales (for the README):
/// - Pending tasks live in the store, bucketed per (queue, required-capability set); each
///   bucket is ordered by (priority desc, submission seq asc). Taking the next task for an agent
///   looks only at the non-empty buckets of the agent's queues whose capability set is a subset
///   of the agent's: O(Q·B·c + log n) for Q queues of the agent, B distinct capability sets
///   waiting in a queue, c capabilities per set and n tasks in the bucket. FIFO by seq inside a
///   priority means an old task is never overtaken by newer ones of the same priority.
/// - Consumers that can take work right now (a WebSocket agent with credit, or an agent with a
///   REST long poll waiting, that is online and below max_concurrency) are indexed here per
///   queue and grouped by their capability set; only groups with at least one such consumer are
///   visited. When a task becomes pending, pick() costs one hash lookup of the queue plus
///   O(G·c) for G capability groups with available consumers in that queue. It picks best fit
///   (the group with the fewest capabilities that still covers the task), so agents with rare
///   capabilities stay free for tasks that need them. Consumers leave the index while they
///   claim and re-enter at the tail, so work rotates round-robin within a group.
/// - Deadlines (leases, agent silence, task timeouts, scheduled tasks, retention, long-poll
///   deadlines) are ordered sets walked from their front: a timer tick costs O(k log n) for
///   the k items due, never a scan.
/// - Nothing scans all pending tasks or all agents on the submit -> push -> complete path.
///
/// The index itself is sans-I/O: entries are embedded in the engine's per-agent state.

#include <cstddef>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pm_agent::core {

/// The index of available consumers (see the file comment).
class dispatcher {
    struct group;

  public:
    /// A consumer's membership, embedded in its owner (it must not move while added).
    class entry {
      public:
        explicit entry(void* owner) : owner_(owner) {}
        entry(const entry&) = delete;
        entry& operator=(const entry&) = delete;

        /// The object this entry belongs to.
        void* owner() const { return owner_; }
        /// True while pick() may return it.
        bool active() const { return active_; }

      private:
        friend class dispatcher;
        struct link {
            group* g = nullptr;
            link* prev = nullptr;
            link* next = nullptr;
            entry* self = nullptr;
        };
        void* owner_;
        std::vector<link> links_;  // one per queue, allocated once by add()
        bool active_ = false;
    };

    dispatcher() = default;
    dispatcher(const dispatcher&) = delete;
    dispatcher& operator=(const dispatcher&) = delete;
    ~dispatcher();

    /// Registers a consumer for `queues` with capabilities `caps` (both sorted), inactive.
    void add(entry& e, std::span<const std::string> queues, std::span<const std::string> caps);
    /// Unregisters it (also when active).
    void remove(entry& e);
    /// Makes it available (appended at the tail of its groups) or not.
    void set_active(entry& e, bool active);
    /// An active consumer of `queue` whose capabilities include `required` (sorted): from the
    /// matching group with the fewest capabilities, the one available longest. nullptr: none.
    entry* pick(std::string_view queue, std::span<const std::string> required) const;

  private:
    struct caps_less {
        using is_transparent = void;
        bool operator()(std::span<const std::string> a, std::span<const std::string> b) const;
    };
    struct queue_groups;
    struct group {
        std::vector<std::string> caps;
        queue_groups* queue = nullptr;
        entry::link* head = nullptr;
        entry::link* tail = nullptr;
        std::size_t members = 0;     // registered entries
        std::size_t active_pos = 0;  // index in queue_groups::active while it has a linked entry
    };
    struct queue_groups {
        std::string name;
        std::map<std::vector<std::string>, std::unique_ptr<group>, caps_less> groups;
        std::vector<group*> active;  // groups with at least one linked (available) entry
    };

    group& group_for(std::string_view queue, std::span<const std::string> caps);
    void link(entry::link& l);
    void unlink(entry::link& l);

    std::unordered_map<std::string_view, std::unique_ptr<queue_groups>> queues_;
};

}  // namespace pm_agent::core
