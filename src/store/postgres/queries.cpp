// Read-only queries for the admin API on PostgreSQL: listings (cursor = the seq of the last
// item), stats and queue depths.
#include <charconv>

#include "store/postgres/postgres_store.hpp"
#include "store/postgres/sql.hpp"

namespace pm_agent::store::postgres {

namespace {

// Unnamed (never prepared): with optional filters a custom plan per call is the better plan.
constexpr const char* k_list_tasks =
    "SELECT " PM_TASK_COLUMNS("t") " FROM pm_tasks t WHERE ($1::text IS NULL OR t.status = $1) "
    "AND ($2::text IS NULL OR t.queue = $2) AND ($3::text IS NULL OR t.type = $3) AND ($4::text "
    "IS NULL OR t.agent_id = $4) AND t.seq < $5::bigint ORDER BY t.seq DESC LIMIT $6::int";

constexpr const char* k_list_agents =
    "SELECT " PM_AGENT_COLUMNS("a") " FROM pm_agents a WHERE a.seq > $1::bigint AND ($2::text "
    "IS NULL OR a.status = $2) AND ($3::text IS NULL OR $3 = ANY(a.queues)) ORDER BY a.seq "
    "LIMIT $4::int";

constexpr const char* k_task_counts =
    "SELECT queue, status, count(*) FROM pm_tasks GROUP BY queue, status";
constexpr const char* k_queue_names = "SELECT name FROM pm_queues ORDER BY name";
constexpr const char* k_agent_counts = "SELECT status, count(*) FROM pm_agents GROUP BY status";

constexpr const char* k_queue_depths =
    "SELECT q.name, (SELECT count(*) FROM pm_tasks t WHERE t.queue = q.name AND t.status = "
    "'pending') FROM pm_queues q ORDER BY q.name";

bool parse_cursor(std::string_view text, std::uint64_t& seq) {
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seq);
    return !text.empty() && ec == std::errc() && end == text.data() + text.size() &&
           seq <= static_cast<std::uint64_t>(INT64_MAX);
}

param opt(const std::optional<std::string>& v) {
    return v ? param(*v) : param();
}

template <class T>
std::shared_ptr<callback<T>> share(callback<T>&& done) {
    return std::make_shared<callback<T>>(std::move(done));
}

}  // namespace

void postgres_store::list_tasks(task_filter filter, callback<task_page> done) {
    std::uint64_t before = static_cast<std::uint64_t>(INT64_MAX);
    if (!filter.cursor.empty() && !parse_cursor(filter.cursor, before)) {
        return done(error{errc::bad_request, "cursor: invalid"});
    }
    const std::size_t limit = std::clamp<std::size_t>(filter.limit, 1, 1000);
    param status;
    if (filter.status) {
        status = std::string(to_string(*filter.status));
    }
    op o;
    o.statements.push_back(
        {"",
         k_list_tasks,
         {std::move(status), opt(filter.queue), opt(filter.type), opt(filter.agent_id),
          std::to_string(before), std::to_string(limit + 1)}});
    auto cb = share(std::move(done));
    o.on_rows = [cb, limit](std::span<pg::rows> r) {
        task_page page;
        const std::size_t n = std::min(limit, r[0].size());
        page.items.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            page.items.push_back(read_task(r[0], i));
        }
        if (r[0].size() > limit) {
            page.next_cursor = std::to_string(page.items.back().seq);
        }
        (*cb)(std::move(page));
    };
    o.on_error = [cb](error e, const pg::failure*) { (*cb)(std::move(e)); };
    run_direct(std::move(o));
}

