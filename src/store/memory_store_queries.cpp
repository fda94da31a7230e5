// Read-only queries for the admin API: listings, stats and queue depths.
#include <algorithm>
#include <charconv>

#include "memory_store.hpp"

namespace pm_agent::store {

namespace {

// Cursors are the seq of the last item returned, in decimal: opaque to clients.
bool parse_cursor(std::string_view text, std::uint64_t& seq) {
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seq);
    return !text.empty() && ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

void memory_store::list_tasks(task_filter filter, callback<task_page> done) {
    std::uint64_t before = UINT64_MAX;
    if (!filter.cursor.empty() && !parse_cursor(filter.cursor, before)) {
        return done(error{errc::bad_request, "cursor: invalid"});
    }
    const std::size_t limit = std::clamp<std::size_t>(filter.limit, 1, 1000);
    task_page page;
    // Returns false once the page is full (and sets next_cursor when more items match).
    auto take = [&](const task& t) {
        if (filter.queue && t.queue != *filter.queue) {
            return true;
        }
        if (filter.type && t.type != *filter.type) {
            return true;
        }
        if (filter.agent_id && t.agent_id != *filter.agent_id) {
            return true;
        }
        if (page.items.size() == limit) {
            page.next_cursor = std::to_string(page.items.back().seq);
            return false;
        }
        page.items.push_back(t);
        return true;
    };
    if (filter.status) {
        // A status filter walks that status' index only: "dead tasks" stays cheap however
        // many succeeded tasks are retained.
        const status_index& index = by_status_[static_cast<std::size_t>(*filter.status)];
        for (auto it = index.upper_bound(before); it != index.end(); ++it) {
            if (!take(task_by_seq(*it)->t)) {
                break;
            }
        }
    } else {
        for (auto it = std::make_reverse_iterator(tasks_.lower_bound(before)); it != tasks_.rend();
             ++it) {
            if (!take(it->second.t)) {
                break;
            }
        }
    }
    done(std::move(page));
}

void memory_store::list_agents(agent_filter filter, callback<agent_page> done) {
    std::uint64_t after = 0;
    if (!filter.cursor.empty() && !parse_cursor(filter.cursor, after)) {
        return done(error{errc::bad_request, "cursor: invalid"});
    }
    const std::size_t limit = std::clamp<std::size_t>(filter.limit, 1, 1000);
    agent_page page;
    for (auto it = agents_.upper_bound(after); it != agents_.end(); ++it) {
        const agent& a = it->second.a;
        if (filter.status && a.status != *filter.status) {
            continue;
        }
        if (filter.queue && !std::binary_search(a.queues.begin(), a.queues.end(), *filter.queue)) {
            continue;
        }
        if (page.items.size() == limit) {
            page.next_cursor = std::to_string(page.items.back().seq);
            break;
        }
        page.items.push_back(a);
    }
    done(std::move(page));
}

void memory_store::stats(callback<store_stats> done) {
    store_stats out;
    out.tasks = counts_;
    out.agents = agent_counts_;
    out.queues.reserve(pending_.queues().size());
    for (const auto& [name, q] : pending_.queues()) {
        out.queues.emplace_back(q->name, q->counts);
    }
    std::sort(out.queues.begin(), out.queues.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    done(std::move(out));
}

void memory_store::queue_depths(callback<std::vector<queue_depth>> done) {
    std::vector<queue_depth> out;
    out.reserve(pending_.queues().size());
    for (const auto& [name, q] : pending_.queues()) {
        out.push_back(
            queue_depth{q->name, q->counts[static_cast<std::size_t>(task_status::pending)]});
    }
    std::sort(out.begin(), out.end(),
              [](const queue_depth& a, const queue_depth& b) { return a.queue < b.queue; });
    done(std::move(out));
}

}  // namespace pm_agent::store
