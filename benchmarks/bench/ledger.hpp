#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pm_agent::bench {

/// Latency samples in nanoseconds; percentiles by nearest rank over all samples (no histogram
/// bucketing: a run keeps a few million samples at most).
struct latency_summary {
    std::size_t count = 0;
    double p50_ms = 0;
    double p95_ms = 0;
    double p99_ms = 0;
    double max_ms = 0;
    double mean_ms = 0;
};

/// Sorts `samples` in place and summarises them.
latency_summary summarize(std::vector<std::int64_t>& samples);

/// What the ledger found when every submitted id was checked.
struct verification {
    std::size_t confirmed = 0;    // ids answered 2xx to a submitter
    std::size_t lost = 0;         // confirmed but never acknowledged as completed
    std::size_t duplicated = 0;   // delivered or acknowledged more than once
    std::size_t unconfirmed = 0;  // delivered but never answered to a submitter
    std::vector<std::string> lost_examples;
    std::vector<std::string> duplicated_examples;
    std::vector<std::string> unconfirmed_examples;
};

/// Everything one bench process counts: per task id, how often it was confirmed to a submitter,
/// delivered to an agent and acknowledged after completion, so that loss and duplication are
/// found by id rather than by comparing totals.
class ledger {
  public:
    /// Room for a million ids up front: rehashing a large map mid-run shows up as a latency spike.
    ledger() { tasks_.reserve(1 << 20); }

    void confirmed(std::string_view id);
    /// Returns how many times the id has now been delivered.
    std::uint32_t delivered(std::string_view id);
    void acknowledged(std::string_view id);
    void error(std::string_view kind) { ++errors_[std::string(kind)]; }

    verification verify(std::size_t max_examples) const;
    const std::map<std::string, std::uint64_t>& errors() const { return errors_; }
    std::uint64_t error_count() const;

    std::vector<std::int64_t> submit_ns;
    std::vector<std::int64_t> dispatch_ns;
    std::vector<std::int64_t> e2e_ns;
    std::vector<std::int64_t> heartbeat_ns;

    std::uint64_t submit_requests = 0;
    std::uint64_t tasks_confirmed = 0;
    std::uint64_t tasks_delivered = 0;
    std::uint64_t tasks_acknowledged = 0;
    std::uint64_t heartbeats_sent = 0;
    std::uint64_t agents_registered = 0;
    /// Tasks an agent has received and not yet seen acknowledged.
    std::int64_t agent_in_flight = 0;
    /// Ids confirmed to a submitter and not yet acknowledged: the drain waits for 0.
    std::int64_t outstanding = 0;

  private:
    struct entry {
        std::uint32_t confirmed = 0;
        std::uint32_t delivered = 0;
        std::uint32_t acknowledged = 0;
    };
    std::unordered_map<std::string, entry> tasks_;
    std::map<std::string, std::uint64_t> errors_;
};

}  // namespace pm_agent::bench
