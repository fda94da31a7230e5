#include "engine_fixture.hpp"

namespace pm_agent::core::testing {

namespace {

// Captures a task-pointer result as a copy.
struct task_capture {
    std::optional<store::result<store::task>>* out;
    void operator()(store::result<const store::task*> r) {
        if (r) {
            out->emplace(**r);
        } else {
            out->emplace(std::move(r).err());
        }
    }
};

store::result<store::task> unwrap(std::optional<store::result<store::task>>& r) {
    if (!r) {
        ADD_FAILURE() << "no callback";
        return store::error{store::errc::internal, "no callback"};
    }
    return std::move(*r);
}

}  // namespace

std::string engine_test::add_agent(std::vector<std::string> queues, std::vector<std::string> caps,
                                   std::int64_t max_concurrency) {
    agent_spec spec;
    spec.name = "worker";
    spec.queues = std::move(queues);
    spec.capabilities = std::move(caps);
    spec.max_concurrency = max_concurrency;
    std::string id;
    engine_.register_agent(std::move(spec), now_, [&](store::result<registration> r) {
        ASSERT_TRUE(r) << r.err().message;
        id = r->agent->id;
    });
    return id;
}

std::string engine_test::add_ws_agent(fake_sink& sink, std::uint32_t credit,
                                      std::vector<std::string> queues,
                                      std::vector<std::string> caps, std::int64_t max_concurrency) {
    const std::string id = add_agent(std::move(queues), std::move(caps), max_concurrency);
    bool attached = false;
    engine_.attach(id, sink, now_, [&](store::result<const store::agent*> r) {
        ASSERT_TRUE(r);
        attached = true;
    });
    EXPECT_TRUE(attached);
    if (credit > 0) {
        EXPECT_TRUE(engine_.ready(id, credit, now_));
    }
    return id;
}

store::result<store::submitted> engine_test::submit_spec(task_spec spec) {
    std::optional<store::result<store::submitted>> out;
    engine_.submit(std::move(spec), now_,
                   [&](store::result<store::submitted> r) { out.emplace(std::move(r)); });
    if (!out) {
        ADD_FAILURE() << "no callback";
        return store::error{store::errc::internal, "no callback"};
    }
    return std::move(*out);
}

std::string engine_test::submit(std::string queue, int priority, std::vector<std::string> caps) {
    task_spec spec;
    spec.type = "work";
    spec.queue = std::move(queue);
    spec.priority = priority;
    spec.required_capabilities = std::move(caps);
    auto r = submit_spec(std::move(spec));
    EXPECT_TRUE(r) << (r ? "" : r.err().message);
    return r ? r->record->id : std::string();
}

std::shared_ptr<poll_result> engine_test::poll(const std::string& agent_id, std::size_t max_tasks,
                                               std::chrono::milliseconds wait, request_id* id) {
    auto out = std::make_shared<poll_result>();
    const request_id rid =
        engine_.request_tasks(agent_id, max_tasks, wait, now_,
                              [out](store::result<std::span<const store::task* const>> r) {
                                  EXPECT_FALSE(out->answered) << "a long poll was answered twice";
                                  out->answered = true;
                                  if (!r) {
                                      out->error = r.err();
                                      return;
                                  }
                                  for (const store::task* t : *r) {
                                      out->tasks.push_back(*t);
                                  }
                              });
    if (id != nullptr) {
        *id = rid;
    }
    return out;
}

store::result<store::task> engine_test::get(const std::string& task_id) {
    std::optional<store::result<store::task>> out;
    engine_.get_task(task_id, task_capture{&out});
    return unwrap(out);
}

store::result<store::task> engine_test::complete(const std::string& task_id,
                                                 const std::string& agent_id) {
    std::optional<store::result<store::task>> out;
    engine_.complete({task_id, agent_id}, boost::json::value{{"done", true}}, now_,
                     task_capture{&out});
    return unwrap(out);
}

store::result<store::task> engine_test::fail(const std::string& task_id,
                                             const std::string& agent_id, bool retryable) {
    std::optional<store::result<store::task>> out;
    engine_.fail({task_id, agent_id}, "it broke", retryable, now_, task_capture{&out});
    return unwrap(out);
}

store::result<store::task> engine_test::cancel(const std::string& task_id) {
    std::optional<store::result<store::task>> out;
    engine_.cancel(task_id, now_, task_capture{&out});
    return unwrap(out);
}

store::result<std::vector<std::string>> engine_test::heartbeat(
    const std::string& agent_id, std::optional<store::agent_status> status) {
    std::optional<store::result<std::vector<std::string>>> out;
    engine_.heartbeat(agent_id, status, now_, [&](store::result<std::vector<std::string>> r) {
        out.emplace(std::move(r));
    });
    if (!out) {
        ADD_FAILURE() << "no callback";
        return store::error{store::errc::internal, "no callback"};
    }
    return std::move(*out);
}

std::uint64_t engine_test::count(store::task_status status) {
    std::uint64_t n = 0;
    engine_.stats([&](store::result<store::store_stats> r) {
        ASSERT_TRUE(r);
        n = r->tasks[static_cast<std::size_t>(status)];
    });
    return n;
}

}  // namespace pm_agent::core::testing
