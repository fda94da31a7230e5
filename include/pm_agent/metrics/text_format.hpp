#pragma once
/// Building blocks of the Prometheus text exposition format 0.0.4: name validation, escaping and
/// number spelling. Used by the registry's renderer; public so that tests (and anything else
/// that writes exposition text) spell things exactly the same way.

#include <string>
#include <string_view>

namespace pm_agent::metrics {

/// True when name matches the Prometheus metric name regex [a-zA-Z_:][a-zA-Z0-9_:]*.
bool is_valid_metric_name(std::string_view name) noexcept;

/// True when name matches [a-zA-Z_][a-zA-Z0-9_]* and does not start with "__" (reserved for
/// Prometheus' internal labels).
bool is_valid_label_name(std::string_view name) noexcept;

/// True when text is well-formed UTF-8 (no overlong forms, surrogates or code points past
/// U+10FFFF). Prometheus rejects a whole scrape over one bad label value.
bool is_valid_utf8(std::string_view text) noexcept;

/// text with every ill-formed UTF-8 sequence replaced by U+FFFD.
std::string sanitize_utf8(std::string_view text);

/// Appends a label value escaped for use between double quotes: backslash, double quote and
/// line feed become \\, \" and \n.
void append_label_value(std::string& out, std::string_view value);

/// Appends HELP text escaped: backslash and line feed become \\ and \n (quotes stay as they are).
void append_help(std::string& out, std::string_view help);

/// Appends a sample value the way Prometheus spells it: integers up to 2^53 without exponent or
/// fraction ("42"), other finite values in the shortest form that reads back exactly, and
/// "+Inf", "-Inf", "NaN".
void append_number(std::string& out, double value);

}  // namespace pm_agent::metrics
