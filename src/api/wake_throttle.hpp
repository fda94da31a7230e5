#pragma once
// Private to src/api: how often one worker may publish a wake-up for one queue. The first
// wake-up of a queue leaves at once (an idle agent elsewhere hears of new work within
// milliseconds); more within `window` are held and leave together when it ends. Under steady
// load every turn would otherwise publish, and every other worker would wake up for it even
// when all its consumers are busy. Pure: the caller gives the time.

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pm_agent::api {

class wake_throttle {
  public:
    using time_point = std::chrono::steady_clock::time_point;

    explicit wake_throttle(std::chrono::milliseconds window) : window_(window) {}

    /// A wake-up for `queue` is wanted.
    void want(std::string_view queue);
    /// The queues to publish now (each then counts as sent at `now`); the rest stay held.
    std::vector<std::string> take_due(time_point now);
    /// When the earliest held wake-up may leave; nullopt when none is held.
    std::optional<time_point> next_due() const;
    /// Forgets everything (Redis is down: nothing is published, nothing is held for later).
    void clear() { queues_.clear(); }

  private:
    struct queue_state {
        std::optional<time_point> last_sent;
        bool wanted = false;
    };
    std::chrono::milliseconds window_;
    std::map<std::string, queue_state, std::less<>> queues_;
};

}  // namespace pm_agent::api
