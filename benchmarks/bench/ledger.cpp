// Task accounting of one bench process.

#include "ledger.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace pm_agent::bench {
namespace {

double ms(std::int64_t ns) {
    return static_cast<double>(ns) / 1e6;
}

/// Nearest-rank percentile of sorted, non-empty samples: the ceil(p * n)-th smallest.
std::int64_t rank(const std::vector<std::int64_t>& sorted, double p) {
    auto nth = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
    nth = std::clamp<std::size_t>(nth, 1, sorted.size());
    return sorted[nth - 1];
}

void note(std::vector<std::string>& examples, std::size_t max, const std::string& id) {
    if (examples.size() < max) {
        examples.push_back(id);
    }
}

}  // namespace

latency_summary summarize(std::vector<std::int64_t>& samples) {
    latency_summary s;
    s.count = samples.size();
    if (samples.empty()) {
        return s;
    }
    std::sort(samples.begin(), samples.end());
    s.p50_ms = ms(rank(samples, 0.50));
    s.p95_ms = ms(rank(samples, 0.95));
    s.p99_ms = ms(rank(samples, 0.99));
    s.max_ms = ms(samples.back());
    const double total = std::accumulate(samples.begin(), samples.end(), 0.0,
                                         [](double a, std::int64_t b) { return a + ms(b); });
    s.mean_ms = total / static_cast<double>(samples.size());
    return s;
}

void ledger::confirmed(std::string_view id) {
    ++tasks_confirmed;
    auto& e = tasks_[std::string(id)];
    if (e.confirmed == 0 && e.acknowledged == 0) {
        ++outstanding;
    }
    ++e.confirmed;
}

std::uint32_t ledger::delivered(std::string_view id) {
    ++tasks_delivered;
    return ++tasks_[std::string(id)].delivered;
}

void ledger::acknowledged(std::string_view id) {
    ++tasks_acknowledged;
    auto& e = tasks_[std::string(id)];
    if (e.acknowledged == 0 && e.confirmed > 0) {
        --outstanding;
    }
    ++e.acknowledged;
}

std::uint64_t ledger::error_count() const {
    std::uint64_t n = 0;
    for (const auto& [kind, count] : errors_) {
        n += count;
    }
    return n;
}

verification ledger::verify(std::size_t max_examples) const {
    verification v;
    for (const auto& [id, e] : tasks_) {
        if (e.confirmed > 0) {
            ++v.confirmed;
            if (e.acknowledged == 0) {
                ++v.lost;
                note(v.lost_examples, max_examples, id);
            }
        } else if (e.delivered > 0) {
            ++v.unconfirmed;
            note(v.unconfirmed_examples, max_examples, id);
        }
        if (e.delivered > 1 || e.acknowledged > 1 || e.confirmed > 1) {
            ++v.duplicated;
            note(v.duplicated_examples, max_examples, id);
        }
    }
    return v;
}

}  // namespace pm_agent::bench
