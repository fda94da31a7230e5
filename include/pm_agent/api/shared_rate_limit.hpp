#pragma once
/// The rate limiter shared by every worker through Redis (DESIGN.md §2 Redis): one atomic Lua
/// script runs the GCRA of rate_limit.hpp on the key's stored arrival time, on Redis' own
/// clock, so N workers hold one client to one limit together. A worker takes several tokens
/// per round trip for a busy client and spends them here (rate_lease.hpp: leases of at most
/// burst / (4 x workers) tokens, one second each), so the limit costs a busy client about one
/// round trip per lease instead of one per request; a client sending now and then is decided
/// by Redis request by request, as before.
///
/// When Redis does not answer (down, or slower than redis.timeout_ms) the decision follows
/// rate_limit.redis_failure_policy: "local" decides in this process with limit / workers
/// (rate and burst divided, the burst at least 1), "open" allows, "closed" refuses with 503.
/// Each fallback is counted (pm_agent_rate_limit_fallbacks_total{policy}). While the client
/// has no connection at all the fallback is taken at once, without a round trip.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pm_agent/api/rate_lease.hpp"
#include "pm_agent/api/rate_limit.hpp"
#include "pm_agent/config/config.hpp"
#include "pm_agent/store/unique_function.hpp"

namespace pm_agent::redis {
class client;
struct reply;
}
namespace pm_agent::metrics {
class registry;
class counter;
}

namespace pm_agent::api {

/// The Lua script, gcra_take() on Redis' clock (KEYS[1] the bucket, ARGV[1] emission interval
/// us, ARGV[2] burst, ARGV[3] tokens wanted); it answers {granted, remaining, retry_after us,
/// reset_after us}. For tests and docs.
std::string_view gcra_lua_script();

/// A decision from the shared limiter. `unavailable`: policy "closed" refused because Redis
/// could not decide (answer 503, not 429).
struct shared_decision {
    rate_decision decision;
    bool unavailable = false;
    bool fallback = false;  ///< decided without Redis (any policy)
};

/// Reads a script answer; nullopt when it is not the four integers the script returns.
std::optional<gcra_grant> read_gcra_reply(const redis::reply& r);

class shared_rate_limiter {
  public:
    /// `scope` prefixes the Redis keys (pm:rl:<scope>:<key>). `workers` is server.workers (the
    /// local fallback's share). `redis` and `registry` must outlive the limiter. Throws
    /// std::invalid_argument for a bad policy (see make_gcra_policy).
    shared_rate_limiter(redis::client& redis, std::string scope, double rate_per_s, double burst,
                        int workers, config::redis_failure_policy policy,
                        metrics::registry& registry);

    /// Decides one request for `key`; `done` is called exactly once (inline when decided
    /// without a round trip: from a lease, a known-empty bucket or a fallback; else from the
    /// loop).
    void check(std::string_view key, store::unique_function<void(shared_decision)> done);

  private:
    using answer_fn = store::unique_function<void(shared_decision)>;
    shared_decision fall_back(std::string_view key);
    /// Asks Redis for the tokens of every request waiting for `key`.
    void ask(const std::string& key);
    void answer(const std::string& key, std::int64_t asked, std::vector<answer_fn> batch,
                std::optional<gcra_grant> grant);

    redis::client& redis_;
    std::string prefix_;
    gcra_policy policy_;
    config::redis_failure_policy failure_policy_;
    local_rate_limiter local_;
    metrics::counter& fallbacks_;
    rate_lease_book leases_;
    /// Requests waiting for a round trip for their key, by key; an entry exists while one is
    /// out (requests arriving meanwhile join the next ask).
    string_key_map<std::vector<answer_fn>> waiting_;
};

}  // namespace pm_agent::api
