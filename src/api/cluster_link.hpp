#pragma once
// Private to src/api: what makes N workers on one database act as one server through Redis
// (DESIGN.md §2 Redis). It carries three things between workers:
// - wake-ups: a task became pending on a queue no consumer here could take, and another
//   worker has a consumer of it waiting -> PUBLISH pm:wake; every other worker offers the
//   queue to its free consumers at once (instead of at its next claim poll,
//   database.poll_interval_ms, which stays as the fallback);
// - hunger: a queue has a free consumer here whose last claim found fewer tasks than it asked
//   for -> PUBLISH pm:hungry at once, and again every k_hunger_repeat while it waits (all such
//   queues of a turn in one message); the others publish
//   wake-ups for that queue only while they heard so within k_hunger_ttl (peer_hunger). Under
//   load nobody waits and no wake-up is sent (N workers would otherwise cost N x (N - 1)
//   messages every few milliseconds, each waking a worker to nothing);
// - cancel notices: a task was taken from an agent connected elsewhere -> PUBLISH pm:notice;
//   the worker holding the agent's WebSocket takes the notice and pushes `cancel`;
// - takeovers: an agent's WebSocket attached here -> PUBLISH pm:attached "<unix ms> <agent>";
//   a worker still holding an older connection of it closes that one (4001), so tasks are
//   not pushed into a connection the agent has given up;
// - presence: each heartbeat -> SET pm:presence:<agent> "<unix ms> <worker>" EX redis.ttl, so
//   the exact heartbeat age is known without a PostgreSQL write per heartbeat.
// Everything is collected during a loop turn and sent once at its end (one PUBLISH per queue
// or agent per turn, however many tasks), and messages from this worker itself are ignored.
// A queue's wake-ups are further held to one per k_wake_window (wake_throttle): the first at
// once, the rest at the window's end.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/steady_timer.hpp>

#include "api/peer_hunger.hpp"
#include "api/wake_throttle.hpp"
#include "pm_agent/core/engine.hpp"
#include "pm_agent/store/unique_function.hpp"

namespace boost::asio {
class io_context;
}
namespace pm_agent::redis {
class client;
}
namespace pm_agent::metrics {
class registry;
class counter;
}  // namespace pm_agent::metrics

namespace pm_agent::api {

inline constexpr std::string_view k_wake_channel = "pm:wake";
inline constexpr std::string_view k_notice_channel = "pm:notice";
inline constexpr std::string_view k_hunger_channel = "pm:hungry";
inline constexpr std::string_view k_attached_channel = "pm:attached";
/// How often a queue's waiting consumers are announced again, and how long an announcement
/// counts: a lost message (a Redis reconnect) costs at most one repeat.
inline constexpr std::chrono::milliseconds k_hunger_repeat{500};
inline constexpr std::chrono::milliseconds k_hunger_ttl{1500};
/// A queue's announcements are at least this far apart (its consumers may find nothing and
/// take a task many times a second); an earlier one still counts for k_hunger_ttl.
inline constexpr std::chrono::milliseconds k_hunger_gap{100};
/// A hunger message holds queues up to about this size; more go in further messages.
inline constexpr std::size_t k_hunger_message_bytes = 16 * 1024;
/// At most one wake-up per queue per window from one worker (beyond the first, which is not
/// held): short against the claim poll it stands in for, long against a loop turn.
inline constexpr std::chrono::milliseconds k_wake_window{5};

class cluster_link {
  public:
    /// `ioc`, `redis`, `engine` and `registry` must outlive the link.
    cluster_link(boost::asio::io_context& ioc, redis::client& redis, core::engine& engine,
                 std::string worker_id, std::chrono::seconds presence_ttl,
                 metrics::registry& registry,
                 std::chrono::milliseconds wake_window = k_wake_window);
    ~cluster_link();
    cluster_link(const cluster_link&) = delete;
    cluster_link& operator=(const cluster_link&) = delete;

    /// Subscribes to the channels (the client reconnects and resubscribes by itself).
    void start();

    // Engine events (engine_observer, forwarded by the service).
    void on_unclaimed(std::string_view queue);
    void on_hungry(std::string_view queue);
    void on_notice_elsewhere(std::string_view agent_id);
    void on_attached(std::string_view agent_id, std::chrono::system_clock::time_point at);
    void on_heartbeat(std::string_view agent_id, std::chrono::system_clock::time_point at);
    /// The agent is gone: its presence key is deleted.
    void forget(std::string_view agent_id);

    /// The last heartbeats Redis knows for these agents (unix ms; nullopt: no key, or Redis
    /// did not answer). `done` is called once, from the loop.
    void last_heartbeats(
        std::vector<std::string> agent_ids,
        store::unique_function<void(std::vector<std::optional<std::int64_t>>)> done);

    /// Redis can carry wake-ups now (connected and subscribed); false: /ready says degraded.
    bool healthy() const;

  private:
    void schedule_flush();
    void flush();
    /// Flushes again when the first held wake-up may leave.
    void arm_wake_timer();
    /// Announces the queues with consumers waiting here, every k_hunger_repeat.
    void arm_hunger_timer();
    void on_message(std::string_view channel, std::string_view payload);

    boost::asio::io_context& ioc_;
    redis::client& redis_;
    core::engine& engine_;
    std::string worker_id_;
    std::string ttl_seconds_;
    wake_throttle wakes_;
    boost::asio::steady_timer wake_timer_;
    bool wake_timer_armed_ = false;
    std::chrono::steady_clock::time_point wake_timer_at_{};
    peer_hunger hunger_{k_hunger_ttl};
    std::set<std::string, std::less<>> hungry_now_;  // to announce at the next flush
    std::map<std::string, std::chrono::steady_clock::time_point, std::less<>> announced_at_;
    boost::asio::steady_timer hunger_timer_;
    std::set<std::string, std::less<>> notice_agents_;
    std::unordered_map<std::string, std::int64_t> attached_;  // agent -> unix ms
    std::unordered_map<std::string, std::int64_t> presence_;  // agent -> unix ms
    bool flush_scheduled_ = false;
    std::shared_ptr<bool> alive_;
    metrics::counter& published_;
    metrics::counter& received_;
    metrics::counter& hunger_published_;
    metrics::counter& wakes_skipped_;
};

}  // namespace pm_agent::api
