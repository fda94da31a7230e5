#pragma once
// Private to src/config: one codec per kind of configuration value. A codec reads a value from
// JSON or from flag/environment text, checks its range, and writes it back as JSON for
// render_masked(). Error texts never name the key (the loader adds key and source) and never
// echo a secret.

#include <boost/json/value.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pm_agent::config::detail {

/// A value, or why it was refused.
template <class T>
struct parsed {
    std::optional<T> value;
    std::string error;

    static parsed ok(T v) { return parsed{std::move(v), {}}; }
    static parsed fail(std::string why) { return parsed{std::nullopt, std::move(why)}; }
};

std::string_view trim(std::string_view text);
/// "'text'" shortened and with control characters replaced, safe to print in an error.
std::string quoted(std::string_view text);
/// "a string", "an array", ... for "expected X, got Y".
std::string_view kind_name(const boost::json::value& value);

parsed<std::int64_t> integer_from_json(const boost::json::value& value, std::int64_t min,
                                       std::int64_t max);
parsed<std::int64_t> integer_from_text(std::string_view text, std::int64_t min, std::int64_t max);

/// Whole numbers of type T in [min, max].
template <class T>
struct integer_codec {
    std::int64_t min = 1;
    std::int64_t max = static_cast<std::int64_t>(std::min<std::uint64_t>(
        std::numeric_limits<T>::max(), std::numeric_limits<std::int64_t>::max()));

    parsed<T> convert(parsed<std::int64_t> p) const {
        if (!p.value) {
            return parsed<T>::fail(std::move(p.error));
        }
        return parsed<T>::ok(static_cast<T>(*p.value));
    }
    parsed<T> from_json(const boost::json::value& v) const {
        return convert(integer_from_json(v, min, max));
    }
    parsed<T> from_text(std::string_view t) const {
        return convert(integer_from_text(t, min, max));
    }
    boost::json::value to_json(T v) const { return static_cast<std::int64_t>(v); }
};

/// Durations as a whole number of units (seconds or milliseconds), at least 1. The upper bound
/// keeps any later conversion to nanoseconds (timers) from overflowing.
template <class Duration>
struct duration_codec {
    static constexpr std::int64_t max =
        std::chrono::duration_cast<Duration>(std::chrono::seconds(1'000'000'000)).count();

    parsed<Duration> convert(parsed<std::int64_t> p) const {
        if (!p.value) {
            return parsed<Duration>::fail(std::move(p.error));
        }
        return parsed<Duration>::ok(Duration(*p.value));
    }
    parsed<Duration> from_json(const boost::json::value& v) const {
        return convert(integer_from_json(v, 1, max));
    }
    parsed<Duration> from_text(std::string_view t) const {
        return convert(integer_from_text(t, 1, max));
    }
    boost::json::value to_json(Duration d) const { return static_cast<std::int64_t>(d.count()); }
};

/// Finite numbers above `min` (or at least `min` when `min_inclusive`).
struct number_codec {
    double min = 0;
    bool min_inclusive = false;

    parsed<double> check(double v) const;
    parsed<double> from_json(const boost::json::value& v) const;
    parsed<double> from_text(std::string_view t) const;
    boost::json::value to_json(double v) const { return v; }
};

/// JSON true/false; text true/false, 1/0, yes/no, on/off.
struct bool_codec {
    parsed<bool> from_json(const boost::json::value& v) const;
    parsed<bool> from_text(std::string_view t) const;
    boost::json::value to_json(bool v) const { return v; }
};

/// A non-empty string without blanks or control characters (a host name or address).
struct word_codec {
    parsed<std::string> check(std::string_view v) const;
    parsed<std::string> from_json(const boost::json::value& v) const;
    parsed<std::string> from_text(std::string_view t) const { return check(trim(t)); }
    boost::json::value to_json(const std::string& v) const { return boost::json::string(v); }
};

/// One name out of a fixed set, matched without regard to case.
template <class T>
struct choice_codec {
    std::vector<std::pair<std::string_view, T>> choices;

    parsed<T> lookup(std::string_view text) const;
    parsed<T> from_json(const boost::json::value& v) const {
        if (!v.is_string()) {
            return parsed<T>::fail("expected a string, got " + std::string(kind_name(v)));
        }
        return lookup(v.get_string());
    }
    parsed<T> from_text(std::string_view t) const { return lookup(trim(t)); }
    boost::json::value to_json(const T& v) const {
        for (const auto& [name, value] : choices) {
            if (value == v) {
                return boost::json::string(name);
            }
        }
        return nullptr;
    }
};

/// `names` as "a, b, c" for messages.
std::string join_names(const std::vector<std::string_view>& names);
bool iequals(std::string_view a, std::string_view b);

template <class T>
parsed<T> choice_codec<T>::lookup(std::string_view text) const {
    std::vector<std::string_view> names;
    for (const auto& [name, value] : choices) {
        if (iequals(name, text)) {
            return parsed<T>::ok(value);
        }
        names.push_back(name);
    }
    return parsed<T>::fail(quoted(text) + " is not one of " + join_names(names));
}

/// Bearer tokens: a JSON array of strings, or comma-separated text (blanks trimmed, empty
/// entries dropped). Errors give the entry's position, never its text.
struct token_list_codec {
    parsed<std::vector<std::string>> from_json(const boost::json::value& v) const;
    parsed<std::vector<std::string>> from_text(std::string_view t) const;
    boost::json::value to_json(const std::vector<std::string>& v) const;
};

/// Address ranges, each one accepted by cidr::parse; same shapes as token_list_codec.
struct cidr_list_codec {
    parsed<std::vector<std::string>> from_json(const boost::json::value& v) const;
    parsed<std::vector<std::string>> from_text(std::string_view t) const;
    boost::json::value to_json(const std::vector<std::string>& v) const;
};

/// An optional URL with one of the given schemes. JSON null and empty text mean "not set".
/// Errors show at most the scheme: a malformed URL may still hold a password.
struct url_codec {
    std::vector<std::string_view> schemes;

    parsed<std::optional<std::string>> check(std::string_view url) const;
    parsed<std::optional<std::string>> from_json(const boost::json::value& v) const;
    parsed<std::optional<std::string>> from_text(std::string_view t) const;
    boost::json::value to_json(const std::optional<std::string>& v) const;
};

}  // namespace pm_agent::config::detail
