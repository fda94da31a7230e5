// pg::pool: the queue of transactions, the connections' slots and their reconnection.

#include "pm_agent/pg/pool.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <deque>
#include <random>
#include <utility>

#include "pg/connection.hpp"
#include "pg/pool_metrics.hpp"
#include "pg/reconnect_delay.hpp"

namespace pm_agent::pg {

namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;

namespace {

// The extended protocol counts parameters in 16 bits; libpq refuses more, and a refusal half way
// through a pipeline would cost the connection, so it is checked before anything is sent.
constexpr std::size_t k_max_params = 65535;

// Past this many failures in a row the delay is at reconnect_max anyway.
constexpr int k_max_counted_failures = 30;

failure make_failure(failure_kind kind, std::string message) {
    failure error;
    error.kind = kind;
    error.message = std::move(message);
    return error;
}

}  // namespace

struct pool::impl final : connection_listener {
    struct waiter {
        std::vector<statement> statements;
        completion done;
        clock_type::time_point submitted;
    };

    // One connection's place in the pool: it survives the connection objects that come and go.
    struct slot {
        explicit slot(asio::io_context& ioc) : retry(ioc) {}
        std::shared_ptr<connection> conn;
        asio::steady_timer retry;
        int failures = 0;  // failed attempts in a row
        bool ready = false;
        bool busy = false;
        completion done;  // of the transaction in flight
        clock_type::time_point submitted;
    };

    enum class answer_kind { committed, statement_error, connection_error, timeout, overloaded };

    impl(asio::io_context& ioc, pool_options options, metrics::registry& registry)
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

