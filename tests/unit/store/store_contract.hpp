#pragma once
// The Store contract suite: one set of tests (store_contract_*_test.cpp) written against the
// abstract store::store and instantiated once per implementation with a store_factory
// (memory_store_contract_test.cpp now; a PostgreSQL instantiation later, whose run_until drives
// its event loop until the callback has fired).

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "pm_agent/config/config.hpp"
#include "pm_agent/store/store.hpp"

namespace pm_agent::store::testing {

struct store_factory {
    std::string name;
    std::function<std::unique_ptr<store>(const config::queue_config&, const config::agents_config&)>
        make;
    /// Runs the back end until `done()` is true (asynchronous stores); may return at once when
    /// callbacks complete inline.
    std::function<void(store&, const std::function<bool()>& done)> run_until;
    /// next_due() names the exact next deadline (the memory store); a store shared between
    /// workers answers with its polling period instead.
    bool exact_next_due = true;
};

inline std::string factory_name(const ::testing::TestParamInfo<store_factory>& info) {
    return info.param.name;
}

/// Copies of what callbacks hand over by pointer.
struct submitted_copy {
    task record;
    bool created = false;
};
struct claim_copy {
    std::vector<task> tasks;
    agent claimer;
};
struct cancel_copy {
    task record;
    bool was_held = false;
};
struct heartbeat_copy {
    agent record;
    std::vector<std::string> cancel;
    bool came_online = false;
};

class store_contract : public ::testing::TestWithParam<store_factory> {
  protected:
    /// A fixed, arbitrary origin for injected time.
    static inline const time_point t0 = time_point(std::chrono::hours(24 * 365 * 50));

    static config::queue_config queue_config() {
        config::queue_config q;
        q.task_queue_size = 10;
        q.retention = std::chrono::seconds(600);
        q.max_attempts = 3;
        q.retry_base = std::chrono::seconds(1);
        q.retry_max = std::chrono::seconds(8);
        return q;
    }
    static config::agents_config agents_config() {
        config::agents_config a;
        a.heartbeat_timeout = std::chrono::seconds(45);
        a.lease_timeout = std::chrono::seconds(30);  // shorter than heartbeat_timeout on purpose
        return a;
    }

    void SetUp() override {
        store_ = GetParam().make(queue_config(), agents_config());
        if (!store_) {
            GTEST_SKIP() << GetParam().name << " store not available (see its factory)";
        }
    }

    static time_point at(double seconds) {
        return t0 + std::chrono::duration_cast<std::chrono::system_clock::duration>(
                        std::chrono::duration<double>(seconds));
    }

    static new_task task_spec(std::string id, std::string queue = "default", int priority = 0,
                              std::vector<std::string> caps = {}) {
        new_task t;
        t.id = std::move(id);
        t.queue = std::move(queue);
        t.type = "work";
        t.payload = {{"n", 1}};
        t.priority = priority;
        t.max_attempts = 3;
        t.required_capabilities = std::move(caps);
        return t;
    }

    static new_agent agent_spec(std::string id, std::vector<std::string> queues = {"default"},
                                std::vector<std::string> caps = {},
                                std::uint32_t max_concurrency = 4) {
        new_agent a;
        a.id = std::move(id);
        a.name = "worker";
        a.queues = std::move(queues);
        a.capabilities = std::move(caps);
        a.max_concurrency = max_concurrency;
        a.worker = "test:1";
        return a;
    }

    // Runs one operation to completion and converts its result while it is valid.
    template <class Out, class In, class Start, class Convert>
    result<Out> await(Start&& start, Convert&& convert) {
        std::optional<result<Out>> out;
        start([&](result<In> r) {
            if (r) {
                out.emplace(convert(*r));
            } else {
                out.emplace(std::move(r).err());
            }
        });
        GetParam().run_until(*store_, [&] { return out.has_value(); });
        if (!out) {
            ADD_FAILURE() << "the store never called back";
            return error{errc::internal, "no callback"};
        }
        return std::move(*out);
    }

    result<std::vector<submitted_copy>> submit(std::vector<new_task> tasks, time_point now);
    result<task> submit_one(new_task t, time_point now);
    result<claim_copy> claim(std::string_view agent_id, std::size_t max, time_point now);
    result<task> start(std::string_view task_id, std::string_view agent_id, time_point now);
    result<task> progress(std::string_view task_id, std::string_view agent_id, double value,
                          time_point now);
    result<task> complete(std::string_view task_id, std::string_view agent_id,
                          boost::json::value value, time_point now);
    result<task> fail(std::string_view task_id, std::string_view agent_id, std::string error,
                      bool retryable, double jitter, time_point now);
    result<cancel_copy> cancel(std::string_view task_id, time_point now);
    result<task> retry(std::string_view task_id, time_point now);
    result<task> get_task(std::string_view task_id);
    result<task_page> list_tasks(task_filter filter);
    result<store_stats> stats();
    result<std::vector<queue_depth>> queue_depths();
    result<agent> register_agent(new_agent a, time_point now);
    result<agent> get_agent(std::string_view agent_id);
    result<agent_page> list_agents(agent_filter filter);
    result<heartbeat_copy> heartbeat(std::string_view agent_id, std::optional<agent_status> status,
                                     time_point now);
    result<agent> renew_liveness(std::string_view agent_id, time_point now);
    result<std::vector<released_task>> deregister(std::string_view agent_id, time_point now);
    result<std::vector<released_task>> release_agent_tasks(std::string_view agent_id,
                                                           time_point now);
    result<reap_outcome> reap(time_point now);

    /// The ids of claimed tasks, in claim order (empty on error).
    std::vector<std::string> claim_ids(std::string_view agent_id, std::size_t max, time_point now);

    std::unique_ptr<store> store_;
};

}  // namespace pm_agent::store::testing
