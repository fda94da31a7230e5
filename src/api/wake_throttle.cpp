// Wake-ups per queue at most once per window, the first one at once (see wake_throttle.hpp).
#include "api/wake_throttle.hpp"

#include <iterator>

namespace pm_agent::api {

void wake_throttle::want(std::string_view queue) {
    auto it = queues_.find(queue);
    if (it == queues_.end()) {
        it = queues_.emplace(std::string(queue), queue_state{}).first;
    }
    it->second.wanted = true;
}

std::vector<std::string> wake_throttle::take_due(time_point now) {
    std::vector<std::string> out;
    for (auto it = queues_.begin(); it != queues_.end();) {
        queue_state& q = it->second;
        const bool window_over = !q.last_sent || now - *q.last_sent >= window_;
        if (q.wanted && window_over) {
            out.push_back(it->first);
            q.wanted = false;
            q.last_sent = now;
        } else if (!q.wanted && window_over) {
            it = queues_.erase(it);  // quiet for a whole window: the map keeps queues in use
            continue;
        }
        ++it;
    }
    return out;
}

std::optional<wake_throttle::time_point> wake_throttle::next_due() const {
    std::optional<time_point> due;
    for (const auto& [name, q] : queues_) {
        if (q.wanted && q.last_sent) {
            const time_point at = *q.last_sent + window_;
            if (!due || at < *due) {
                due = at;
            }
        }
    }
    return due;
}

}  // namespace pm_agent::api
