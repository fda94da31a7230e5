#pragma once
/// Rate limiting by GCRA (the generic cell rate algorithm: a token bucket kept as one number, the
/// theoretical arrival time). Pure code: time is passed in, nothing here reads a clock.
///
/// The math is gcra_check(); the shared limiter's Redis Lua script repeats it line for line, so
/// it is written in integer microseconds: every quantity (times, intervals) is an integer below
/// 2^53, exact in a Lua number, and the one division (remaining) gives the same floor in both.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pm_agent/metrics/counter.hpp"

namespace pm_agent::api {

/// Hashes a string key by its view, so maps keyed by client can be searched without a copy.
struct string_key_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view key) const noexcept {
        return std::hash<std::string_view>{}(key);
    }
};

/// A map keyed by client (token, address, agent id), searched by std::string_view.
template <class Value>
using string_key_map = std::unordered_map<std::string, Value, string_key_hash, std::equal_to<>>;

/// One policy in the form the math (and the Lua script) takes: both fields in microseconds.
struct gcra_policy {
    /// Time one request costs: 1 / rate, rounded to whole microseconds, at least 1.
    std::int64_t emission_interval_us = 0;
    /// Requests that may pass at once from a full bucket (the advertised limit).
    std::int64_t burst = 0;

    /// How far ahead of now the arrival time may run: emission_interval_us * burst.
    std::int64_t tolerance_us() const noexcept { return emission_interval_us * burst; }
};

/// The policy for rate_per_s requests per second with bursts of burst requests (a fractional
/// burst is truncated). Throws std::invalid_argument, at start-up, unless rate_per_s is finite
/// and positive, burst >= 1 (a per-worker share of a burst must be clamped by the caller), the
/// interval is at most 2^40 us (~12.7 days per request) and the tolerance fits in 2^50 us.
gcra_policy make_gcra_policy(double rate_per_s, double burst);

/// The answer for one request.
struct rate_decision {
    /// Whether the request may proceed.
    bool allowed = false;
    /// The burst: what RateLimit-Limit advertises.
    std::int64_t limit = 0;
    /// Further requests that would be allowed right now (0 when denied).
    std::int64_t remaining = 0;
    /// Until the bucket is full again (all `limit` requests available).
    std::chrono::microseconds reset_after{0};
    /// When denied, until one request would be allowed; zero when allowed.
    std::chrono::microseconds retry_after{0};
};

/// A decision and the theoretical arrival time to store for the key.
struct gcra_result {
    rate_decision decision;
    /// The TAT to keep (unchanged when denied). It is equivalent to no entry once now passes it,
    /// so a store may expire the key after decision.reset_after (the Redis key's PEXPIRE).
    std::int64_t tat_us = 0;
};

/// GCRA for one request at now_us, given the key's stored TAT (none for an unknown key):
///   tat = max(stored or now, now);  new_tat = tat + T;  allow_at = new_tat - T * burst
///   denied  if now < allow_at: retry_after = allow_at - now, reset_after = tat - now,
///                              remaining = 0, TAT unchanged
///   allowed otherwise:         TAT = new_tat, reset_after = new_tat - now,
///                              remaining = floor((now - allow_at) / T)
/// Times are microseconds on one clock whose values stay below 2^53 (steady or Unix time).
gcra_result gcra_check(std::optional<std::int64_t> stored_tat_us, std::int64_t now_us,
                       const gcra_policy& policy) noexcept;

/// Up to `wanted` requests decided at once (the shared limiter's Lua script repeats this line
/// for line, so a worker can take several tokens in one round trip):
///   tat = max(stored or now, now);  available = floor((now + T * burst - tat) / T)
///   granted = min(wanted, available);  TAT = tat + T * granted
///   remaining = available - granted;  reset_after = TAT - now
///   retry_after = TAT + T - T * burst - now when granted < wanted (until one more), else 0
/// For wanted = 1 this is gcra_check() exactly.
struct gcra_grant {
    std::int64_t granted = 0;
    std::int64_t remaining = 0;
    std::chrono::microseconds retry_after{0};
    std::chrono::microseconds reset_after{0};
    std::int64_t tat_us = 0;  ///< the TAT to keep
};
gcra_grant gcra_take(std::optional<std::int64_t> stored_tat_us, std::int64_t now_us,
                     std::int64_t wanted, const gcra_policy& policy) noexcept;

/// A rate limiter for one policy, keyed by client (token, address, agent id).
///
/// This interface is synchronous because the local limiter answers from memory. The shared
/// Redis limiter needs a round trip, so it gets an asynchronous interface of its own and wraps a
/// local_rate_limiter for its Redis-down policy ("local": limit / server.workers per process).
class rate_limiter {
  public:
    virtual ~rate_limiter() = default;

    /// Decides one request for key at now and records it when allowed.
    virtual rate_decision check(std::string_view key,
                                std::chrono::steady_clock::time_point now) = 0;
};

/// Limits held in this process's memory: a map from key to TAT. Single-threaded, like the rest
/// of a worker. Memory is bounded: an entry whose TAT has passed decides exactly like a missing
/// one, so such entries are swept (a couple of hash buckets per check, and all of them when the
/// map reaches max_keys). When max_keys live keys are held and a new key arrives, it is allowed
/// without being recorded (fail open) and counted.
class local_rate_limiter final : public rate_limiter {
  public:
    /// Keys held at most by default: about 10 MB of short keys.
    static constexpr std::size_t k_default_max_keys = 100000;

    /// Throws std::invalid_argument for a bad policy (see make_gcra_policy) or max_keys == 0.
    /// fail_open: incremented per new key allowed unrecorded because the map was full; may be
    /// null (fail_open_count() counts regardless).
    local_rate_limiter(double rate_per_s, double burst, std::size_t max_keys = k_default_max_keys,
                       metrics::counter* fail_open = nullptr);

    /// See rate_limiter::check.
    rate_decision check(std::string_view key, std::chrono::steady_clock::time_point now) override;

    /// The policy in microseconds.
    const gcra_policy& policy() const noexcept { return policy_; }
    /// Keys held, expired ones not yet swept included.
    std::size_t size() const noexcept { return tats_.size(); }
    /// New keys allowed without being recorded because the map was full of live keys.
    std::uint64_t fail_open_count() const noexcept { return fail_open_count_; }

  private:
    void sweep_some(std::int64_t now_us);
    void sweep_all(std::int64_t now_us);

    gcra_policy policy_;
    std::size_t max_keys_;
    metrics::counter* fail_open_;
    std::uint64_t fail_open_count_ = 0;
    string_key_map<std::int64_t> tats_;
    std::size_t sweep_cursor_ = 0;  // next bucket the incremental sweep looks at
    // No TAT can pass before this time, so a full map needs no new full sweep until then: that
    // keeps a flood of new keys against a full map from costing O(max_keys) each.
    std::int64_t next_full_sweep_us_ = 0;
    std::vector<std::string_view> expired_;  // reused by sweep_some
};

/// One HTTP response header.
struct rate_limit_header {
    std::string_view name;
    std::string value;
};

/// The headers that report a decision: RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset
/// (whole seconds, rounded up) and, when denied, Retry-After (whole seconds, rounded up, >= 1).
std::vector<rate_limit_header> rate_limit_headers(const rate_decision& decision);

}  // namespace pm_agent::api
