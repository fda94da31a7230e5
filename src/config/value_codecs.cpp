#include "config/value_codecs.hpp"

#include <fmt/format.h>
#include <boost/json/array.hpp>
#include <boost/json/string.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

#include "pm_agent/config/cidr.hpp"

namespace pm_agent::config::detail {
namespace {

constexpr std::size_t k_max_quoted = 64;

bool is_blank_or_control(char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f;
}

std::string range_text(std::int64_t min, std::int64_t max) {
    if (max == std::numeric_limits<std::int64_t>::max()) {
        return fmt::format("at least {}", min);
    }
    return fmt::format("in {}..{}", min, max);
}

parsed<std::int64_t> in_range(std::int64_t v, std::int64_t min, std::int64_t max) {
    if (v < min || v > max) {
        return parsed<std::int64_t>::fail(
            fmt::format("{} is out of range (must be {})", v, range_text(min, max)));
    }
    return parsed<std::int64_t>::ok(v);
}

// Splits comma-separated text, trimming blanks and dropping empty entries ("a, b,,c ").
std::vector<std::string> split_list(std::string_view text) {
    std::vector<std::string> entries;
    while (true) {
        const auto comma = text.find(',');
        const auto entry = trim(text.substr(0, comma));
        if (!entry.empty()) {
            entries.emplace_back(entry);
        }
        if (comma == std::string_view::npos) {
            return entries;
        }
        text.remove_prefix(comma + 1);
    }
}

// A JSON array of strings; errors count entries from 1.
parsed<std::vector<std::string>> string_array(const boost::json::value& v) {
    using result = parsed<std::vector<std::string>>;
    if (!v.is_array()) {
        return result::fail("expected an array of strings, got " + std::string(kind_name(v)));
    }
    std::vector<std::string> entries;
    std::size_t position = 0;
    for (const auto& entry : v.get_array()) {
        ++position;
        if (!entry.is_string()) {
            return result::fail(
                fmt::format("entry {} is {}, expected a string", position, kind_name(entry)));
        }
        entries.emplace_back(entry.get_string());
    }
    return result::ok(std::move(entries));
}

boost::json::value string_array_json(const std::vector<std::string>& entries) {
    boost::json::array array;
    for (const auto& entry : entries) {
        array.emplace_back(boost::json::string(entry));
    }
    return array;
}

parsed<std::vector<std::string>> check_tokens(parsed<std::vector<std::string>> p) {
    if (!p.value) {
        return p;
    }
    std::size_t position = 0;
    for (const auto& token : *p.value) {
        ++position;
        // A bearer token travels in an Authorization header, where blanks would split it.
        if (token.empty()) {
            return parsed<std::vector<std::string>>::fail(
                fmt::format("token {} is empty", position));
        }
        if (std::any_of(token.begin(), token.end(), is_blank_or_control)) {
            return parsed<std::vector<std::string>>::fail(
                fmt::format("token {} contains blanks or control characters", position));
        }
    }
    return p;
}

parsed<std::vector<std::string>> check_cidrs(parsed<std::vector<std::string>> p) {
    if (!p.value) {
        return p;
    }
    std::size_t position = 0;
    for (const auto& entry : *p.value) {
        ++position;
        if (!cidr::parse(entry)) {
            return parsed<std::vector<std::string>>::fail(fmt::format(
                "entry {} ({}) is not an address or address/prefix (e.g. 10.0.0.0/8, ::1/128)",
                position, quoted(entry)));
        }
    }
    return p;
}

}  // namespace

std::string_view trim(std::string_view text) {
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
        text.remove_prefix(1);
    }
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
        text.remove_suffix(1);
    }
    return text;
}

std::string quoted(std::string_view text) {
    std::string out = "'";
    for (std::size_t i = 0; i < text.size() && i < k_max_quoted; ++i) {
        const auto u = static_cast<unsigned char>(text[i]);
        out += (u < 0x20 || u == 0x7f) ? '?' : text[i];
    }
    if (text.size() > k_max_quoted) {
        out += "...";
    }
    return out + "'";
}

std::string_view kind_name(const boost::json::value& value) {
    switch (value.kind()) {
        case boost::json::kind::null:
            return "null";
        case boost::json::kind::bool_:
            return "a boolean";
        case boost::json::kind::int64:
        case boost::json::kind::uint64:
            return "an integer";
        case boost::json::kind::double_:
            return "a number with a fraction or exponent";
        case boost::json::kind::string:
            return "a string";
        case boost::json::kind::array:
            return "an array";
        case boost::json::kind::object:
            return "an object";
    }
    return "an unknown value";
}

