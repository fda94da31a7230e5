#pragma once
// Text the edges accept: well-formed UTF-8 (RFC 3629) that every store keeps as sent. PostgreSQL
// cannot hold U+0000 in a text value (libpq would cut the value there, or the server refuse
// it), so the wire refuses it everywhere, for one behaviour on every store.

#include <string_view>

namespace pm_agent::core {

/// True when text is well-formed UTF-8: no overlong forms, surrogates or code points past
/// U+10FFFF, no sequence cut short.
bool is_utf8(std::string_view text) noexcept;

/// True when text is UTF-8 without U+0000: what a name, queue, key or message may be.
bool is_storable_text(std::string_view text) noexcept;

/// Text without the spaces and tabs around it (HTTP's optional whitespace, RFC 9110 §5.6.3):
/// one element of a comma- or semicolon-separated header value.
std::string_view trim_blanks(std::string_view text) noexcept;

/// Takes the next element off a `delimiter`-separated header list ("gzip, chunked"), trimmed
/// of blanks; `list` keeps what follows the delimiter (empty after the last element). An
/// empty element ("a,,b") comes back empty.
std::string_view take_element(std::string_view& list, char delimiter) noexcept;

/// ASCII case-insensitive equality (header names, tokens, URL schemes).
bool iequals_ascii(std::string_view a, std::string_view b) noexcept;

}  // namespace pm_agent::core
