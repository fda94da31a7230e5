#include "pm_agent/core/dispatcher.hpp"

#include <algorithm>

#include "pm_agent/store/types.hpp"

namespace pm_agent::core {

bool dispatcher::caps_less::operator()(std::span<const std::string> a,
                                       std::span<const std::string> b) const {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end());
}

dispatcher::~dispatcher() = default;

dispatcher::group& dispatcher::group_for(std::string_view queue,
                                         std::span<const std::string> caps) {
    auto qit = queues_.find(queue);
    if (qit == queues_.end()) {
        auto q = std::make_unique<queue_groups>();
        q->name.assign(queue);
        std::string_view key(q->name);
        qit = queues_.emplace(key, std::move(q)).first;
    }
    queue_groups& q = *qit->second;
    auto git = q.groups.find(caps);
    if (git == q.groups.end()) {
        auto g = std::make_unique<group>();
        g->caps.assign(caps.begin(), caps.end());
        g->queue = &q;
        std::vector<std::string> key = g->caps;
        git = q.groups.emplace(std::move(key), std::move(g)).first;
    }
    return *git->second;
}

void dispatcher::add(entry& e, std::span<const std::string> queues,
                     std::span<const std::string> caps) {
    e.links_.assign(queues.size(), entry::link{});
    for (std::size_t i = 0; i < queues.size(); ++i) {
        group& g = group_for(queues[i], caps);
        ++g.members;
        e.links_[i].g = &g;
        e.links_[i].self = &e;
    }
    e.active_ = false;
}

void dispatcher::remove(entry& e) {
    set_active(e, false);
    for (entry::link& l : e.links_) {
        group& g = *l.g;
        if (--g.members == 0) {
            // Groups only exist while an entry refers to them: consumers come and go (long
            // polls) but their capability sets are bounded by the live agents.
            queue_groups& q = *g.queue;
            q.groups.erase(q.groups.find(std::span<const std::string>(g.caps)));
            if (q.groups.empty()) {
                queues_.erase(queues_.find(q.name));  // the key views q.name
            }
        }
    }
    e.links_.clear();
}

void dispatcher::set_active(entry& e, bool active) {
    if (e.active_ == active) {
        return;
    }
    e.active_ = active;
    for (entry::link& l : e.links_) {
        if (active) {
            link(l);
        } else {
            unlink(l);
        }
    }
}

void dispatcher::link(entry::link& l) {
    group& g = *l.g;
    if (g.head == nullptr) {
        g.active_pos = g.queue->active.size();
        g.queue->active.push_back(&g);
        g.head = &l;
    } else {
        g.tail->next = &l;
    }
    l.prev = g.tail;
    l.next = nullptr;
    g.tail = &l;
}

void dispatcher::unlink(entry::link& l) {
    group& g = *l.g;
    (l.prev != nullptr ? l.prev->next : g.head) = l.next;
    (l.next != nullptr ? l.next->prev : g.tail) = l.prev;
    l.prev = l.next = nullptr;
    if (g.head == nullptr) {
        auto& active = g.queue->active;
        group* last = active.back();
        last->active_pos = g.active_pos;
        active[g.active_pos] = last;
        active.pop_back();
    }
}

dispatcher::entry* dispatcher::pick(std::string_view queue,
                                    std::span<const std::string> required) const {
    auto it = queues_.find(queue);
    if (it == queues_.end()) {
        return nullptr;
    }
    // Best fit: the matching group with the fewest capabilities, so that agents with rare
    // capabilities stay free for the tasks that need them.
    const group* best = nullptr;
    for (const group* g : it->second->active) {
        if ((best == nullptr || g->caps.size() < best->caps.size()) &&
            store::is_subset(required, g->caps)) {
            best = g;
            if (best->caps.size() == required.size()) {
                break;  // an exact fit cannot be beaten
            }
        }
    }
    return best == nullptr ? nullptr : best->head->self;
}

}  // namespace pm_agent::core
