// Registration of the pool's metrics.

#include "pg/pool_metrics.hpp"

#include <span>

namespace pm_agent::pg {

namespace {

metrics::gauge_family& connections(metrics::registry& registry) {
    return registry.gauge("pm_agent_db_pool_connections",
                          "Database pool connections: usable (connected) and with a transaction "
                          "in flight (busy)",
                          {"state"});
}

metrics::counter_family& transactions(metrics::registry& registry) {
    return registry.counter("pm_agent_db_transactions_total",
                            "Database transactions answered, by outcome", {"outcome"});
}

}  // namespace

pool_metrics::pool_metrics(metrics::registry& registry)
    : connected(connections(registry).with({"connected"})),
      busy(connections(registry).with({"busy"})),
      waiting(registry
                  .gauge("pm_agent_db_pool_waiting",
                         "Database transactions queued for a free connection")
                  .get()),
      size(registry.gauge("pm_agent_db_pool_size", "Database pool connections configured").get()),
      committed(transactions(registry).with({"committed"})),
      statement_error(transactions(registry).with({"statement_error"})),
      connection_error(transactions(registry).with({"connection_error"})),
      timeout(transactions(registry).with({"timeout"})),
      overloaded(transactions(registry).with({"overloaded"})),
      connect_failures(registry
                           .counter("pm_agent_db_connect_failures_total",
                                    "Database connection attempts that failed")
                           .get()),
      duration(registry
                   .histogram("pm_agent_db_transaction_duration_seconds",
                              "Time from transact() to its answer, queueing included (overloaded "
                              "refusals not observed)",
                              std::span<const double>(metrics::k_default_latency_buckets))
                   .get()) {}

}  // namespace pm_agent::pg