    ~impl() override {
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

    void start() {
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

    void transact(std::vector<statement> statements, completion done) {
        const auto now = clock_type::now();
        for (std::size_t i = 0; i < statements.size(); ++i) {
            if (statements[i].params.size() > k_max_params) {
                failure error = make_failure(failure_kind::statement, "too many parameters");
                error.statement_index = i;
                answer(std::move(done), now, outcome{{}, std::move(error)},
                       answer_kind::statement_error);
                return;
            }
        }
        if (waiters_.empty()) {
            if (slot* free = idle_slot()) {
                dispatch(*free, std::move(statements), std::move(done), now);
                return;
            }
        }
        // Down for longer than a waiter may wait: nobody is helped by waiting again.
        if (connected_ == 0 && now - down_since_ >= options_.queue_timeout) {
            answer(std::move(done), now,
                   outcome{{}, make_failure(failure_kind::connection, "database unavailable")},
                   answer_kind::connection_error);
            return;
        }
        if (waiters_.size() >= options_.max_waiters) {
            answer(std::move(done), now,
                   outcome{{},
                           make_failure(failure_kind::overloaded,
                                        "too many transactions waiting for a connection")},
                   answer_kind::overloaded);
            return;
        }
        waiters_.push_back({std::move(statements), std::move(done), now});
        arm_queue_timer();
        update_gauges();
    }

    // connection_listener

    void on_connected(connection& conn) override {
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

    void on_connect_failed(connection& conn, std::string_view error) override {
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

    void on_finished(connection& conn, outcome result) override {
        slot* s = owner(conn);
        if (s == nullptr || !s->busy) {
            return;
        }
        s->busy = false;
        --busy_;
        const answer_kind kind =
            result.error ? answer_kind::statement_error : answer_kind::committed;
        answer(std::move(s->done), s->submitted, std::move(result), kind);
        pump();
    }

    void on_lost(connection& conn, failure_kind kind, std::string_view error) override {
        slot* s = owner(conn);
        if (s == nullptr) {
            return;
        }
        spdlog::warn("event=db_connection_lost slot={} reason={} in_flight={} error=\"{}\"",
                     conn.slot(), kind == failure_kind::timeout ? "timeout" : "broken", s->busy,
                     error);
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

    // The pool's own machinery

    slot* owner(connection& conn) {
        slot* s = conn.slot() < slots_.size() ? slots_[conn.slot()].get() : nullptr;
        return s != nullptr && s->conn.get() == &conn ? s : nullptr;
    }

    slot* idle_slot() {
        for (auto& s : slots_) {
            if (s->ready && !s->busy) {
                return s.get();
            }
        }
        return nullptr;
    }

    void open(std::size_t index) {
        slot& s = *slots_[index];
        s.conn = std::make_shared<connection>(ioc_, *settings_, *this, index);
        s.conn->start();
    }

    void schedule_reconnect(std::size_t index) {
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

    void dispatch(slot& s, std::vector<statement> statements, completion done,
                  clock_type::time_point submitted) {
        s.busy = true;
        s.done = std::move(done);
        s.submitted = submitted;
        ++busy_;
        update_gauges();
        // Last, and through a copy: a synchronous failure calls on_lost, which drops s.conn.
        std::shared_ptr<connection> conn = s.conn;
        conn->run(std::move(statements));
    }

    // Starts queued transactions, oldest first, while connections are free.
    void pump() {
        while (!waiters_.empty()) {
            slot* free = idle_slot();
            if (free == nullptr) {
                break;
            }
            waiter next = std::move(waiters_.front());
            waiters_.pop_front();
            dispatch(*free, std::move(next.statements), std::move(next.done), next.submitted);
        }
        update_gauges();
    }

    // One timer for the whole queue: waiters share one timeout and are in submission order, so
    // the front always expires first. It is never cancelled; a firing that finds the front not
    // due yet (its waiter was served) re-arms for the new front.
    void arm_queue_timer() {
        if (queue_timer_armed_ || waiters_.empty()) {
            return;
        }
        queue_timer_armed_ = true;
        queue_timer_.expires_at(waiters_.front().submitted + options_.queue_timeout);
        queue_timer_.async_wait(
            [alive = std::weak_ptr<int>(alive_), this](const boost::system::error_code& ec) {
                if (alive.expired()) {
                    return;
                }
                queue_timer_armed_ = false;
                if (!ec) {
                    expire_waiters();
                }
                arm_queue_timer();
            });
    }

    void expire_waiters() {
        const auto now = clock_type::now();
        while (!waiters_.empty() && now - waiters_.front().submitted >= options_.queue_timeout) {
            waiter late = std::move(waiters_.front());
            waiters_.pop_front();
            answer(std::move(late.done), late.submitted,
                   outcome{{},
                           make_failure(failure_kind::connection,
                                        connected_ == 0 ? "database unavailable"
                                                        : "no database connection free in time")},
                   answer_kind::connection_error);
        }
        update_gauges();
    }

    // Every answer goes through the loop: never inline from transact(), and never from inside
    // the pool's own bookkeeping, so a completion may call transact() or destroy the pool.
    void answer(completion done, clock_type::time_point submitted, outcome result,
                answer_kind kind) {
        switch (kind) {
            case answer_kind::committed:
                metrics_.committed.inc();
                break;
            case answer_kind::statement_error:
                metrics_.statement_error.inc();
                break;
            case answer_kind::connection_error:
                metrics_.connection_error.inc();
                break;
            case answer_kind::timeout:
                metrics_.timeout.inc();
                break;
            case answer_kind::overloaded:
                metrics_.overloaded.inc();
                break;
        }
        if (kind != answer_kind::overloaded) {
            metrics_.duration.observe(
                std::chrono::duration<double>(clock_type::now() - submitted).count());
        }
        asio::post(ioc_, [alive = std::weak_ptr<int>(alive_), done = std::move(done),
                          result = std::move(result)]() mutable {
            if (alive.expired()) {
                return;  // the pool is gone: dropped uncalled, as its destructor promises
            }
            done(std::move(result));
        });
    }

    void update_gauges() {
        metrics_.connected.set(static_cast<double>(connected_));
        metrics_.busy.set(static_cast<double>(busy_));
        metrics_.waiting.set(static_cast<double>(waiters_.size()));
        metrics_.size.set(static_cast<double>(slots_.size()));
    }

    asio::io_context& ioc_;
    pool_options options_;
    std::optional<connection_settings> settings_;  // empty: the URL did not parse
    pool_metrics metrics_;
    std::vector<std::unique_ptr<slot>> slots_;
    std::deque<waiter> waiters_;
    asio::steady_timer queue_timer_;
    bool queue_timer_armed_ = false;
    std::mt19937_64 rng_;  // reconnect jitter only: no need for a CSPRNG
    std::size_t connected_ = 0;
    std::size_t busy_ = 0;
    clock_type::time_point down_since_;
    bool started_ = false;
    // Handlers and posted completions hold it weakly: expired means the pool is gone.
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

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