void postgres_store::list_agents(agent_filter filter, callback<agent_page> done) {
    std::uint64_t after = 0;
    if (!filter.cursor.empty() && !parse_cursor(filter.cursor, after)) {
        return done(error{errc::bad_request, "cursor: invalid"});
    }
    const std::size_t limit = std::clamp<std::size_t>(filter.limit, 1, 1000);
    param status;
    if (filter.status) {
        status = std::string(to_string(*filter.status));
    }
    op o;
    o.statements.push_back(
        {"",
         k_list_agents,
         {std::to_string(after), std::move(status), opt(filter.queue), std::to_string(limit + 1)}});
    auto cb = share(std::move(done));
    o.on_rows = [cb, limit](std::span<pg::rows> r) {
        agent_page page;
        const std::size_t n = std::min(limit, r[0].size());
        for (std::size_t i = 0; i < n; ++i) {
            page.items.push_back(read_agent(r[0], i));
        }
        if (r[0].size() > limit) {
            page.next_cursor = std::to_string(page.items.back().seq);
        }
        (*cb)(std::move(page));
    };
    o.on_error = [cb](error e, const pg::failure*) { (*cb)(std::move(e)); };
    run_direct(std::move(o));
}

void postgres_store::stats(callback<store_stats> done) {
    op o;
    o.statements.push_back({"pm_task_counts", k_task_counts, {}});
    o.statements.push_back({"pm_queue_names", k_queue_names, {}});
    o.statements.push_back({"pm_agent_counts", k_agent_counts, {}});
    auto cb = share(std::move(done));
    o.on_rows = [cb](std::span<pg::rows> r) {
        store_stats out;
        for (std::size_t i = 0; i < r[1].size(); ++i) {
            out.queues.emplace_back(std::string(r[1].get(i, 0)), status_counts{});
        }
        for (std::size_t i = 0; i < r[0].size(); ++i) {
            const auto s = parse_task_status(r[0].get(i, 1));
            if (!s) {
                continue;
            }
            const auto n = static_cast<std::uint64_t>(to_int(r[0].get(i, 2)));
            out.tasks[static_cast<std::size_t>(*s)] += n;
            const std::string_view q = r[0].get(i, 0);
            auto it = std::lower_bound(
                out.queues.begin(), out.queues.end(), q,
                [](const auto& e, std::string_view name) { return e.first < name; });
            if (it == out.queues.end() || it->first != q) {
                it = out.queues.emplace(it, std::string(q), status_counts{});
            }
            it->second[static_cast<std::size_t>(*s)] += n;
        }
        for (std::size_t i = 0; i < r[2].size(); ++i) {
            if (const auto s = parse_agent_status(r[2].get(i, 0))) {
                out.agents[static_cast<std::size_t>(*s)] =
                    static_cast<std::uint64_t>(to_int(r[2].get(i, 1)));
            }
        }
        (*cb)(std::move(out));
    };
    o.on_error = [cb](error e, const pg::failure*) { (*cb)(std::move(e)); };
    run_direct(std::move(o));
}

void postgres_store::queue_depths(callback<std::vector<queue_depth>> done) {
    op o;
    o.statements.push_back({"pm_queue_depths", k_queue_depths, {}});
    auto cb = share(std::move(done));
    o.on_rows = [cb](std::span<pg::rows> r) {
        std::vector<queue_depth> out;
        out.reserve(r[0].size());
        for (std::size_t i = 0; i < r[0].size(); ++i) {
            out.push_back(queue_depth{std::string(r[0].get(i, 0)),
                                      static_cast<std::uint64_t>(to_int(r[0].get(i, 1)))});
        }
        (*cb)(std::move(out));
    };
    o.on_error = [cb](error e, const pg::failure*) { (*cb)(std::move(e)); };
    run_direct(std::move(o));
}

}  // namespace pm_agent::store::postgres

namespace pm_agent::store {

std::unique_ptr<store> make_postgres_store(boost::asio::io_context& ioc, pg::pool& db,
                                           const config::queue_config& queue,
                                           const config::agents_config& agents,
                                           postgres_options options) {
    return std::make_unique<postgres::postgres_store>(ioc, db, queue, agents, options);
}

}  // namespace pm_agent::store
