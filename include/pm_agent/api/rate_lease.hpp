#pragma once
/// Tokens of a shared rate-limit bucket held by one worker, so that most requests of a busy
/// client are decided here instead of by one Redis round trip each (DESIGN.md §2 Redis). Pure:
/// time is passed in; the shared limiter (shared_rate_limit.hpp) asks Redis for tokens
/// (gcra_take() in the Lua script) and hands the answers to grant().
///
/// A key's first ask is for one token, or for as many as requests wait. When several requests
/// came during one round trip and took every token, or a lease is used up within half its
/// life, the next ask doubles, up to max_lease; a lease that lapses with tokens left halves it.
/// So a client sending now and then costs a round trip per request as before (exact), while a
/// busy one costs one per lease. A lease lives `ttl`: tokens not spent by then are lost. Tokens
/// are spent up to ttl after they left the bucket, which refills meanwhile, so in any window a
/// client may be admitted beyond the limit what the fleet's leases hold: fleet_lease_size()
/// keeps that within a twentieth of the burst (1.05x). After Redis said the bucket is empty,
/// requests are refused here until its next token is due.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pm_agent/api/rate_limit.hpp"

namespace pm_agent::api {

/// The largest lease for a bucket shared by `workers` workers (rate_limit.fleet_workers): a
/// twentieth of the burst spread over them, at least 1 (every request asks Redis), at most
/// k_max_lease.
inline constexpr std::int64_t k_max_lease = 1000;
std::int64_t fleet_lease_size(const gcra_policy& policy, int workers);

class rate_lease_book {
  public:
    using time_point = std::chrono::steady_clock::time_point;

    /// Keys held at most (leases and refusals); past it an answer is kept for nobody (exact:
    /// tokens are asked only for the requests waiting).
    static constexpr std::size_t k_default_max_keys = 100000;

    /// max_lease >= 1 (1: every request asks Redis, as many at once as wait).
    rate_lease_book(gcra_policy policy, std::int64_t max_lease, std::chrono::microseconds ttl,
                    std::size_t max_keys = k_default_max_keys);

    /// Decides a request for `key` from what is held: a token of a live lease, or a refusal
    /// while the bucket is known empty. nullopt: ask Redis.
    std::optional<rate_decision> take(std::string_view key, time_point now);

    /// Tokens to ask Redis for when `waiting` requests for `key` wait (at least `waiting`).
    std::int64_t want(std::string_view key, std::size_t waiting) const;

    /// Redis' answer to an ask for `asked` tokens: the decisions of the `waiting` requests in
    /// order (the first `granted` allowed, the rest refused); tokens left over become the lease.
    std::vector<rate_decision> grant(std::string_view key, std::int64_t asked,
                                     const gcra_grant& answer, std::size_t waiting,
                                     time_point now);

    /// Keys held, lapsed ones not yet swept included.
    std::size_t size() const noexcept { return entries_.size(); }

  private:
    struct entry {
        std::int64_t tokens = 0;            // of the lease, unspent
        std::int64_t bucket_remaining = 0;  // what Redis said was left beside the lease
        time_point granted_at{};
        time_point expires{};
        time_point reset_at{};
        time_point refused_until{};  // the bucket is empty until then
        std::int64_t next_ask = 1;
    };

    rate_decision decision(bool allowed, std::int64_t remaining, time_point reset_at,
                           time_point now) const;
    void sweep(time_point now);

    gcra_policy policy_;
    std::int64_t max_lease_;
    std::chrono::microseconds ttl_;
    std::size_t max_keys_;
    std::size_t sweep_at_;
    time_point next_sweep_{};
    string_key_map<entry> entries_;
};

}  // namespace pm_agent::api
