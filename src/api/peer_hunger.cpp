// Other workers' waiting consumers, by queue (see peer_hunger.hpp).
#include "api/peer_hunger.hpp"

#include <charconv>

namespace pm_agent::api {

void append_name(std::string& out, std::string_view name) {
    out += std::to_string(name.size());
    out.push_back(':');
    out.append(name);
}

std::optional<std::vector<std::string_view>> parse_names(std::string_view list) {
    std::vector<std::string_view> names;
    while (!list.empty()) {
        std::size_t length = 0;
        const auto [end, ec] = std::from_chars(list.data(), list.data() + list.size(), length);
        const std::size_t digits = static_cast<std::size_t>(end - list.data());
        if (ec != std::errc() || digits == 0 || digits >= list.size() || list[digits] != ':' ||
            length > list.size() - digits - 1) {
            return std::nullopt;
        }
        names.push_back(list.substr(digits + 1, length));
        list.remove_prefix(digits + 1 + length);
    }
    return names;
}

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
