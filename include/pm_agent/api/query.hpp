#pragma once
/// Query strings of list endpoints: `a=1&b=x%20y` -> decoded name/value pairs.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pm_agent::api {

using query_params = std::vector<std::pair<std::string, std::string>>;

/// Splits and percent-decodes (and '+' -> space). nullopt on a malformed escape, or a name or
/// value that does not decode to UTF-8 without U+0000 (it is compared with stored text).
std::optional<query_params> parse_query(std::string_view query);

/// The 400 message for a query string parse_query refused.
inline constexpr std::string_view k_malformed_query =
    "malformed query string (names and values: percent-encoded UTF-8 without U+0000)";

}  // namespace pm_agent::api
