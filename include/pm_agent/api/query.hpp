#pragma once
/// Query strings of list endpoints: `a=1&b=x%20y` -> decoded name/value pairs.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pm_agent::api {

using query_params = std::vector<std::pair<std::string, std::string>>;

/// Splits and percent-decodes (and '+' -> space). nullopt on a malformed escape.
std::optional<query_params> parse_query(std::string_view query);

}  // namespace pm_agent::api
