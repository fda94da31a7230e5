#pragma once
/// The pool's insides, shared by pool.cpp (connections: opening, losing, reconnecting) and
/// pool_queue.cpp (transactions: queueing, dispatching, answering).

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "pg/connection.hpp"
#include "pg/pool_metrics.hpp"
#include "pm_agent/pg/pool.hpp"

namespace pm_agent::pg {

using clock_type = std::chrono::steady_clock;

struct pool::impl final : connection_listener {
    struct waiter {
        std::vector<statement> statements;
        completion done;
        clock_type::time_point submitted;
    };

    // One connection's place in the pool: it survives the connection objects that come and go.
    struct slot {
        explicit slot(boost::asio::io_context& ioc) : retry(ioc) {}
        std::shared_ptr<connection> conn;
        boost::asio::steady_timer retry;
        int failures = 0;  // failed attempts in a row
        bool ready = false;
        bool busy = false;
        completion done;  // of the transaction in flight
        clock_type::time_point submitted;
    };

    enum class answer_kind { committed, statement_error, connection_error, timeout, overloaded };

    impl(boost::asio::io_context& ioc, pool_options options, metrics::registry& registry);
    ~impl() override;

    void start();

    // connection_listener (pool.cpp)
    void on_connected(connection& conn) override;
    void on_connect_failed(connection& conn, std::string_view error) override;
    void on_finished(connection& conn, outcome result) override;
    void on_lost(connection& conn, failure_kind kind, std::string_view error) override;

    // Connections (pool.cpp)
    slot* owner(connection& conn);
    slot* idle_slot();
    void open(std::size_t index);
    void schedule_reconnect(std::size_t index);

    // Transactions (pool_queue.cpp)
    void transact(std::vector<statement> statements, completion done);
    void dispatch(slot& s, std::vector<statement> statements, completion done,
                  clock_type::time_point submitted);
    void pump();
    void arm_queue_timer();
    void expire_waiters();
    void answer(completion done, clock_type::time_point submitted, outcome result,
                answer_kind kind);
    void update_gauges();

    boost::asio::io_context& ioc_;
    pool_options options_;
    std::optional<connection_settings> settings_;  // empty: the URL did not parse
    pool_metrics metrics_;
    std::vector<std::unique_ptr<slot>> slots_;
    std::deque<waiter> waiters_;
    boost::asio::steady_timer queue_timer_;
    bool queue_timer_armed_ = false;
    std::mt19937_64 rng_;  // reconnect jitter only: no need for a CSPRNG
    std::size_t connected_ = 0;
    std::size_t busy_ = 0;
    clock_type::time_point down_since_;
    bool started_ = false;
    // Handlers and posted completions hold it weakly: expired means the pool is gone.
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

/// A failure of `kind` with no statement and no SQLSTATE.
failure make_failure(failure_kind kind, std::string message);

}  // namespace pm_agent::pg
