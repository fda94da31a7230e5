// pg::pool: its connections' slots (opening, losing, reconnecting) and the public facade.

#include "pm_agent/pg/pool.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "pg/pool_impl.hpp"
#include "pg/reconnect_delay.hpp"

namespace pm_agent::pg {

namespace asio = boost::asio;

namespace {

// Past this many failures in a row the delay is at reconnect_max anyway.
constexpr int k_max_counted_failures = 30;

}  // namespace

pool::impl::impl(asio::io_context& ioc, pool_options options, metrics::registry& registry)
    : ioc_(ioc),
      options_(std::move(options)),
      metrics_(registry),
      queue_timer_(ioc),
      rng_(std::random_device{}()),
      down_since_(clock_type::now()) {
    if (std::optional<conninfo> info = conninfo::parse(options_.url)) {
        settings_.emplace(connection_settings{std::move(*info), options_.connect_timeout,
                                              options_.statement_timeout,
                                              options_.prepared_statements});
    }
    options_.size = std::max<std::size_t>(options_.size, 1);
    for (std::size_t i = 0; i < options_.size; ++i) {
        slots_.push_back(std::make_unique<slot>(ioc_));
    }
    update_gauges();
}

pool::impl::~impl() {
    alive_.reset();  // posted completions and timer handlers turn into no-ops
    for (auto& s : slots_) {
        if (s->conn) {
            s->conn->close();
        }
    }
    // The registry outlives us: leave no stale numbers behind.
    metrics_.connected.set(0);
    metrics_.busy.set(0);
    metrics_.waiting.set(0);
    metrics_.size.set(0);
}

void pool::impl::start() {
    if (started_) {
        return;
    }
    started_ = true;
    down_since_ = clock_type::now();
    if (!settings_) {
        // The reason is not logged: libpq's message may quote the URL, password included.
        spdlog::error("event=db_url_invalid");
        return;
    }
    for (std::size_t i = 0; i < slots_.size(); ++i) {
        open(i);
    }
}

void pool::impl::on_connected(connection& conn) {
    slot* s = owner(conn);
    if (s == nullptr) {
        return;
    }
    if (s->failures > 0) {
        spdlog::info("event=db_connected slot={} after_failures={}", conn.slot(), s->failures);
    }
    s->ready = true;
    s->failures = 0;
    if (connected_++ == 0) {
        spdlog::info("event=db_pool_up");
    }
    pump();
}

void pool::impl::on_connect_failed(connection& conn, std::string_view error) {
    slot* s = owner(conn);
    if (s == nullptr) {
        return;
    }
    metrics_.connect_failures.inc();
    s->failures = std::min(s->failures + 1, k_max_counted_failures);
    // The first failure of a streak is worth a warning; the retries every few seconds after
    // it would only flood the log.
    if (s->failures == 1) {
        spdlog::warn("event=db_connect_failed slot={} error=\"{}\"", conn.slot(), error);
    } else {
        spdlog::debug("event=db_connect_failed slot={} failures={} error=\"{}\"", conn.slot(),
                      s->failures, error);
    }
    s->conn.reset();
    schedule_reconnect(conn.slot());
}

void pool::impl::on_finished(connection& conn, outcome result) {
    slot* s = owner(conn);
    if (s == nullptr || !s->busy) {
        return;
    }
    s->busy = false;
    --busy_;
    const answer_kind kind = result.error ? answer_kind::statement_error : answer_kind::committed;
    answer(std::move(s->done), s->submitted, std::move(result), kind);
    pump();
}

void pool::impl::on_lost(connection& conn, failure_kind kind, std::string_view error) {
    slot* s = owner(conn);
    if (s == nullptr) {
        return;
    }
    spdlog::warn("event=db_connection_lost slot={} reason={} in_flight={} error=\"{}\"",
                 conn.slot(), kind == failure_kind::timeout ? "timeout" : "broken", s->busy, error);
    if (s->busy) {
        s->busy = false;
        --busy_;
        const bool timed_out = kind == failure_kind::timeout;
        answer(std::move(s->done), s->submitted,
               outcome{{},
                       make_failure(kind, timed_out ? "database did not answer in time"
                                                    : "database connection lost")},
               timed_out ? answer_kind::timeout : answer_kind::connection_error);
    }
    if (s->ready) {
        s->ready = false;
        if (--connected_ == 0) {
            down_since_ = clock_type::now();
            spdlog::warn("event=db_pool_down");
        }
    }
    s->conn.reset();
    s->failures = 0;  // it worked a moment ago: retry soon
    schedule_reconnect(conn.slot());
    update_gauges();
}

// Null for a connection the slot no longer holds (replaced or dropped).
pool::impl::slot* pool::impl::owner(connection& conn) {
    slot* s = conn.slot() < slots_.size() ? slots_[conn.slot()].get() : nullptr;
    return s != nullptr && s->conn.get() == &conn ? s : nullptr;
}

pool::impl::slot* pool::impl::idle_slot() {
    for (auto& s : slots_) {
        if (s->ready && !s->busy) {
            return s.get();
        }
    }
    return nullptr;
}

void pool::impl::open(std::size_t index) {
    slot& s = *slots_[index];
    s.conn = std::make_shared<connection>(ioc_, *settings_, *this, index);
    s.conn->start();
}

void pool::impl::schedule_reconnect(std::size_t index) {
    slot& s = *slots_[index];
    const double jitter = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
    s.retry.expires_after(
        reconnect_delay(options_.reconnect_min, options_.reconnect_max, s.failures, jitter));
    s.retry.async_wait(
        [alive = std::weak_ptr<int>(alive_), this, index](const boost::system::error_code& ec) {
            if (alive.expired() || ec) {
                return;
            }
            open(index);
        });
}

pool::pool(asio::io_context& ioc, pool_options options, metrics::registry& registry)
    : impl_(std::make_unique<impl>(ioc, std::move(options), registry)) {}

pool::~pool() = default;

void pool::start() {
    impl_->start();
}

void pool::transact(std::vector<statement> statements, completion done) {
    impl_->transact(std::move(statements), std::move(done));
}

bool pool::healthy() const {
    return impl_->connected_ > 0;
}

pool_status pool::status() const {
    return {impl_->connected_, impl_->busy_, impl_->waiters_.size()};
}

}  // namespace pm_agent::pg
