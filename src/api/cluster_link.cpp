// Wake-ups, cancel notices and presence between workers over Redis (see cluster_link.hpp).
#include "api/cluster_link.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <spdlog/spdlog.h>

#include "pm_agent/metrics/registry.hpp"
#include "pm_agent/redis/client.hpp"

namespace pm_agent::api {
namespace {

constexpr std::string_view k_presence_prefix = "pm:presence:";

/// "<worker>\n<name>": the sender, so that a worker ignores its own messages.
std::string message(std::string_view worker, std::string_view name) {
    std::string out;
    out.reserve(worker.size() + 1 + name.size());
    out.append(worker).push_back('\n');
    out.append(name);
    return out;
}

/// The unix milliseconds a text starts with ("1764800000000 w1" -> 1764800000000).
std::optional<std::int64_t> leading_millis(std::string_view text) {
    std::int64_t ms = 0;
    std::size_t i = 0;
    for (; i < text.size() && i < 18 && text[i] >= '0' && text[i] <= '9'; ++i) {
        ms = ms * 10 + (text[i] - '0');
    }
    if (i == 0) {
        return std::nullopt;
    }
    return ms;
}

std::optional<std::int64_t> read_millis(const redis::reply& r) {
    if (r.kind != redis::reply::type::string) {
        return std::nullopt;
    }
    return leading_millis(r.str);
}

}  // namespace

cluster_link::cluster_link(boost::asio::io_context& ioc, redis::client& redis, core::engine& engine,
                           std::string worker_id, std::chrono::seconds presence_ttl,
                           metrics::registry& registry, std::chrono::milliseconds wake_window)
    : ioc_(ioc),
      redis_(redis),
      engine_(engine),
      worker_id_(std::move(worker_id)),
      ttl_seconds_(std::to_string(std::max<std::int64_t>(presence_ttl.count(), 1))),
      wakes_(wake_window),
      wake_timer_(ioc),
      hunger_timer_(ioc),
      alive_(std::make_shared<bool>(true)),
      published_(registry
                     .counter("pm_agent_cluster_messages_published_total",
                              "Wake-ups and cancel notices published to other workers.")
                     .get()),
      received_(registry
                    .counter("pm_agent_cluster_messages_received_total",
                             "Wake-ups and cancel notices received from other workers.")
                    .get()),
      hunger_published_(
          registry
              .counter(
                  "pm_agent_cluster_hunger_published_total",
                  "Hunger messages published (each names the queues with consumers here waiting).")
              .get()),
      wakes_skipped_(registry
                         .counter("pm_agent_cluster_wakeups_skipped_total",
                                  "Wake-ups not published: no other worker had a consumer of "
                                  "the queue waiting.")
                         .get()) {}

cluster_link::~cluster_link() {
    *alive_ = false;
    wake_timer_.cancel();
    hunger_timer_.cancel();
}

void cluster_link::start() {
    redis_.subscribe(
        {std::string(k_wake_channel), std::string(k_notice_channel), std::string(k_hunger_channel),
         std::string(k_attached_channel)},
        [this, alive = alive_](std::string_view channel, std::string_view payload) {
            if (*alive) {
                on_message(channel, payload);
            }
        },
        [] { spdlog::info("event=redis_subscribed channels=\"pm:wake pm:notice pm:hungry pm:attached\""); });
    arm_hunger_timer();
}

bool cluster_link::healthy() const {
    return redis_.healthy() && redis_.status().subscribed;
}

void cluster_link::on_unclaimed(std::string_view queue) {
    if (!hunger_.wake_wanted(queue, std::chrono::steady_clock::now())) {
        wakes_skipped_.inc();
        return;
    }
    wakes_.want(queue);
    schedule_flush();
}

void cluster_link::on_hungry(std::string_view queue) {
    if (hungry_now_.find(queue) == hungry_now_.end()) {
        hungry_now_.emplace(queue);
    }
    schedule_flush();
}

void cluster_link::on_notice_elsewhere(std::string_view agent_id) {
    if (notice_agents_.find(agent_id) == notice_agents_.end()) {
        notice_agents_.emplace(agent_id);
    }
    schedule_flush();
}

void cluster_link::on_heartbeat(std::string_view agent_id,
                                std::chrono::system_clock::time_point at) {
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
    presence_[std::string(agent_id)] = ms;
    schedule_flush();
}

void cluster_link::on_attached(std::string_view agent_id,
                                std::chrono::system_clock::time_point at) {
    attached_[std::string(agent_id)] =
        std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
    schedule_flush();
}

void cluster_link::forget(std::string_view agent_id) {
    presence_.erase(std::string(agent_id));
    if (redis_.healthy()) {
        redis_.command({"DEL", std::string(k_presence_prefix).append(agent_id)},
                       [](std::optional<redis::reply>) {});
    }
}

void cluster_link::schedule_flush() {
    if (flush_scheduled_) {
        return;
    }
    flush_scheduled_ = true;
    boost::asio::post(ioc_, [this, alive = alive_] {
        if (*alive) {
            flush();
        }
    });
}

void cluster_link::flush() {
    flush_scheduled_ = false;
    if (!redis_.healthy()) {
        // Nothing is queued up for later: the claim poll and the agents' heartbeats carry what
        // the messages would have, and presence is refreshed by the next heartbeat.
        wakes_.clear();
        hungry_now_.clear();
        notice_agents_.clear();
        attached_.clear();
        presence_.clear();
        return;
    }
    auto ignore = [](std::optional<redis::reply>) {};
    const auto now = std::chrono::steady_clock::now();
    // All queues in one message (or a few, each at most about k_hunger_message_bytes): a fleet
    // waiting on many queues costs a message per worker and turn, not one per queue.
    std::string hungry;
    auto publish_hungry = [&] {
        if (!hungry.empty()) {
            redis_.command({"PUBLISH", std::string(k_hunger_channel), message(worker_id_, hungry)},
                           ignore);
            hunger_published_.inc();
            hungry.clear();
        }
    };
    for (const std::string& queue : hungry_now_) {
        auto [at, first] = announced_at_.try_emplace(queue, now);
        if (!first && now - at->second < k_hunger_gap) {
            continue;
        }
        at->second = now;
        append_name(hungry, queue);
        if (hungry.size() >= k_hunger_message_bytes) {
            publish_hungry();
        }
    }
    publish_hungry();
    hungry_now_.clear();
    for (const std::string& queue : wakes_.take_due(now)) {
        redis_.command({"PUBLISH", std::string(k_wake_channel), message(worker_id_, queue)},
                       ignore);
        published_.inc();
    }
    for (const std::string& agent : notice_agents_) {
        redis_.command({"PUBLISH", std::string(k_notice_channel), message(worker_id_, agent)},
                       ignore);
        published_.inc();
    }
    for (const auto& [agent, ms] : attached_) {
        redis_.command({"PUBLISH", std::string(k_attached_channel),
                        message(worker_id_, std::to_string(ms) + " " + agent)},
                       ignore);
        published_.inc();
    }
    attached_.clear();
    for (const auto& [agent, ms] : presence_) {
        redis_.command({"SET", std::string(k_presence_prefix).append(agent),
                        std::to_string(ms) + " " + worker_id_, "EX", ttl_seconds_},
                       ignore);
    }
    notice_agents_.clear();
    presence_.clear();
    arm_wake_timer();
}

void cluster_link::arm_wake_timer() {
    const auto due = wakes_.next_due();
    if (!due || (wake_timer_armed_ && wake_timer_at_ <= *due)) {
        return;
    }
    wake_timer_armed_ = true;
    wake_timer_at_ = *due;
    wake_timer_.expires_at(*due);  // replaces a later wait, whose handler then sees `ec`
    wake_timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
        if (ec || !*alive) {
            return;
        }
        wake_timer_armed_ = false;
        schedule_flush();
    });
}

