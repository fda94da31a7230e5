#pragma once
// Private to src/api: which queues another worker has a consumer waiting on, as their hunger
// announcements tell (cluster_link). A wake-up is published only for those: under load no
// consumer anywhere waits, and every worker publishing every few milliseconds for every other
// one to wake up to nothing would cost N x (N - 1) messages for no task. A wake-up held back
// is remembered for `ttl`: the hunger announcement may be on its way (a consumer elsewhere
// found nothing just before this task was committed), and when it comes the wake-up leaves.
// An announcement counts for `ttl`; a worker repeats them while its consumers wait. Pure: the
// caller gives the time.

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pm_agent::api {

/// A hunger announcement carries every queue of one flush: each as "<length>:<name>" (a name may
/// hold any byte), appended to `out`.
void append_name(std::string& out, std::string_view name);
/// The names of such a list; nullopt when it is malformed (then none is used).
std::optional<std::vector<std::string_view>> parse_names(std::string_view list);

class peer_hunger {
  public:
    using time_point = std::chrono::steady_clock::time_point;

    explicit peer_hunger(std::chrono::milliseconds ttl) : ttl_(ttl) {}

    /// A task of `queue` found no free consumer here. True: a consumer elsewhere is waiting,
    /// publish the wake-up; false: it is held back (and remembered).
    bool wake_wanted(std::string_view queue, time_point now);
    /// Another worker announced a consumer of `queue` waiting. True: a wake-up held back within
    /// ttl is due now.
    bool heard(std::string_view queue, time_point now);
    /// Forgets what is older than ttl.
    void sweep(time_point now);
    std::size_t size() const { return queues_.size(); }

  private:
    struct queue_state {
        std::optional<time_point> hungry_until;
        std::optional<time_point> held_at;
    };
    queue_state& at(std::string_view queue);

    std::chrono::milliseconds ttl_;
    std::map<std::string, queue_state, std::less<>> queues_;
};

}  // namespace pm_agent::api