std::string join_names(const std::vector<std::string_view>& names) {
    std::string out;
    for (const auto name : names) {
        out += out.empty() ? "" : ", ";
        out += name;
    }
    return out;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

parsed<std::int64_t> integer_from_json(const boost::json::value& value, std::int64_t min,
                                       std::int64_t max) {
    if (value.is_int64()) {
        return in_range(value.get_int64(), min, max);
    }
    if (value.is_uint64()) {  // only numbers above INT64_MAX are stored as uint64
        return parsed<std::int64_t>::fail(fmt::format("{} is out of range (must be {})",
                                                      value.get_uint64(), range_text(min, max)));
    }
    return parsed<std::int64_t>::fail("expected an integer, got " + std::string(kind_name(value)));
}

parsed<std::int64_t> integer_from_text(std::string_view text, std::int64_t min, std::int64_t max) {
    const auto digits = trim(text);
    std::int64_t v = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
    if (ec == std::errc::result_out_of_range) {
        return parsed<std::int64_t>::fail(
            fmt::format("{} is out of range (must be {})", quoted(digits), range_text(min, max)));
    }
    if (ec != std::errc{} || end != digits.data() + digits.size()) {
        return parsed<std::int64_t>::fail(quoted(text) + " is not an integer");
    }
    return in_range(v, min, max);
}

parsed<double> number_codec::check(double v) const {
    const bool above = min_inclusive ? v >= min : v > min;
    if (!std::isfinite(v) || !above) {
        return parsed<double>::fail(
            fmt::format("{} is out of range (must be {} {})", v, min_inclusive ? ">=" : ">", min));
    }
    return parsed<double>::ok(v);
}

parsed<double> number_codec::from_json(const boost::json::value& v) const {
    if (!v.is_number()) {
        return parsed<double>::fail("expected a number, got " + std::string(kind_name(v)));
    }
    return check(v.to_number<double>());
}

parsed<double> number_codec::from_text(std::string_view t) const {
    const auto digits = trim(t);
    double v = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
    if (ec != std::errc{} || end != digits.data() + digits.size()) {
        return parsed<double>::fail(quoted(t) + " is not a number");
    }
    return check(v);
}

parsed<bool> bool_codec::from_json(const boost::json::value& v) const {
    if (!v.is_bool()) {
        return parsed<bool>::fail("expected true or false, got " + std::string(kind_name(v)));
    }
    return parsed<bool>::ok(v.get_bool());
}

parsed<bool> bool_codec::from_text(std::string_view t) const {
    const auto word = trim(t);
    for (const auto yes : {"true", "1", "yes", "on"}) {
        if (iequals(word, yes)) {
            return parsed<bool>::ok(true);
        }
    }
    for (const auto no : {"false", "0", "no", "off"}) {
        if (iequals(word, no)) {
            return parsed<bool>::ok(false);
        }
    }
    return parsed<bool>::fail(quoted(t) + " is not a boolean (true/false, 1/0, yes/no, on/off)");
}

parsed<std::string> word_codec::check(std::string_view v) const {
    if (v.empty()) {
        return parsed<std::string>::fail("must not be empty");
    }
    if (std::any_of(v.begin(), v.end(), is_blank_or_control)) {
        return parsed<std::string>::fail(quoted(v) + " contains blanks or control characters");
    }
    return parsed<std::string>::ok(std::string(v));
}

parsed<std::string> word_codec::from_json(const boost::json::value& v) const {
    if (!v.is_string()) {
        return parsed<std::string>::fail("expected a string, got " + std::string(kind_name(v)));
    }
    return check(v.get_string());
}

parsed<std::vector<std::string>> token_list_codec::from_json(const boost::json::value& v) const {
    return check_tokens(string_array(v));
}

parsed<std::vector<std::string>> token_list_codec::from_text(std::string_view t) const {
    return check_tokens(parsed<std::vector<std::string>>::ok(split_list(t)));
}

boost::json::value token_list_codec::to_json(const std::vector<std::string>& v) const {
    return string_array_json(v);
}

parsed<std::vector<std::string>> cidr_list_codec::from_json(const boost::json::value& v) const {
    return check_cidrs(string_array(v));
}

parsed<std::vector<std::string>> cidr_list_codec::from_text(std::string_view t) const {
    return check_cidrs(parsed<std::vector<std::string>>::ok(split_list(t)));
}

boost::json::value cidr_list_codec::to_json(const std::vector<std::string>& v) const {
    return string_array_json(v);
}

parsed<std::optional<std::string>> url_codec::check(std::string_view url) const {
    using result = parsed<std::optional<std::string>>;
    const auto separator = url.find("://");
    for (const auto scheme : schemes) {
        if (separator != std::string_view::npos && iequals(url.substr(0, separator), scheme)) {
            if (separator + 3 == url.size()) {
                return result::fail(fmt::format("{}:// is missing the host", scheme));
            }
            if (std::any_of(url.begin(), url.end(), is_blank_or_control)) {
                return result::fail("contains blanks or control characters");
            }
            return result::ok(std::string(url));
        }
    }
    std::string expected;
    for (const auto scheme : schemes) {
        expected += fmt::format("{}{}://", expected.empty() ? "" : " or ", scheme);
    }
    const auto got = separator == std::string_view::npos
                         ? std::string("text without a scheme")
                         : "scheme " + quoted(url.substr(0, separator));
    return result::fail(fmt::format("expected a URL starting with {}, got {}", expected, got));
}

parsed<std::optional<std::string>> url_codec::from_json(const boost::json::value& v) const {
    if (v.is_null()) {
        return parsed<std::optional<std::string>>::ok(std::nullopt);
    }
    if (!v.is_string()) {
        return parsed<std::optional<std::string>>::fail("expected a URL string or null, got " +
                                                        std::string(kind_name(v)));
    }
    return check(v.get_string());
}

parsed<std::optional<std::string>> url_codec::from_text(std::string_view t) const {
    const auto url = trim(t);
    if (url.empty()) {
        return parsed<std::optional<std::string>>::ok(std::nullopt);
    }
    return check(url);
}

boost::json::value url_codec::to_json(const std::optional<std::string>& v) const {
    if (!v) {
        return nullptr;
    }
    return boost::json::string(*v);
}

}  // namespace pm_agent::config::detail
