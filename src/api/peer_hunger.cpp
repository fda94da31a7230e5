// Other workers' waiting consumers, by queue (see peer_hunger.hpp).
#include "api/peer_hunger.hpp"

namespace pm_agent::api {

peer_hunger::queue_state& peer_hunger::at(std::string_view queue) {
    auto it = queues_.find(queue);
    if (it == queues_.end()) {
        it = queues_.emplace(std::string(queue), queue_state{}).first;
    }
    return it->second;
}

bool peer_hunger::wake_wanted(std::string_view queue, time_point now) {
    queue_state& q = at(queue);
    if (q.hungry_until && now < *q.hungry_until) {
        return true;
    }
    q.held_at = now;
    return false;
}

bool peer_hunger::heard(std::string_view queue, time_point now) {
    queue_state& q = at(queue);
    q.hungry_until = now + ttl_;
    const bool due = q.held_at && now - *q.held_at <= ttl_;
    q.held_at.reset();
    return due;
}

void peer_hunger::sweep(time_point now) {
    for (auto it = queues_.begin(); it != queues_.end();) {
        queue_state& q = it->second;
        if (q.hungry_until && now >= *q.hungry_until) {
            q.hungry_until.reset();
        }
        if (q.held_at && now - *q.held_at > ttl_) {
            q.held_at.reset();
        }
        if (!q.hungry_until && !q.held_at) {
            it = queues_.erase(it);
        } else {
            ++it;
        }
    }
}

}  // namespace pm_agent::api
