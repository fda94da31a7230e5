// The Redis-backed GCRA limiter: the script, its answer, and the Redis-down policies.
#include "pm_agent/api/shared_rate_limit.hpp"

#include <openssl/sha.h>

#include <algorithm>
#include <cstdio>

#include "pm_agent/metrics/registry.hpp"
#include "pm_agent/redis/client.hpp"

namespace pm_agent::api {
namespace {

// gcra_check() of rate_limit.cpp, line for line, on Redis' clock (TIME: one clock for every
// worker). Integers stay below 2^53, so Lua's doubles are exact; the TAT is written with %d
// because tostring() would round it to 14 digits. The key expires when the bucket is full
// again, which is when its TAT has passed.
constexpr std::string_view k_script = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local stored = tonumber(redis.call('GET', KEYS[1]))
local tat = now
if stored and stored > now then tat = stored end
local new_tat = tat + interval
local allow_at = new_tat - interval * burst
if now < allow_at then
  return {0, 0, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1)
return {1, math.floor((now - allow_at) / interval), 0, new_tat - now}
)lua";

std::string sha1_hex(std::string_view text) {
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
    std::string hex(2 * SHA_DIGEST_LENGTH, '0');
    for (int i = 0; i < SHA_DIGEST_LENGTH; ++i) {
        std::snprintf(&hex[2 * static_cast<std::size_t>(i)], 3, "%02x", digest[i]);
    }
    return hex;
}

const std::string& script_sha() {
    static const std::string sha = sha1_hex(k_script);
    return sha;
}

std::string_view policy_name(config::redis_failure_policy p) {
    switch (p) {
        case config::redis_failure_policy::local:
            return "local";
        case config::redis_failure_policy::open:
            return "open";
        case config::redis_failure_policy::closed:
            return "closed";
    }
    return "local";
}

double share(double value, int workers) {
    return value / static_cast<double>(std::max(workers, 1));
}

}  // namespace

std::string_view gcra_lua_script() {
    return k_script;
}

std::optional<rate_decision> read_gcra_reply(const redis::reply& r, std::int64_t limit) {
    if (r.kind != redis::reply::type::array || r.elements.size() != 4) {
        return std::nullopt;
    }
    for (const redis::reply& e : r.elements) {
        if (e.kind != redis::reply::type::integer || e.integer < 0) {
            return std::nullopt;
        }
    }
    rate_decision d;
    d.allowed = r.elements[0].integer == 1;
    d.limit = limit;
    d.remaining = r.elements[1].integer;
    d.retry_after = std::chrono::microseconds(r.elements[2].integer);
    d.reset_after = std::chrono::microseconds(r.elements[3].integer);
    return d;
}

shared_rate_limiter::shared_rate_limiter(redis::client& redis, std::string scope,
                                         double rate_per_s, double burst, int workers,
                                         config::redis_failure_policy policy,
                                         metrics::registry& registry)
    : redis_(redis),
      prefix_("pm:rl:" + scope + ":"),
      policy_(make_gcra_policy(rate_per_s, burst)),
      failure_policy_(policy),
      local_(share(rate_per_s, workers), std::max(1.0, share(burst, workers))),
      fallbacks_(registry
                     .counter("pm_agent_rate_limit_fallbacks_total",
                              "Rate-limit decisions taken without Redis, by failure policy.",
                              {"policy"})
                     .with({policy_name(policy)})) {}

shared_decision shared_rate_limiter::fall_back(std::string_view key) {
    fallbacks_.inc();
    shared_decision out;
    out.fallback = true;
    switch (failure_policy_) {
        case config::redis_failure_policy::local:
            out.decision = local_.check(key, std::chrono::steady_clock::now());
            break;
        case config::redis_failure_policy::open:
            out.decision.allowed = true;
            out.decision.limit = policy_.burst;
            out.decision.remaining = policy_.burst;
            break;
        case config::redis_failure_policy::closed:
            out.unavailable = true;
            out.decision.limit = policy_.burst;
            out.decision.retry_after = std::chrono::seconds(1);
            break;
    }
    return out;
}

void shared_rate_limiter::check(std::string_view key,
                                store::unique_function<void(shared_decision)> done) {
    if (!redis_.healthy()) {
        return done(fall_back(key));
    }
    std::string bucket = prefix_ + std::string(key);
    std::vector<std::string> args{"EVALSHA",
                                  script_sha(),
                                  "1",
                                  bucket,
                                  std::to_string(policy_.emission_interval_us),
                                  std::to_string(policy_.burst)};
    auto answer = [this, key = std::string(key), done = std::move(done)](
                      std::optional<redis::reply> r) mutable {
        std::optional<rate_decision> d;
        if (r) {
            d = read_gcra_reply(*r, policy_.burst);
        }
        if (d) {
            return done(shared_decision{*d, false, false});
        }
        done(fall_back(key));
    };
    redis_.command(
        std::move(args),
        [this, bucket = std::move(bucket), answer = std::move(answer)](
            std::optional<redis::reply> r) mutable {
            // A fresh (or restarted) Redis does not know the script yet: send it whole once.
            if (r && r->is_error() && r->str.starts_with("NOSCRIPT")) {
                redis_.command({"EVAL", std::string(k_script), "1", std::move(bucket),
                                std::to_string(policy_.emission_interval_us),
                                std::to_string(policy_.burst)},
                               std::move(answer));
                return;
            }
            answer(std::move(r));
        });
}

}  // namespace pm_agent::api
