#pragma once
/// Process logging: one spdlog async logger whose queue drops the oldest line when full, so
/// the loop never blocks on a slow terminal or disk. Lines are key=value text or JSON objects.

#include <cstddef>
#include <string>

namespace pm_agent::log {

/// Installs the default logger. `level` is one of trace, debug, info, warn, error; `json`
/// selects JSON lines.
void init(const std::string& level, bool json);

/// Lines dropped because the queue was full, since start-up.
std::size_t dropped_lines();

/// Flushes and stops the background thread (at exit).
void shutdown();

}  // namespace pm_agent::log
