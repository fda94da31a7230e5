#include "pm_agent/metrics/text_format.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>

namespace pm_agent::metrics {
namespace {

bool is_ascii_letter(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool is_ascii_digit(char c) noexcept {
    return c >= '0' && c <= '9';
}

bool is_continuation(unsigned char c) noexcept {
    return (c & 0xC0) == 0x80;
}

/// Length of the well-formed UTF-8 sequence starting at text[pos], or 0 when it is ill-formed.
/// Follows the table of well-formed byte sequences in the Unicode standard (ch. 3, table 3-7).
std::size_t utf8_sequence_length(std::string_view text, std::size_t pos) noexcept {
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[pos + i]); };
    const unsigned char lead = byte(0);
    if (lead < 0x80) {
        return 1;
    }
    std::size_t length = 0;
    unsigned char second_min = 0x80;
    unsigned char second_max = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        if (lead == 0xE0) {
            second_min = 0xA0;  // overlong below U+0800
        } else if (lead == 0xED) {
            second_max = 0x9F;  // UTF-16 surrogates
        }
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        if (lead == 0xF0) {
            second_min = 0x90;  // overlong below U+10000
        } else if (lead == 0xF4) {
            second_max = 0x8F;  // past U+10FFFF
        }
    } else {
        return 0;
    }
    if (pos + length > text.size()) {
        return 0;
    }
    if (byte(1) < second_min || byte(1) > second_max) {
        return 0;
    }
    for (std::size_t i = 2; i < length; ++i) {
        if (!is_continuation(byte(i))) {
            return 0;
        }
    }
    return length;
}

}  // namespace

bool is_valid_metric_name(std::string_view name) noexcept {
    if (name.empty() || is_ascii_digit(name.front())) {
        return false;
    }
    for (const char c : name) {
        if (!is_ascii_letter(c) && !is_ascii_digit(c) && c != '_' && c != ':') {
            return false;
        }
    }
    return true;
}

bool is_valid_label_name(std::string_view name) noexcept {
    if (name.empty() || is_ascii_digit(name.front()) || name.starts_with("__")) {
        return false;
    }
    for (const char c : name) {
        if (!is_ascii_letter(c) && !is_ascii_digit(c) && c != '_') {
            return false;
        }
    }
    return true;
}

bool is_valid_utf8(std::string_view text) noexcept {
    std::size_t pos = 0;
    while (pos < text.size()) {
        const std::size_t length = utf8_sequence_length(text, pos);
        if (length == 0) {
            return false;
        }
        pos += length;
    }
    return true;
}

std::string sanitize_utf8(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    std::size_t pos = 0;
    while (pos < text.size()) {
        const std::size_t length = utf8_sequence_length(text, pos);
        if (length == 0) {
            out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER, one per bad byte
            ++pos;
        } else {
            out.append(text.substr(pos, length));
            pos += length;
        }
    }
    return out;
}

void append_label_value(std::string& out, std::string_view value) {
    for (const char c : value) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
}

void append_help(std::string& out, std::string_view help) {
    for (const char c : help) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
}

void append_number(std::string& out, double value) {
    if (std::isnan(value)) {
        out += "NaN";
        return;
    }
    if (std::isinf(value)) {
        out += value > 0 ? "+Inf" : "-Inf";
        return;
    }
    // Every integer below 2^53 is exact in a double; print those as integers so that counters
    // read "1000000", not "1e+06". The shortest round-trip form covers the rest.
    constexpr double k_exact_integer_limit = 9007199254740992.0;
    char buffer[32];
    std::to_chars_result result;
    if (value == std::trunc(value) && std::fabs(value) < k_exact_integer_limit) {
        result = std::to_chars(buffer, buffer + sizeof buffer, static_cast<std::int64_t>(value));
    } else {
        // general: fixed notation unless the exponent is below -4, like Go's %g ("0.0005").
        result = std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::general);
    }
    out.append(buffer, result.ptr);
}

}  // namespace pm_agent::metrics