void cluster_link::arm_hunger_timer() {
    hunger_timer_.expires_after(k_hunger_repeat);
    hunger_timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
        if (ec || !*alive) {
            return;
        }
        const auto now = std::chrono::steady_clock::now();
        hunger_.sweep(now);
        std::erase_if(announced_at_,
                      [now](const auto& entry) { return now - entry.second >= k_hunger_ttl; });
        for (std::string& queue : engine_.hungry_queues()) {
            hungry_now_.insert(std::move(queue));
        }
        if (!hungry_now_.empty()) {
            schedule_flush();
        }
        arm_hunger_timer();
    });
}

void cluster_link::on_message(std::string_view channel, std::string_view payload) {
    const auto newline = payload.find('\n');
    if (newline == std::string_view::npos) {
        return;  // not ours
    }
    if (payload.substr(0, newline) == worker_id_) {
        return;
    }
    const std::string_view name = payload.substr(newline + 1);
    if (channel == k_hunger_channel) {
        const auto queues = parse_names(name);
        if (!queues) {
            return;  // not ours
        }
        const auto now = std::chrono::steady_clock::now();
        for (std::string_view queue : *queues) {
            if (hunger_.heard(queue, now)) {
                wakes_.want(queue);  // a task of it found no consumer here just before
                schedule_flush();
            }
        }
        return;
    }
    received_.inc();
    const auto now = store::clock::now();
    if (channel == k_wake_channel) {
        engine_.offer(name, now);
    } else if (channel == k_notice_channel) {
        engine_.deliver_notices(name, now);
    } else if (channel == k_attached_channel) {
        const auto space = name.find(' ');
        const auto ms = leading_millis(name.substr(0, space));
        if (space == std::string_view::npos || !ms) {
            return;  // not ours
        }
        engine_.replaced_elsewhere(name.substr(space + 1),
                                   store::time_point(std::chrono::milliseconds(*ms)));
    }
}

void cluster_link::last_heartbeats(
    std::vector<std::string> agent_ids,
    store::unique_function<void(std::vector<std::optional<std::int64_t>>)> done) {
    const std::size_t n = agent_ids.size();
    if (n == 0 || !redis_.healthy()) {
        boost::asio::post(ioc_, [n, done = std::move(done)]() mutable {
            done(std::vector<std::optional<std::int64_t>>(n));
        });
        return;
    }
    std::vector<std::string> args;
    args.reserve(n + 1);
    args.emplace_back("MGET");
    for (std::string& id : agent_ids) {
        args.push_back(std::string(k_presence_prefix).append(id));
    }
    redis_.command(std::move(args),
                   [n, done = std::move(done)](std::optional<redis::reply> r) mutable {
                       std::vector<std::optional<std::int64_t>> out(n);
                       if (r && r->kind == redis::reply::type::array && r->elements.size() == n) {
                           for (std::size_t i = 0; i < n; ++i) {
                               out[i] = read_millis(r->elements[i]);
                           }
                       }
                       done(std::move(out));
                   });
}

}  // namespace pm_agent::api
