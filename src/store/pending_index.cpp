#include "pending_index.hpp"

#include <algorithm>
#include <numeric>

#include "memory_store.hpp"

namespace pm_agent::store {

namespace {

// Empty buckets are kept (a queue with one hot capability set would otherwise free and
// re-create its bucket on every task) until this many pile up in one queue.
constexpr std::size_t k_max_empty_buckets = 32;

}  // namespace

bool caps_less::operator()(std::span<const std::string> a, std::span<const std::string> b) const {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end());
}

std::uint64_t queue_state::total() const {
    return std::accumulate(counts.begin(), counts.end(), std::uint64_t{0});
}

queue_state& pending_index::queue(std::string_view name) {
    if (auto it = queues_.find(name); it != queues_.end()) {
        return *it->second;
    }
    auto q = std::make_unique<queue_state>();
    q->name.assign(name);
    queue_state& ref = *q;
    queues_.emplace(std::string_view(ref.name), std::move(q));
    return ref;
}

queue_state* pending_index::find_queue(std::string_view name) {
    auto it = queues_.find(name);
    return it == queues_.end() ? nullptr : it->second.get();
}

void pending_index::release_queue_if_unused(queue_state& q) {
    if (q.agent_refs == 0 && q.total() == 0) {
        queues_.erase(queues_.find(q.name));  // the key views q.name
    }
}

void pending_index::insert(task_rec& rec) {
    queue_state& q = *rec.q;
    const std::span<const std::string> caps(rec.t.required_capabilities);
    auto it = q.buckets.find(caps);
    if (it == q.buckets.end()) {
        auto b = std::make_unique<bucket>();
        b->caps = rec.t.required_capabilities;
        std::vector<std::string> key = b->caps;
        it = q.buckets.emplace(std::move(key), std::move(b)).first;
    }
    bucket& b = *it->second;
    if (b.tasks.empty()) {
        b.active_pos = q.active.size();
        q.active.push_back(&b);
    }
    rec.b = &b;
    rec.pending_it = pool_.insert(b.tasks, pending_key{-rec.t.priority, rec.t.seq}, &rec);
}

void pending_index::erase(task_rec& rec) {
    bucket& b = *rec.b;
    pool_.erase(b.tasks, rec.pending_it);
    rec.b = nullptr;
    if (b.tasks.empty()) {
        queue_state& q = *rec.q;
        bucket* last = q.active.back();
        last->active_pos = b.active_pos;
        q.active[b.active_pos] = last;
        q.active.pop_back();
        if (q.buckets.size() - q.active.size() > k_max_empty_buckets) {
            collect_empty_buckets(q);
        }
    }
}

void pending_index::collect_empty_buckets(queue_state& q) {
    std::erase_if(q.buckets, [](const auto& entry) { return entry.second->tasks.empty(); });
}

task_rec* pending_index::best(std::span<queue_state* const> queues,
                              std::span<const std::string> caps) const {
    task_rec* best = nullptr;
    const pending_key* best_key = nullptr;
    for (queue_state* q : queues) {
        for (bucket* b : q->active) {
            const auto& head = *b->tasks.begin();
            if ((best_key == nullptr || head.first < *best_key) && is_subset(b->caps, caps)) {
                best_key = &head.first;
                best = head.second;
            }
        }
    }
    return best;
}

}  // namespace pm_agent::store
