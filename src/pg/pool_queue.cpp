// pg::pool's transactions: the bounded FIFO queue, dispatching to idle connections, the queue
// timeout, and answering through the loop.

#include <boost/asio/post.hpp>

#include <utility>

#include "pg/pool_impl.hpp"

namespace pm_agent::pg {

namespace asio = boost::asio;

namespace {

// The extended protocol counts parameters in 16 bits; libpq refuses more, and a refusal half way
// through a pipeline would cost the connection, so it is checked before anything is sent.
constexpr std::size_t k_max_params = 65535;

}  // namespace

failure make_failure(failure_kind kind, std::string message) {
    failure error;
    error.kind = kind;
    error.message = std::move(message);
    return error;
}

void pool::impl::transact(std::vector<statement> statements, completion done) {
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

void pool::impl::dispatch(slot& s, std::vector<statement> statements, completion done,
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
void pool::impl::pump() {
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
void pool::impl::arm_queue_timer() {
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

void pool::impl::expire_waiters() {
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
void pool::impl::answer(completion done, clock_type::time_point submitted, outcome result,
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

void pool::impl::update_gauges() {
    metrics_.connected.set(static_cast<double>(connected_));
    metrics_.busy.set(static_cast<double>(busy_));
    metrics_.waiting.set(static_cast<double>(waiters_.size()));
    metrics_.size.set(static_cast<double>(slots_.size()));
}

}  // namespace pm_agent::pg
