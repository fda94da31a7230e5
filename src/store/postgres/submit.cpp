// Submission on PostgreSQL. Requests without idempotency keys that arrive in one loop turn are
// joined into one multi-row INSERT (unnest of column arrays); a request with keys is one
// statement of its own that checks, inside the database, that every reused key comes with the
// same body and that the queue has room, and raises otherwise so that nothing is created.
#include <unordered_map>

#include <boost/json/serialize.hpp>

#include "store/postgres/postgres_store.hpp"
#include "store/postgres/sql.hpp"

namespace pm_agent::store::postgres {

namespace {

// One INSERT for any number of tasks: every column is an array parameter, one element per task.
#define PM_SUBMIT_COLUMNS                                                                \
    "$1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::int[], $7::text[], " \
    "$8::int[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::text[]"
#define PM_SUBMIT_NAMES                                                                           \
    "i(id, queue, type, payload, priority, max_attempts, caps, timeout_s, delay_ms, req_run_at, " \
    "run_at, now, key, ord)"
#define PM_SUBMIT_INSERT                                                                          \
    "INSERT INTO pm_tasks (id, queue, type, payload, priority, status, max_attempts, "            \
    "required_capabilities, timeout_s, idempotency_key, requested_delay_ms, requested_run_at, "   \
    "run_at, created_at, updated_at, ready_at) "                                                  \
    "SELECT i.id, i.queue, i.type, i.payload::json, i.priority, CASE WHEN i.run_at > i.now THEN " \
    "'scheduled' ELSE 'pending' END, i.max_attempts, i.caps::text[], i.timeout_s, i.key, "        \
    "i.delay_ms, pm_ts(i.req_run_at), pm_ts(i.run_at), pm_ts(i.now), pm_ts(i.now), pm_ts(i.now) "

constexpr const char* k_insert_plain =
    PM_SUBMIT_INSERT "FROM unnest(" PM_SUBMIT_COLUMNS ") WITH ORDINALITY AS " PM_SUBMIT_NAMES
                     " ORDER BY i.ord RETURNING id, seq";

// $14: room left under task_queue_size as this worker knows it.
constexpr const char* k_insert_keyed =
    "WITH i AS (SELECT * FROM unnest(" PM_SUBMIT_COLUMNS ") WITH ORDINALITY AS " PM_SUBMIT_NAMES
    "), clash AS (SELECT min(i.ord) AS ord FROM i JOIN pm_tasks t ON t.idempotency_key = i.key "
    "WHERE NOT (t.queue = i.queue AND t.type = i.type AND t.payload::jsonb = i.payload::jsonb "
    "AND t.priority = i.priority AND t.max_attempts = i.max_attempts AND "
    "t.required_capabilities = i.caps::text[] AND t.timeout_s = i.timeout_s AND "
    "t.requested_delay_ms IS NOT DISTINCT FROM i.delay_ms AND t.requested_run_at IS NOT "
    "DISTINCT FROM pm_ts(i.req_run_at))), "
    "fresh AS (SELECT count(*) AS n FROM i WHERE i.key IS NULL OR NOT EXISTS (SELECT 1 FROM "
    "pm_tasks t WHERE t.idempotency_key = i.key)), "
    "guard AS (SELECT CASE WHEN (SELECT ord FROM clash) IS NOT NULL THEN pm_raise('PM409', "
    "((SELECT ord FROM clash) - 1)::text) WHEN (SELECT n FROM fresh) > $14::bigint THEN "
    "pm_raise('PM503', 'queue full') ELSE true END AS ok) " PM_SUBMIT_INSERT
    "FROM i, guard WHERE guard.ok ORDER BY i.ord ON CONFLICT (idempotency_key) WHERE "
    "idempotency_key IS NOT NULL DO NOTHING RETURNING id, seq";

constexpr const char* k_select_by_keys =
    "SELECT " PM_TASK_COLUMNS("t") " FROM pm_tasks t WHERE t.idempotency_key = ANY($1::text[])";

constexpr const char* k_count_queued = PM_COUNT_QUEUED_SQL;

constexpr const char* k_add_queues =
    "INSERT INTO pm_queues (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING";

// What the database row can show of the request (the requested delay is not read back).
bool same_stored(const task& t, const new_task& b) {
    return t.queue == b.queue && t.type == b.type && t.payload == b.payload &&
           t.priority == b.priority && t.max_attempts == b.max_attempts &&
           t.required_capabilities == b.required_capabilities && t.timeout_s == b.timeout_s;
}

/// The column arrays of PM_SUBMIT_COLUMNS.
struct submit_columns {
    array_builder id, queue, type, payload, priority, max_attempts, caps, timeout_s, delay_ms,
        req_run_at, run_at, now, key;

