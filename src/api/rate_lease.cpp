// Rate-limit token leases: the bookkeeping between a worker's requests and the shared bucket.
#include "pm_agent/api/rate_lease.hpp"

#include <algorithm>

namespace pm_agent::api {

std::int64_t fleet_lease_size(const gcra_policy& policy, int workers) {
    return std::clamp<std::int64_t>(policy.burst / (20 * std::max(workers, 1)), 1, k_max_lease);
}
namespace {

// Lapsed entries are swept when the map has doubled since the last sweep (amortized O(1)).
constexpr std::size_t k_min_sweep_at = 1024;

std::chrono::microseconds until(std::chrono::steady_clock::time_point at,
                                std::chrono::steady_clock::time_point now) {
    return std::max(std::chrono::duration_cast<std::chrono::microseconds>(at - now),
                    std::chrono::microseconds(0));
}

}  // namespace

rate_lease_book::rate_lease_book(gcra_policy policy, std::int64_t max_lease,
                                 std::chrono::microseconds ttl, std::size_t max_keys)
    : policy_(policy),
      max_lease_(std::max<std::int64_t>(max_lease, 1)),
      ttl_(ttl),
      max_keys_(max_keys),
      sweep_at_(std::min(k_min_sweep_at, max_keys)) {}

rate_decision rate_lease_book::decision(bool allowed, std::int64_t remaining, time_point reset_at,
                                        time_point now) const {
    rate_decision d;
    d.allowed = allowed;
    d.limit = policy_.burst;
    d.remaining = allowed ? remaining : 0;
    d.reset_after = until(reset_at, now);
    return d;
}

std::optional<rate_decision> rate_lease_book::take(std::string_view key, time_point now) {
    auto it = entries_.find(key);
    if (it == entries_.end()) {
        return std::nullopt;
    }
    entry& e = it->second;
    if (e.tokens > 0 && now < e.expires) {
        --e.tokens;
        if (e.tokens == 0 && now - e.granted_at < ttl_ / 2) {
            e.next_ask = std::min(e.next_ask * 2, max_lease_);
        }
        return decision(true, e.bucket_remaining + e.tokens, e.reset_at, now);
    }
    if (e.tokens > 0) {  // lapsed with tokens left: ask for less next time
        e.tokens = 0;
        e.next_ask = std::max<std::int64_t>(e.next_ask / 2, 1);
    }
    if (now < e.refused_until) {
        rate_decision d = decision(false, 0, e.reset_at, now);
        d.retry_after = until(e.refused_until, now);
        return d;
    }
    return std::nullopt;
}

std::int64_t rate_lease_book::want(std::string_view key, std::size_t waiting) const {
    auto it = entries_.find(key);
    const std::int64_t ask = it == entries_.end() ? 1 : it->second.next_ask;
    return std::max(ask, static_cast<std::int64_t>(waiting));
}

std::vector<rate_decision> rate_lease_book::grant(std::string_view key, std::int64_t asked,
                                                  const gcra_grant& answer, std::size_t waiting,
                                                  time_point now) {
    const time_point reset_at = now + answer.reset_after;
    std::vector<rate_decision> out;
    out.reserve(waiting);
    for (std::size_t i = 0; i < waiting; ++i) {
        const auto n = static_cast<std::int64_t>(i);
        if (n < answer.granted) {
            out.push_back(decision(true, answer.remaining + answer.granted - 1 - n, reset_at, now));
        } else {
            rate_decision d = decision(false, 0, reset_at, now);
            d.retry_after = answer.retry_after;
            out.push_back(d);
        }
    }
    const std::int64_t left =
        std::max<std::int64_t>(answer.granted - static_cast<std::int64_t>(waiting), 0);
    const bool refused = answer.granted < asked;
    auto it = entries_.find(key);
    // Every token went to requests waiting, and several came during one round trip or this
    // ask follows the last one closely: a busy client.
    const bool busy = left == 0 && !refused &&
                      (waiting >= 2 ||
                       (it != entries_.end() && now - it->second.granted_at < ttl_ / 2));
    if (it == entries_.end()) {
        if (left == 0 && !refused && max_lease_ == 1) {
            return out;  // nothing to keep: no lease, no refusal, and every ask is exact
        }
        if (entries_.size() >= sweep_at_ && now >= next_sweep_) {
            sweep(now);
        }
        if (entries_.size() >= max_keys_) {
            return out;
        }
        it = entries_.emplace(std::string(key), entry{}).first;
    }
    entry& e = it->second;
    e.tokens = left;
    e.bucket_remaining = answer.remaining;
    e.granted_at = now;
    e.expires = now + ttl_;
    e.reset_at = reset_at;
    e.refused_until = refused ? now + answer.retry_after : time_point{};
    if (busy) {
        e.next_ask = std::min(std::max(e.next_ask, asked) * 2, max_lease_);
    }
    return out;
}

void rate_lease_book::sweep(time_point now) {
    std::erase_if(entries_, [now](const auto& kv) {
        return kv.second.expires <= now && kv.second.refused_until <= now;
    });
    sweep_at_ = std::min(std::max(k_min_sweep_at, entries_.size() * 2), max_keys_);
    // A map still full of live keys is not swept again at once (a flood of new keys would
    // cost a full sweep each): until then they are answered and not kept.
    next_sweep_ = entries_.size() >= max_keys_ ? now + ttl_ : time_point{};
}

}  // namespace pm_agent::api
