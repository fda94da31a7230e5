#pragma once
/// How this process names itself to others: agents' `worker` field, the PostgreSQL store's
/// pm_workers row, cluster messages.

#include <string>

namespace pm_agent::process {

/// "host:pid" of this process ("unknown:pid" when the host name cannot be read).
std::string worker_identity();

}  // namespace pm_agent::process
