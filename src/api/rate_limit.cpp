#include "pm_agent/api/rate_limit.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace pm_agent::api {
namespace {

constexpr double k_us_per_s = 1e6;
// Bounds that keep every time the math produces (now + tolerance + interval) far below 2^53,
// where Lua numbers stop being exact integers.
constexpr std::int64_t k_max_interval_us = std::int64_t{1} << 40;
constexpr std::int64_t k_max_tolerance_us = std::int64_t{1} << 50;

// Hash buckets the incremental sweep visits per check: at the default load factor (<= 1) that
// is a handful of entries, cheap enough for every request.
constexpr std::size_t k_sweep_buckets_per_check = 4;
// A full map sweeps everything at most this often; in between, the incremental sweep frees
// slots and new keys fail open.
constexpr std::int64_t k_full_sweep_gap_us = 1'000'000;

std::int64_t ceil_seconds(std::chrono::microseconds duration) {
    const std::int64_t us = std::max<std::int64_t>(duration.count(), 0);
    return (us + 999'999) / 1'000'000;
}

}  // namespace

gcra_policy make_gcra_policy(double rate_per_s, double burst) {
    if (!std::isfinite(rate_per_s) || rate_per_s <= 0) {
        throw std::invalid_argument("rate limit: the rate must be a positive number per second");
    }
    if (!std::isfinite(burst) || burst < 1) {
        throw std::invalid_argument("rate limit: the burst must be at least 1");
    }
    const double interval = std::max(1.0, std::round(k_us_per_s / rate_per_s));
    if (interval > static_cast<double>(k_max_interval_us)) {
        throw std::invalid_argument("rate limit: the rate is too small (under 1 per 2^40 us)");
    }
    gcra_policy policy;
    policy.emission_interval_us = static_cast<std::int64_t>(interval);
    if (std::floor(burst) > static_cast<double>(k_max_tolerance_us / policy.emission_interval_us)) {
        throw std::invalid_argument("rate limit: burst / rate spans more than 2^50 us");
    }
    policy.burst = static_cast<std::int64_t>(std::floor(burst));
    return policy;
}

gcra_result gcra_check(std::optional<std::int64_t> stored_tat_us, std::int64_t now_us,
                       const gcra_policy& policy) noexcept {
    const std::int64_t interval = policy.emission_interval_us;
    // A TAT in the past means a full bucket, exactly like no TAT at all.
    const std::int64_t tat =
        stored_tat_us.has_value() && *stored_tat_us > now_us ? *stored_tat_us : now_us;
    const std::int64_t new_tat = tat + interval;
    const std::int64_t allow_at = new_tat - policy.tolerance_us();

    gcra_result result;
    result.decision.limit = policy.burst;
    if (now_us < allow_at) {
        result.decision.allowed = false;
        result.decision.remaining = 0;
        result.decision.retry_after = std::chrono::microseconds(allow_at - now_us);
        result.decision.reset_after = std::chrono::microseconds(tat - now_us);
        result.tat_us = tat;
        return result;
    }
    result.decision.allowed = true;
    result.decision.remaining = (now_us - allow_at) / interval;
    result.decision.reset_after = std::chrono::microseconds(new_tat - now_us);
    result.tat_us = new_tat;
    return result;
}

gcra_grant gcra_take(std::optional<std::int64_t> stored_tat_us, std::int64_t now_us,
                     std::int64_t wanted, const gcra_policy& policy) noexcept {
    const std::int64_t interval = policy.emission_interval_us;
    const std::int64_t tat =
        stored_tat_us.has_value() && *stored_tat_us > now_us ? *stored_tat_us : now_us;
    // Negative only for a TAT stored under a larger burst (the limit was lowered since).
    const std::int64_t available =
        std::max<std::int64_t>((now_us + policy.tolerance_us() - tat) / interval, 0);
    gcra_grant out;
    out.granted = std::min(std::max<std::int64_t>(wanted, 0), available);
    out.tat_us = tat + interval * out.granted;
    out.remaining = available - out.granted;
    out.reset_after = std::chrono::microseconds(out.tat_us - now_us);
    if (out.granted < wanted) {
        out.retry_after =
            std::chrono::microseconds(out.tat_us + interval - policy.tolerance_us() - now_us);
    }
    return out;
}

local_rate_limiter::local_rate_limiter(double rate_per_s, double burst, std::size_t max_keys,
                                       metrics::counter* fail_open)
    : policy_(make_gcra_policy(rate_per_s, burst)), max_keys_(max_keys), fail_open_(fail_open) {
    if (max_keys_ == 0) {
        throw std::invalid_argument("rate limit: max_keys must be at least 1");
    }
}

rate_decision local_rate_limiter::check(std::string_view key,
                                        std::chrono::steady_clock::time_point now) {
    const std::int64_t now_us =
        std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
    sweep_some(now_us);

    if (const auto it = tats_.find(key); it != tats_.end()) {
        const gcra_result result = gcra_check(it->second, now_us, policy_);
        it->second = result.tat_us;
        return result.decision;
    }
    const gcra_result result = gcra_check(std::nullopt, now_us, policy_);
    if (tats_.size() >= max_keys_) {
        if (now_us >= next_full_sweep_us_) {
            sweep_all(now_us);
        }
        if (tats_.size() >= max_keys_) {
            // Refusing would let a flood of new keys lock out every newcomer; allowing without
            // recording forgets only this request, and the count makes the saturation visible.
            ++fail_open_count_;
            if (fail_open_ != nullptr) {
                fail_open_->inc();
            }
            return result.decision;
        }
    }
    tats_.emplace(std::string(key), result.tat_us);
    return result.decision;
}

void local_rate_limiter::sweep_some(std::int64_t now_us) {
    if (tats_.empty()) {
        return;
    }
    const std::size_t buckets = tats_.bucket_count();
    for (std::size_t n = 0; n < k_sweep_buckets_per_check; ++n) {
        const std::size_t bucket = sweep_cursor_ % buckets;
        sweep_cursor_ = (bucket + 1) % buckets;
        expired_.clear();
        for (auto it = tats_.begin(bucket); it != tats_.end(bucket); ++it) {
            if (it->second <= now_us) {
                expired_.push_back(it->first);
            }
        }
        // Erasing one node leaves the other nodes (and the keys viewed here) where they are.
        for (const std::string_view expired_key : expired_) {
            tats_.erase(tats_.find(expired_key));
        }
    }
    expired_.clear();
}

void local_rate_limiter::sweep_all(std::int64_t now_us) {
    std::int64_t earliest = std::numeric_limits<std::int64_t>::max();
    for (auto it = tats_.begin(); it != tats_.end();) {
        if (it->second <= now_us) {
            it = tats_.erase(it);
        } else {
            earliest = std::min(earliest, it->second);
            ++it;
        }
    }
    // TATs only move forward, so nothing left here expires before `earliest`; and whatever
    // expires, a full sweep runs at most once per gap (the incremental sweep goes on meanwhile).
    next_full_sweep_us_ = std::max(earliest, now_us + k_full_sweep_gap_us);
}

std::vector<rate_limit_header> rate_limit_headers(const rate_decision& decision) {
    std::vector<rate_limit_header> headers;
    headers.reserve(decision.allowed ? 3 : 4);
    headers.push_back({"RateLimit-Limit", std::to_string(decision.limit)});
    headers.push_back(
        {"RateLimit-Remaining", std::to_string(std::max<std::int64_t>(decision.remaining, 0))});
    headers.push_back({"RateLimit-Reset", std::to_string(ceil_seconds(decision.reset_after))});
    if (!decision.allowed) {
        headers.push_back({"Retry-After", std::to_string(std::max<std::int64_t>(
                                              ceil_seconds(decision.retry_after), 1))});
    }
    return headers;
}

}  // namespace pm_agent::api
