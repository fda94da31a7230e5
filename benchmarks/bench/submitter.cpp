// A submitter: one keep-alive connection, one request in flight, paced by --rate when given.
// Every id the server confirms goes into the ledger; every other answer is counted by kind.

#include <boost/json/parse.hpp>

#include "http_client.hpp"
#include "json_text.hpp"
#include "load.hpp"

namespace pm_agent::bench {
namespace {

using clock = std::chrono::steady_clock;
/// After 429 / 503 the server asks for a pause; longer than this would stall a short run.
constexpr double k_max_backoff_s = 1.0;
/// How often a submitter held back by --max-outstanding looks again.
constexpr auto k_outstanding_poll = std::chrono::microseconds(200);
/// Pause after a failed connection before trying again.
constexpr auto k_reconnect_pause = std::chrono::milliseconds(100);

class submitter {
  public:
    submitter(load_context& ctx, int index)
        : ctx_(ctx), index_(index), client_(ctx.io, ctx.server, ctx.opt.token), timer_(ctx.io) {}

    /// `self` keeps the submitter alive for as long as the coroutine runs.
    asio::awaitable<void> run([[maybe_unused]] std::shared_ptr<submitter> self) {
        const auto& opt = ctx_.opt;
        const bool batch = opt.batch > 1;
        const std::string path = batch ? "/api/v1/tasks/batch" : "/api/v1/tasks";
        // Each submitter sends one request per `interval`; offsets spread them over it.
        const double per_request_s = opt.rate > 0 ? opt.submitters * opt.batch / opt.rate : 0.0;
        const auto interval = std::chrono::duration_cast<clock::duration>(
            std::chrono::duration<double>(per_request_s));
        auto next = clock::now() + interval * index_ / std::max(1, opt.submitters);
        while (ctx_.submitting && !ctx_.stopping) {
            if (per_request_s > 0) {
                if (next > clock::now()) {
                    co_await pause_until(next);
                }
                // No catching up in bursts: a late request moves the schedule, and the report
                // shows the rate actually reached.
                next = std::max(next + interval, clock::now());
                if (!ctx_.submitting) {
                    break;
                }
            }
            while (opt.max_outstanding > 0 && ctx_.book.outstanding >= opt.max_outstanding &&
                   ctx_.submitting && !ctx_.stopping) {
                co_await pause_until(clock::now() + k_outstanding_poll);
            }
            const std::int64_t sent = now_ns();
            auto answer = co_await client_.post(path, body(sent, batch));
            ++ctx_.book.submit_requests;
            if (answer.ec) {
                ctx_.book.error("submit_io: " + answer.ec.message());
                co_await pause_until(clock::now() + k_reconnect_pause);
                continue;
            }
            ctx_.book.submit_ns.push_back(now_ns() - sent);
            if (answer.status == 202 || answer.status == 200) {
                record_ids(answer.body, batch);
                continue;
            }
            ctx_.book.error("submit_http_" + std::to_string(answer.status));
            if (answer.retry_after_s > 0) {
                const auto wait = std::min(answer.retry_after_s, k_max_backoff_s);
                co_await pause_until(clock::now() + std::chrono::duration_cast<clock::duration>(
                                                        std::chrono::duration<double>(wait)));
            }
        }
        --ctx_.submitters_active;
    }

  private:
    std::string body(std::int64_t stamp, bool batch) const {
        const auto stamp_text = std::to_string(stamp);
        if (!batch) {
            return ctx_.task_prefix + stamp_text + ctx_.task_suffix;
        }
        std::string out = R"({"tasks":[)";
        for (int i = 0; i < ctx_.opt.batch; ++i) {
            if (i > 0) {
                out.push_back(',');
            }
            out += ctx_.task_prefix;
            out += stamp_text;
            out += ctx_.task_suffix;
        }
        out += "]}";
        return out;
    }

    void record_ids(const std::string& text, bool batch) {
        boost::system::error_code ec;
        auto answer = boost::json::parse(text, ec);
        if (!batch) {
            if (auto id = ec ? std::nullopt : string_at(answer, "task_id")) {
                ctx_.book.confirmed(*id);
                return;
            }
            ctx_.book.error("submit_bad_answer");
            return;
        }
        const auto* object = ec ? nullptr : answer.if_object();
        const auto* ids = object != nullptr ? object->if_contains("task_ids") : nullptr;
        if (ids == nullptr || !ids->is_array() ||
            ids->get_array().size() != static_cast<std::size_t>(ctx_.opt.batch)) {
            ctx_.book.error("submit_bad_answer");
            return;
        }
        for (const auto& id : ids->get_array()) {
            if (!id.is_string()) {
                ctx_.book.error("submit_bad_answer");
                continue;
            }
            ctx_.book.confirmed(std::string_view(id.get_string().data(), id.get_string().size()));
        }
    }

    asio::awaitable<void> pause_until(clock::time_point when) {
        timer_.expires_at(when);
        co_await timer_.async_wait(k_tuple);
    }

    load_context& ctx_;
    int index_;
    http_client client_;
    asio::steady_timer timer_;
};

}  // namespace

void spawn_submitter(load_context& ctx, int index) {
    ++ctx.submitters_active;
    auto s = std::make_shared<submitter>(ctx, index);
    asio::co_spawn(ctx.io, s->run(s), report_exception);
}

}  // namespace pm_agent::bench
