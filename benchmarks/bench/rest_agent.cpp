// A REST agent of API.md: POST /agents/register, then --concurrency slots, each a keep-alive
// connection that long-polls /tasks/request for one task, thinks, and POSTs /tasks/{id}/complete.

#include <boost/json/parse.hpp>

#include "http_client.hpp"
#include "json_text.hpp"
#include "load.hpp"

namespace pm_agent::bench {
namespace {

namespace json = boost::json;
using clock = std::chrono::steady_clock;

/// Long-poll wait per request: short enough that a slot notices the end of the run.
constexpr int k_wait_s = 2;
constexpr auto k_error_pause = std::chrono::milliseconds(100);

class rest_agent {
  public:
    rest_agent(load_context& ctx, int index) : ctx_(ctx), index_(index) {}

    /// `self` keeps the agent alive for as long as any of its coroutines runs.
    asio::awaitable<void> run(std::shared_ptr<rest_agent> self) {
        http_client client(ctx_.io, ctx_.server, ctx_.opt.registration_token);
        const std::string body = R"({"name":"bench-rest-)" + std::to_string(index_) +
                                 R"(","max_concurrency":)" + std::to_string(ctx_.opt.concurrency) +
                                 "}";
        auto answer = co_await client.post("/api/v1/agents/register", body);
        if (answer.ec || answer.status != 201) {
            ctx_.book.error(answer.ec ? "rest_register: " + answer.ec.message()
                                      : "rest_register_http_" + std::to_string(answer.status));
            agent_setup_done(ctx_, false);
            co_return;
        }
        boost::system::error_code ec;
        auto registered = json::parse(answer.body, ec);
        auto id = ec ? std::nullopt : string_at(registered, "agent_id");
        auto token = ec ? std::nullopt : string_at(registered, "token");
        if (!id || !token) {
            ctx_.book.error("rest_register_bad_answer");
            agent_setup_done(ctx_, false);
            co_return;
        }
        agent_id_ = std::string(*id);
        token_ = std::string(*token);
        agent_setup_done(ctx_, true);
        for (int slot = 0; slot < ctx_.opt.concurrency; ++slot) {
            asio::co_spawn(ctx_.io, slot_loop(self), report_exception);
        }
        if (ctx_.opt.heartbeat_ms > 0) {
            co_await heartbeat_loop();
        }
    }

  private:
    asio::awaitable<void> slot_loop([[maybe_unused]] std::shared_ptr<rest_agent> self) {
        http_client client(ctx_.io, ctx_.server, token_);
        asio::steady_timer timer(ctx_.io);
        const std::string request = R"({"agent_id":)" + quoted(agent_id_) +
                                    R"(,"max_tasks":1,"wait_s":)" + std::to_string(k_wait_s) + "}";
        while (!ctx_.stopping) {
            auto answer = co_await client.post("/api/v1/tasks/request", request);
            if (ctx_.stopping) {
                break;
            }
            if (answer.ec || answer.status != 200) {
                ctx_.book.error(answer.ec ? "rest_request: " + answer.ec.message()
                                          : "rest_request_http_" + std::to_string(answer.status));
                timer.expires_after(k_error_pause);
                co_await timer.async_wait(k_tuple);
                continue;
            }
            const std::int64_t received = now_ns();
            boost::system::error_code ec;
            auto tasks_answer = json::parse(answer.body, ec);
            const auto* object = ec ? nullptr : tasks_answer.if_object();
            const auto* tasks = object != nullptr ? object->if_contains("tasks") : nullptr;
            if (tasks == nullptr || !tasks->is_array()) {
                ctx_.book.error("rest_request_bad_answer");
                continue;
            }
            for (const auto& task : tasks->get_array()) {
                co_await work(client, timer, task, received);
            }
        }
    }

    asio::awaitable<void> work(http_client& client, asio::steady_timer& timer,
                               const json::value& task, std::int64_t received) {
        auto id = string_at(task, "id");
        auto stamp = submit_stamp(task);
        if (!id || !stamp) {
            ctx_.book.error("rest_bad_task");
            co_return;
        }
        const std::string task_id(*id);
        ctx_.book.dispatch_ns.push_back(received - *stamp);
        ctx_.book.delivered(task_id);
        ++ctx_.book.agent_in_flight;
        if (ctx_.opt.think_ms > 0) {
            timer.expires_after(std::chrono::duration_cast<clock::duration>(
                std::chrono::duration<double, std::milli>(ctx_.opt.think_ms)));
            co_await timer.async_wait(k_tuple);
        }
        auto answer =
            co_await client.post("/api/v1/tasks/" + task_id + "/complete", R"({"result":null})");
        --ctx_.book.agent_in_flight;
        if (answer.ec) {
            ctx_.book.error("rest_complete: " + answer.ec.message());
            co_return;
        }
        if (answer.status != 200) {
            ctx_.book.error("rest_complete_http_" + std::to_string(answer.status));
            co_return;
        }
        boost::system::error_code ec;
        auto done = json::parse(answer.body, ec);
        const auto status = ec ? std::nullopt : string_at(done, "status");
        if (status != std::string_view("succeeded")) {
            ctx_.book.error("rest_complete_status_" + std::string(status.value_or("?")));
            co_return;
        }
        ctx_.book.e2e_ns.push_back(now_ns() - *stamp);
        ctx_.book.acknowledged(task_id);
    }

    asio::awaitable<void> heartbeat_loop() {
        http_client client(ctx_.io, ctx_.server, token_);
        const auto period = std::chrono::duration_cast<clock::duration>(
            std::chrono::duration<double, std::milli>(ctx_.opt.heartbeat_ms));
        auto next = clock::now() + period * ((index_ * 7919) % 1000) / 1000;
        asio::steady_timer timer(ctx_.io);
        const std::string path = "/api/v1/agents/" + agent_id_ + "/heartbeat";
        while (!ctx_.stopping) {
            timer.expires_at(next);
            co_await timer.async_wait(k_tuple);
            next += period;
            ++ctx_.book.heartbeats_sent;
            const std::int64_t sent = now_ns();
            auto answer = co_await client.post(path, "{}");
            if (answer.ec || answer.status != 200) {
                ctx_.book.error(answer.ec ? "rest_heartbeat: " + answer.ec.message()
                                          : "rest_heartbeat_http_" + std::to_string(answer.status));
                continue;
            }
            ctx_.book.heartbeat_ns.push_back(now_ns() - sent);
        }
    }

    static std::string quoted(std::string_view text) {
        std::string out;
        append_quoted(out, text);
        return out;
    }

    load_context& ctx_;
    int index_;
    std::string agent_id_;
    std::string token_;
};

}  // namespace

void spawn_rest_agent(load_context& ctx, int index) {
    auto agent = std::make_shared<rest_agent>(ctx, index);
    asio::co_spawn(ctx.io, agent->run(agent), report_exception);
}

}  // namespace pm_agent::bench
