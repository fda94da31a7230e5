#pragma once
// Engine tests run over the real memory store with a fake agent_sink, injected time and a
// seeded random source. Every memory store operation completes inline, so a helper's result is
// available as soon as the engine call returns.

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pm_agent/core/engine.hpp"
#include "pm_agent/store/memory_store.hpp"

namespace pm_agent::core::testing {

/// Records what the engine pushes to one WebSocket agent.
class fake_sink final : public agent_sink {
  public:
    void push_task(const store::task& task) override { tasks.push_back(task); }
    void push_cancel(std::string_view task_id) override { cancels.emplace_back(task_id); }
    void deregistered() override { ++deregistered_calls; }
    void replaced() override { ++replaced_calls; }

    std::vector<std::string> task_ids() const {
        std::vector<std::string> ids;
        for (const store::task& t : tasks) {
            ids.push_back(t.id);
        }
        return ids;
    }

    std::vector<store::task> tasks;
    std::vector<std::string> cancels;
    int deregistered_calls = 0;
    int replaced_calls = 0;
};

/// The outcome of a long poll, filled when its callback runs.
struct poll_result {
    bool answered = false;
    std::optional<store::error> error;
    std::vector<store::task> tasks;
};

class engine_test : public ::testing::Test {
  protected:
    static inline const time_point t0 = time_point(std::chrono::hours(24 * 365 * 50));

    static engine_options options() {
        engine_options o;
        o.queue.task_queue_size = 1000;
        o.queue.retention = std::chrono::seconds(3600);
        o.queue.max_attempts = 3;
        o.queue.retry_base = std::chrono::seconds(1);
        o.queue.retry_max = std::chrono::seconds(60);
        o.agents.heartbeat_timeout = std::chrono::seconds(45);
        o.agents.lease_timeout = std::chrono::seconds(60);
        return o;
    }

    engine_test()
        : store_(store::make_memory_store(options().queue, options().agents)),
          rng_(7),
          engine_(*store_, options(), rng_) {
        engine_.set_timer_hook([this](time_point t) { hooks_.push_back(t); });
    }

    void advance(std::chrono::milliseconds d) {
        now_ += d;
        engine_.tick(now_);
    }
    void advance_s(double seconds) {
        advance(std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000)));
    }

    /// Registers an agent and returns its id.
    std::string add_agent(std::vector<std::string> queues = {"default"},
                          std::vector<std::string> caps = {}, std::int64_t max_concurrency = 4);
    /// Registers and attaches an agent with `credit` slots granted.
    std::string add_ws_agent(fake_sink& sink, std::uint32_t credit,
                             std::vector<std::string> queues = {"default"},
                             std::vector<std::string> caps = {}, std::int64_t max_concurrency = 4);
    /// Submits a task and returns its id ("" and a test failure on error).
    std::string submit(std::string queue = "default", int priority = 0,
                       std::vector<std::string> caps = {});
    store::result<store::submitted> submit_spec(task_spec spec);
    /// A long poll; the result fills in when the engine answers.
    std::shared_ptr<poll_result> poll(const std::string& agent_id, std::size_t max_tasks,
                                      std::chrono::milliseconds wait, request_id* id = nullptr);
    store::result<store::task> get(const std::string& task_id);
    store::result<store::task> complete(const std::string& task_id, const std::string& agent_id);
    store::result<store::task> fail(const std::string& task_id, const std::string& agent_id,
                                    bool retryable = true);
    store::result<store::task> cancel(const std::string& task_id);
    store::result<std::vector<std::string>> heartbeat(
        const std::string& agent_id, std::optional<store::agent_status> status = std::nullopt);
    std::uint64_t count(store::task_status status);

    time_point now_ = t0;
    std::unique_ptr<store::store> store_;
    seeded_random rng_;
    engine engine_;
    std::vector<time_point> hooks_;
};

}  // namespace pm_agent::core::testing
