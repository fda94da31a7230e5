#pragma once
/// The pool's metrics (pm_agent_db_*), looked up once so the data path only touches references.

#include "pm_agent/metrics/registry.hpp"

namespace pm_agent::pg {

struct pool_metrics {
    explicit pool_metrics(metrics::registry& registry);

    metrics::gauge& connected;    ///< pm_agent_db_pool_connections{state="connected"}
    metrics::gauge& busy;         ///< pm_agent_db_pool_connections{state="busy"}
    metrics::gauge& waiting;      ///< pm_agent_db_pool_waiting
    metrics::gauge& size;         ///< pm_agent_db_pool_size
    metrics::counter& committed;  ///< pm_agent_db_transactions_total{outcome=...}
    metrics::counter& statement_error;
    metrics::counter& connection_error;
    metrics::counter& timeout;
    metrics::counter& overloaded;
    metrics::counter& connect_failures;  ///< pm_agent_db_connect_failures_total
    metrics::histogram& duration;        ///< pm_agent_db_transaction_duration_seconds
};

}  // namespace pm_agent::pg
