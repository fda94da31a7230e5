#pragma once

#include <boost/json/value.hpp>
#include <string>

#include "ledger.hpp"
#include "load.hpp"
#include "options.hpp"

namespace pm_agent::bench {

/// The JSON entry of one run (the shape is described in benchmarks/README.md).
boost::json::object build_report(const options& opt, ledger& book, const run_timeline& r);

/// Appends `entry` to the JSON array in `path` (created when absent); the file is replaced
/// atomically and never overwritten when it does not hold an array. Returns an error text.
std::string append_report(const std::string& path, const boost::json::object& entry);

/// The human summary of `entry` on stdout.
void print_summary(const boost::json::object& entry);

/// True when the run found no error, no lost and no duplicated task.
bool run_clean(const boost::json::object& entry);

}  // namespace pm_agent::bench
