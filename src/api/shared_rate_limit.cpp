// The Redis-backed GCRA limiter: the script, its answer, and the Redis-down policies.
#include "pm_agent/api/shared_rate_limit.hpp"

#include <openssl/sha.h>

#include <algorithm>
#include <cstdio>

#include "pm_agent/metrics/registry.hpp"
#include "pm_agent/redis/client.hpp"

namespace pm_agent::api {
namespace {

// gcra_take() of rate_limit.cpp, line for line, on Redis' clock (TIME: one clock for every
// worker). Integers stay below 2^53, so Lua's doubles are exact; the TAT is written with %d
// because tostring() would round it to 14 digits. The key expires when the bucket is full
// again, which is when its TAT has passed.
constexpr std::string_view k_script = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local stored = tonumber(redis.call('GET', KEYS[1]))
local tat = now
if stored and stored > now then tat = stored end
local available = math.max(math.floor((now + interval * burst - tat) / interval), 0)
local granted = math.min(math.max(wanted, 0), available)
tat = tat + interval * granted
if granted > 0 then
  redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.floor((tat - now) / 1000) + 1)
end
local retry = 0
if granted < wanted then retry = tat + interval - interval * burst - now end
return {granted, available - granted, retry, tat - now}
)lua";

// Each lease lives this long (see rate_lease.hpp for its size).
constexpr std::chrono::milliseconds k_lease_ttl{1000};

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

std::optional<gcra_grant> read_gcra_reply(const redis::reply& r) {
    if (r.kind != redis::reply::type::array || r.elements.size() != 4) {
        return std::nullopt;
    }
    for (const redis::reply& e : r.elements) {
        if (e.kind != redis::reply::type::integer || e.integer < 0) {
            return std::nullopt;
        }
    }
    gcra_grant g;
    g.granted = r.elements[0].integer;
    g.remaining = r.elements[1].integer;
    g.retry_after = std::chrono::microseconds(r.elements[2].integer);
    g.reset_after = std::chrono::microseconds(r.elements[3].integer);
    return g;
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
                     .with({policy_name(policy)})),
      leases_(policy_, fleet_lease_size(policy_, workers), k_lease_ttl) {}

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

void shared_rate_limiter::check(std::string_view key, answer_fn done) {
    if (!redis_.healthy()) {
        return done(fall_back(key));
    }
    auto waiting = waiting_.find(key);
    if (waiting == waiting_.end()) {
        if (auto d = leases_.take(key, std::chrono::steady_clock::now())) {
            return done(shared_decision{*d, false, false});
        }
        waiting = waiting_.emplace(std::string(key), std::vector<answer_fn>{}).first;
        waiting->second.push_back(std::move(done));
        return ask(waiting->first);
    }
    waiting->second.push_back(std::move(done));  // joins the next ask
}

void shared_rate_limiter::ask(const std::string& key) {
    std::vector<answer_fn>& queued = waiting_.find(key)->second;
    std::vector<answer_fn> batch = std::move(queued);
    queued.clear();
    const std::int64_t asked = leases_.want(key, batch.size());
    auto args = [this, &key, asked](const char* verb, std::string_view script) {
        return std::vector<std::string>{verb,
                                        std::string(script),
                                        "1",
                                        prefix_ + key,
                                        std::to_string(policy_.emission_interval_us),
                                        std::to_string(policy_.burst),
                                        std::to_string(asked)};
    };
    auto on_reply = [this, key, asked, batch = std::move(batch)](
                        std::optional<redis::reply> r) mutable {
        std::optional<gcra_grant> g;
        if (r) {
            g = read_gcra_reply(*r);
        }
        answer(key, asked, std::move(batch), g);
    };
    redis_.command(args("EVALSHA", script_sha()),
                   [this, eval = args("EVAL", k_script), on_reply = std::move(on_reply)](
                       std::optional<redis::reply> r) mutable {
                       // A fresh (or restarted) Redis does not know the script yet: send it
                       // whole once.
                       if (r && r->is_error() && r->str.starts_with("NOSCRIPT")) {
                           redis_.command(std::move(eval), std::move(on_reply));
                           return;
                       }
                       on_reply(std::move(r));
                   });
}

void shared_rate_limiter::answer(const std::string& key, std::int64_t asked,
                                 std::vector<answer_fn> batch, std::optional<gcra_grant> grant) {
    std::vector<shared_decision> decisions;
    decisions.reserve(batch.size());
    if (grant) {
        for (const rate_decision& d :
             leases_.grant(key, asked, *grant, batch.size(), std::chrono::steady_clock::now())) {
            decisions.push_back(shared_decision{d, false, false});
        }
    } else {
        for (std::size_t i = 0; i < batch.size(); ++i) {
            decisions.push_back(fall_back(key));
        }
    }
    // Taken out first: callbacks may call check() for this key.
    std::vector<answer_fn> later = std::move(waiting_.extract(key).mapped());
    for (std::size_t i = 0; i < batch.size(); ++i) {
        batch[i](decisions[i]);
    }
    // Requests that arrived meanwhile: the new lease (or refusal) may answer them at once;
    // the rest make the next ask together.
    std::vector<answer_fn> again;
    const auto now = std::chrono::steady_clock::now();
    for (answer_fn& done : later) {
        if (!redis_.healthy()) {
            done(fall_back(key));
            continue;
        }
        if (!waiting_.contains(key)) {
            if (auto d = leases_.take(key, now)) {
                done(shared_decision{*d, false, false});
                continue;
            }
        }
        again.push_back(std::move(done));
    }
    if (again.empty()) {
        return;
    }
    auto [it, fresh] = waiting_.try_emplace(key);
    for (answer_fn& done : again) {
        it->second.push_back(std::move(done));
    }
    if (fresh) {
        ask(it->first);
    }
}

}  // namespace pm_agent::api
