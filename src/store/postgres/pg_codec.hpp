#pragma once
// Private to src/store/postgres: text-format values to and from PostgreSQL (array literals,
// bytea, integer microsecond times), and rows to task / agent records. Sans-I/O.

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pm_agent/pg/pool.hpp"
#include "pm_agent/store/types.hpp"

namespace pm_agent::store::postgres {

using param = std::optional<std::string>;

/// Microseconds since the Unix epoch (what pm_ts()/pm_us() take and give).
std::string micros(time_point t);
time_point from_micros(std::int64_t us);

/// One element of an array literal, quoted and escaped ("a\"b" -> "\"a\\\"b\"").
void append_array_element(std::string& out, std::string_view text);
/// {"a","b"}: a text[] literal.
std::string text_array(std::span<const std::string> items);
/// Parses a text[] in PostgreSQL's output form ({a,"b c"}); NULL elements are skipped.
bool parse_text_array(std::string_view text, std::vector<std::string>& out);

/// Builds a column-wise array literal for unnest(): add() one element per row, then take().
class array_builder {
  public:
    void add(std::string_view text);
    void add_null();
    void add_int(std::int64_t v);
    std::string take();

  private:
    std::string out_ = "{";
    bool first_ = true;
    void sep();
};

/// \x... hex for a bytea parameter, and back.
std::string bytea_hex(std::span<const unsigned char> bytes);
bool parse_bytea_hex(std::string_view text, std::span<unsigned char> out);

std::int64_t to_int(std::string_view text);
double to_double(std::string_view text);

/// The columns of k_task_columns, in order (see sql.hpp); `first` is where they start.
task read_task(const pg::rows& r, std::size_t row, int first = 0);
/// The columns of k_agent_columns, in order.
agent read_agent(const pg::rows& r, std::size_t row, int first = 0);

}  // namespace pm_agent::store::postgres
