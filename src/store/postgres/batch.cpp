// Group commit: every op queued during one loop turn goes to the database as one transaction
// (one round trip). While max_in_flight transactions are out, ops wait and leave together when
// one returns, so batches grow with load instead of queueing more round trips. A statement
// failure rolls back the whole transaction: the op it belongs to gets the error and the others
// are sent again (they did nothing).
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <spdlog/spdlog.h>

#include "pm_agent/process/identity.hpp"
#include "store/postgres/postgres_store.hpp"

namespace pm_agent::store::postgres {

namespace {

/// Serialization failures and deadlocks between workers are nobody's fault: try again. So is a
/// prepared statement the server lost (26000 / 42P05: the pool replaces that connection).
bool is_transient(const pg::failure& f) {
    return f.sqlstate == "40001" || f.sqlstate == "40P01" || f.sqlstate == "26000" ||
           f.sqlstate == "42P05";
}

/// The server gave up for lack of time or resources: the caller may retry later (503).
bool is_busy(const pg::failure& f) {
    return f.sqlstate == "57014" || f.sqlstate == "55P03" || f.sqlstate.starts_with("53");
}

constexpr int k_max_retries = 3;

}  // namespace

postgres_store::postgres_store(boost::asio::io_context& ioc, pg::pool& db,
                               const config::queue_config& queue,
                               const config::agents_config& agents, postgres_options options)
    : ioc_(ioc), db_(db), queue_cfg_(queue), agents_cfg_(agents), options_(options) {
    options_.max_in_flight = std::max<std::size_t>(1, options_.max_in_flight);
    options_.max_batch = std::max<std::size_t>(1, options_.max_batch);
    worker_name_ = options_.worker_name.empty() ? process::worker_identity() : options_.worker_name;
}

postgres_store::~postgres_store() {
    *alive_ = false;
}

void postgres_store::enqueue(op o) {
    queued_.push_back(std::move(o));
    schedule_flush();
}

void postgres_store::run_direct(op o) {
    auto statements = std::move(o.statements);
    db_.transact(
        std::move(statements), [this, alive = alive_, o = std::move(o)](pg::outcome out) mutable {
            if (!*alive) {
                return;
            }
            ++visible_epoch_;
            if (!out.error) {
                o.on_rows(std::span<pg::rows>(out.results));
            } else {
                const bool statement =
                    out.error->kind == pg::failure_kind::statement && !is_busy(*out.error);
                o.on_error(statement ? error{errc::internal, "internal error"}
                                     : error{errc::unavailable, "database unavailable; try again"},
                           statement ? &*out.error : nullptr);
            }
        });
}

void postgres_store::schedule_flush() {
    if (flush_scheduled_) {
        return;
    }
    flush_scheduled_ = true;
    // At the end of this loop turn, so that everything arriving meanwhile joins the batch.
    boost::asio::post(ioc_, [this, alive = alive_] {
        if (*alive) {
            flush_scheduled_ = false;
            flush();
        }
    });
}

void postgres_store::flush() {
    auto may_start = [this] {
        if (in_flight_ == 0) {
            return true;
        }
        std::size_t rows = 0;
        for (const plain_submit& p : plain_submits_) {
            rows += p.tasks.size();
        }
        return in_flight_ < options_.max_in_flight && rows >= options_.parallel_rows;
    };
    while ((!queued_.empty() || !plain_submits_.empty() || !completes_.empty() ||
            !heartbeats_.empty() || !light_heartbeats_.empty()) &&
           may_start()) {
        if (!heartbeats_.empty()) {
            heartbeat_joined(std::move(heartbeats_));  // queues one op at the front
            heartbeats_.clear();
        }
        if (!light_heartbeats_.empty()) {
            heartbeat_light(std::move(light_heartbeats_));  // queues one op at the front
            light_heartbeats_.clear();
        }
        if (!completes_.empty()) {
            complete_joined(std::move(completes_));  // queues one op at the front
            completes_.clear();
        }
        if (!plain_submits_.empty()) {
            submit_plain(std::move(plain_submits_));  // queues one op at the front
            plain_submits_.clear();
        }
        std::vector<op> ops;
        std::vector<pg::statement> statements;
        std::vector<std::size_t> first;
        while (!queued_.empty() && ops.size() < options_.max_batch) {
            op& o = queued_.front();
            first.push_back(statements.size());
            // Copied: an op whose batch failed for another op's sake is sent again.
            statements.insert(statements.end(), o.statements.begin(), o.statements.end());
            ops.push_back(std::move(o));
            queued_.pop_front();
        }
        if (ops.empty()) {
            return;
        }
        ++in_flight_;
        db_.transact(std::move(statements), [this, alive = alive_, ops = std::move(ops),
                                             first = std::move(first)](pg::outcome out) mutable {
            if (*alive) {
                on_transaction(std::move(ops), std::move(first), std::move(out));
            }
        });
    }
}

void postgres_store::on_transaction(std::vector<op> ops, std::vector<std::size_t> first,
                                    pg::outcome out) {
    --in_flight_;
    ++visible_epoch_;
    if (!out.error) {
        for (const bool last : {false, true}) {
            for (std::size_t i = 0; i < ops.size(); ++i) {
                if (ops[i].answer_last != last) {
                    continue;
                }
                const std::size_t begin = first[i];
                const std::size_t end = i + 1 < ops.size() ? first[i + 1] : out.results.size();
                ops[i].on_rows(std::span<pg::rows>(out.results.data() + begin, end - begin));
            }
        }
    } else if (out.error->kind != pg::failure_kind::statement) {
        spdlog::warn("event=db_transaction_failed ops={} error=\"{}\"", ops.size(),
                     out.error->message);
        for (op& o : ops) {
            o.on_error(error{errc::unavailable, "database unavailable; try again"}, nullptr);
        }
    } else {
        // Find the op whose statement failed; the rest did nothing and go again first.
        const std::size_t bad = out.error->statement_index;
        std::size_t culprit = ops.size() - 1;
        for (std::size_t i = 0; i + 1 < ops.size(); ++i) {
            if (bad < first[i + 1]) {
                culprit = i;
                break;
            }
        }
        std::vector<op> again;
        for (std::size_t i = 0; i < ops.size(); ++i) {
            if (i == culprit && !is_transient(*out.error)) {
                continue;
            }
            again.push_back(std::move(ops[i]));
        }
        spdlog::debug("event=db_statement_failed sqlstate={} error=\"{}\"", out.error->sqlstate,
                      out.error->message);
        if (!is_transient(*out.error)) {
            op failed = std::move(ops[culprit]);
            if (is_busy(*out.error)) {
                failed.on_error(error{errc::unavailable, "database busy; try again"}, nullptr);
            } else {
                failed.on_error(error{errc::internal, "internal error"}, &*out.error);
            }
        }
        requeue_front(again);
    }
    flush();
}

void postgres_store::requeue_front(std::vector<op>& ops) {
    for (auto it = ops.rbegin(); it != ops.rend(); ++it) {
        if (++it->retries > k_max_retries) {
            it->on_error(error{errc::unavailable, "database busy; try again"}, nullptr);
            continue;
        }
        queued_.push_front(std::move(*it));
    }
    if (!queued_.empty()) {
        schedule_flush();
    }
}

}  // namespace pm_agent::store::postgres