    void add(const new_task& t, time_point at) {
        id.add(t.id);
        queue.add(t.queue);
        type.add(t.type);
        payload.add(boost::json::serialize(t.payload));
        priority.add_int(t.priority);
        max_attempts.add_int(t.max_attempts);
        caps.add(text_array(t.required_capabilities));
        timeout_s.add_int(t.timeout_s);
        if (t.delay) {
            delay_ms.add_int(t.delay->count());
        } else {
            delay_ms.add_null();
        }
        if (t.run_at) {
            req_run_at.add(micros(*t.run_at));
        } else {
            req_run_at.add_null();
        }
        if (auto r = run_at_of(t, at)) {
            run_at.add(micros(*r));
        } else {
            run_at.add_null();
        }
        now.add(micros(at));
        if (t.idempotency_key) {
            key.add(*t.idempotency_key);
        } else {
            key.add_null();
        }
    }

    std::vector<param> take() {
        return {id.take(),       queue.take(),        type.take(),   payload.take(),
                priority.take(), max_attempts.take(), caps.take(),   timeout_s.take(),
                delay_ms.take(), req_run_at.take(),   run_at.take(), now.take(),
                key.take()};
    }
};

std::unordered_map<std::string_view, std::uint64_t> seqs_by_id(const pg::rows& r) {
    std::unordered_map<std::string_view, std::uint64_t> out;
    out.reserve(r.size());
    for (std::size_t i = 0; i < r.size(); ++i) {
        out.emplace(r.get(i, 0), static_cast<std::uint64_t>(to_int(r.get(i, 1))));
    }
    return out;
}

}  // namespace

void postgres_store::with_queue_count(unique_function<void(bool)> then) {
    waiting_for_count_.push_back(std::move(then));
    if (counting_) {
        return;
    }
    counting_ = true;
    op o;
    o.statements.push_back({"pm_count_queued", k_count_queued, {}});
    o.on_rows = [this](std::span<pg::rows> r) {
        queued_tasks_ = to_int(r[0].get(0, 0));
        counting_ = false;
        auto waiting = std::move(waiting_for_count_);
        waiting_for_count_.clear();
        for (auto& w : waiting) {
            w(true);
        }
    };
    o.on_error = [this](error, const pg::failure*) {
        counting_ = false;
        auto waiting = std::move(waiting_for_count_);
        waiting_for_count_.clear();
        for (auto& w : waiting) {
            w(false);
        }
    };
    enqueue(std::move(o));
}

void postgres_store::submit(std::vector<new_task> tasks, time_point now,
                            callback<std::span<const submitted>> done) {
    if (!queued_tasks_) {
        with_queue_count(
            [this, tasks = std::move(tasks), now, done = std::move(done)](bool ok) mutable {
                if (!ok) {
                    return done(error{errc::unavailable, "database unavailable; try again"});
                }
                submit(std::move(tasks), now, std::move(done));
            });
        return;
    }
    for (const new_task& t : tasks) {
        if (t.idempotency_key) {
            return submit_keyed(std::move(tasks), now, std::move(done));
        }
    }
    const auto n = static_cast<std::int64_t>(tasks.size());
    if (*queued_tasks_ + n > static_cast<std::int64_t>(queue_cfg_.task_queue_size)) {
        return done(error{errc::queue_full,
                          "queue is full: task_queue_size pending and scheduled tasks reached"});
    }
    *queued_tasks_ += n;  // reserved now, so that concurrent requests see the bound
    plain_submits_.push_back({std::move(tasks), now, std::move(done)});
    schedule_flush();
}

void postgres_store::submit_plain(std::vector<plain_submit> group) {
    submit_columns cols;
    std::vector<std::string> new_queues;
    for (const plain_submit& p : group) {
        for (const new_task& t : p.tasks) {
            cols.add(t, p.now);
            if (!known_queues_.contains(t.queue)) {
                new_queues.push_back(t.queue);
            }
        }
    }
    normalize_names(new_queues);
    op o;
    o.answer_last = true;
    if (!new_queues.empty()) {
        o.statements.push_back({"pm_add_queues", k_add_queues, {text_array(new_queues)}});
    }
    o.statements.push_back({"pm_insert_plain", k_insert_plain, cols.take()});
    auto shared = std::make_shared<std::vector<plain_submit>>(std::move(group));
    o.on_rows = [this, shared, new_queues](std::span<pg::rows> r) {
        known_queues_.insert(new_queues.begin(), new_queues.end());
        const auto seqs = seqs_by_id(r.back());
        for (plain_submit& p : *shared) {
            std::vector<task> records;
            records.reserve(p.tasks.size());
            for (new_task& t : p.tasks) {
                auto it = seqs.find(t.id);
                const std::uint64_t seq = it == seqs.end() ? 0 : it->second;
                records.push_back(record_of_submission(std::move(t), p.now, seq));
            }
            std::vector<submitted> out;
            out.reserve(records.size());
            for (const task& t : records) {
                out.push_back(submitted{&t, true});
            }
            p.done(std::span<const submitted>(out));
        }
    };
    o.on_error = [this, shared](error e, const pg::failure* f) {
        for (const plain_submit& p : *shared) {
            *queued_tasks_ -= static_cast<std::int64_t>(p.tasks.size());
        }
        if (f != nullptr && shared->size() > 1) {
            // One request's data broke the joined INSERT: send each on its own to find it.
            for (plain_submit& p : *shared) {
                *queued_tasks_ += static_cast<std::int64_t>(p.tasks.size());
                std::vector<plain_submit> one;
                one.push_back(std::move(p));
                submit_plain(std::move(one));
            }
            return;
        }
        if (f != nullptr && f->sqlstate == "23505") {
            e = error{errc::internal, "duplicate task id"};
        }
        for (plain_submit& p : *shared) {
            p.done(e);
        }
    };
    queued_.push_front(std::move(o));
}

void postgres_store::submit_keyed(std::vector<new_task> tasks, time_point now,
                                  callback<std::span<const submitted>> done) {
    // Keys repeated inside the request are settled here, as the memory store does; the
    // database sees each key once.
    constexpr std::size_t k_new = static_cast<std::size_t>(-1);
    std::vector<std::size_t> same_as(tasks.size(), k_new);
    std::unordered_map<std::string_view, std::size_t> batch_keys;
    std::vector<std::size_t> sent;  // index into tasks of each row sent
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        const new_task& t = tasks[i];
        if (t.idempotency_key) {
            auto [it, inserted] = batch_keys.emplace(*t.idempotency_key, i);
            if (!inserted) {
                if (!same_submission(tasks[it->second], t)) {
                    return done(error{
                        errc::conflict,
                        batch_message(
                            tasks.size(), i,
                            "idempotency_key: used twice in the batch with different bodies")});
                }
                same_as[i] = it->second;
                continue;
            }
        }
        sent.push_back(i);
    }
    submit_columns cols;
    std::vector<std::string> keys;
    std::vector<std::string> new_queues;
    for (std::size_t i : sent) {
        cols.add(tasks[i], now);
        if (tasks[i].idempotency_key) {
            keys.push_back(*tasks[i].idempotency_key);
        }
        if (!known_queues_.contains(tasks[i].queue)) {
            new_queues.push_back(tasks[i].queue);
        }
    }
    normalize_names(new_queues);
    std::vector<param> params = cols.take();
    const std::int64_t room = std::max<std::int64_t>(
        0, static_cast<std::int64_t>(queue_cfg_.task_queue_size) - *queued_tasks_);
    params.push_back(std::to_string(room));
    // Reserved now (the repeats among them are given back with the answer), so that keyed
    // submits in flight together cannot each use the same room.
    const auto reserved = static_cast<std::int64_t>(sent.size());
    *queued_tasks_ += reserved;
    op o;
    o.answer_last = true;
    if (!new_queues.empty()) {
        o.statements.push_back({"pm_add_queues", k_add_queues, {text_array(new_queues)}});
    }
    o.statements.push_back({"pm_insert_keyed", k_insert_keyed, std::move(params)});
    o.statements.push_back({"pm_select_by_keys", k_select_by_keys, {text_array(keys)}});
    struct state {
        std::vector<new_task> tasks;
        std::vector<std::size_t> same_as;
        std::vector<std::size_t> sent;
        callback<std::span<const submitted>> done;
    };
    auto st = std::make_shared<state>(
        state{std::move(tasks), std::move(same_as), std::move(sent), std::move(done)});
    o.on_rows = [this, st, now, new_queues, reserved](std::span<pg::rows> r) {
        known_queues_.insert(new_queues.begin(), new_queues.end());
        *queued_tasks_ -= reserved;  // replaced by the count actually created below
        const pg::rows& inserted = r[r.size() - 2];
        const pg::rows& by_key = r.back();
        const auto seqs = seqs_by_id(inserted);
        std::unordered_map<std::string_view, std::size_t> key_rows;
        for (std::size_t i = 0; i < by_key.size(); ++i) {
            key_rows.emplace(by_key.get(i, 10), i);
        }
        const std::size_t n = st->tasks.size();
        std::vector<task> records(n);
        std::vector<submitted> out(n);
        for (std::size_t i : st->sent) {
            new_task& t = st->tasks[i];
            if (auto it = seqs.find(t.id); it != seqs.end()) {
                records[i] = record_of_submission(std::move(t), now, it->second);
                out[i] = submitted{&records[i], true};
                ++*queued_tasks_;
                continue;
            }
            auto k = t.idempotency_key ? key_rows.find(*t.idempotency_key) : key_rows.end();
            if (k == key_rows.end()) {
                return st->done(error{errc::internal, "submitted task not stored"});
            }
            records[i] = read_task(by_key, k->second);
            if (!same_stored(records[i], t)) {
                // Another worker stored this key with another body at the same moment.
                return st->done(
                    error{errc::conflict, batch_message(n, i,
                                                        "idempotency_key: already used with a "
                                                        "different body")});
            }
            out[i] = submitted{&records[i], false};
        }
        for (std::size_t i = 0; i < n; ++i) {
            if (st->same_as[i] != static_cast<std::size_t>(-1)) {
                out[i] = submitted{out[st->same_as[i]].record, false};
            }
        }
        st->done(std::span<const submitted>(out));
    };
    o.on_error = [this, st, reserved](error e, const pg::failure* f) {
        *queued_tasks_ -= reserved;
        if (f != nullptr && f->sqlstate == "PM409") {
            const std::size_t sent_index = static_cast<std::size_t>(to_int(f->message));
            const std::size_t i = sent_index < st->sent.size() ? st->sent[sent_index] : sent_index;
            e = error{errc::conflict, batch_message(st->tasks.size(), i,
                                                    "idempotency_key: already used with a "
                                                    "different body")};
        } else if (f != nullptr && f->sqlstate == "PM503") {
            e = error{errc::queue_full,
                      "queue is full: task_queue_size pending and scheduled tasks reached"};
        } else if (f != nullptr && f->sqlstate == "23505") {
            e = error{errc::internal, "duplicate task id"};
        }
        st->done(std::move(e));
    };
    enqueue(std::move(o));
}

}  // namespace pm_agent::store::postgres
