// RFC 3339 times for the JSON codec: formatting without locale or allocation beyond the output,
// and a strict parser for the forms clients send.

#include <chrono>
#include <cstdio>

#include "pm_agent/api/codec.hpp"

namespace pm_agent::api {
namespace {

using namespace std::chrono;

void append_digits(std::string& out, unsigned value, int width) {
    char buf[8];
    for (int i = width - 1; i >= 0; --i) {
        buf[i] = static_cast<char>('0' + value % 10);
        value /= 10;
    }
    out.append(buf, static_cast<std::size_t>(width));
}

/// Reads exactly `width` digits at text[pos].
std::optional<int> read_digits(std::string_view text, std::size_t pos, int width) {
    if (pos + static_cast<std::size_t>(width) > text.size()) {
        return std::nullopt;
    }
    int value = 0;
    for (int i = 0; i < width; ++i) {
        const char c = text[pos + static_cast<std::size_t>(i)];
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        value = value * 10 + (c - '0');
    }
    return value;
}

}  // namespace

void append_rfc3339(std::string& out, store::time_point t) {
    const auto ms = time_point_cast<milliseconds>(t);
    const auto day = floor<days>(ms);
    const year_month_day ymd{day};
    const hh_mm_ss<milliseconds> tod{ms - day};
    append_digits(out, static_cast<unsigned>(static_cast<int>(ymd.year())), 4);
    out.push_back('-');
    append_digits(out, static_cast<unsigned>(ymd.month()), 2);
    out.push_back('-');
    append_digits(out, static_cast<unsigned>(ymd.day()), 2);
    out.push_back('T');
    append_digits(out, static_cast<unsigned>(tod.hours().count()), 2);
    out.push_back(':');
    append_digits(out, static_cast<unsigned>(tod.minutes().count()), 2);
    out.push_back(':');
    append_digits(out, static_cast<unsigned>(tod.seconds().count()), 2);
    out.push_back('.');
    append_digits(out, static_cast<unsigned>(tod.subseconds().count()), 3);
    out.push_back('Z');
}

std::string format_rfc3339(store::time_point t) {
    std::string out;
    out.reserve(24);
    append_rfc3339(out, t);
    return out;
}

std::optional<store::time_point> parse_rfc3339(std::string_view text) {
    auto year = read_digits(text, 0, 4);
    auto month = read_digits(text, 5, 2);
    auto mday = read_digits(text, 8, 2);
    auto hour = read_digits(text, 11, 2);
    auto minute = read_digits(text, 14, 2);
    auto second = read_digits(text, 17, 2);
    if (!year || !month || !mday || !hour || !minute || !second || text[4] != '-' ||
        text[7] != '-' || (text[10] != 'T' && text[10] != 't' && text[10] != ' ') ||
        text[13] != ':' || text[16] != ':') {
        return std::nullopt;
    }
    const year_month_day ymd{std::chrono::year{*year},
                             std::chrono::month{static_cast<unsigned>(*month)},
                             std::chrono::day{static_cast<unsigned>(*mday)}};
    // Years store::time_point (int64 nanoseconds since 1970) holds without wrapping: 1678-2261
    // would do, 1970-2200 is what a task can mean.
    if (!ymd.ok() || *year < 1970 || *year > 2200 || *hour > 23 || *minute > 59 || *second > 60) {
        return std::nullopt;
    }
    std::size_t pos = 19;
    nanoseconds fraction{0};
    if (pos < text.size() && text[pos] == '.') {
        ++pos;
        std::int64_t scale = 100'000'000;
        const std::size_t start = pos;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
            fraction += nanoseconds((text[pos] - '0') * scale);
            scale /= 10;
            ++pos;
        }
        if (pos == start) {
            return std::nullopt;
        }
    }
    if (pos >= text.size()) {
        return std::nullopt;
    }
    minutes offset{0};
    if (text[pos] == 'Z' || text[pos] == 'z') {
        ++pos;
    } else if (text[pos] == '+' || text[pos] == '-') {
        auto oh = read_digits(text, pos + 1, 2);
        auto om = read_digits(text, pos + 4, 2);
        if (!oh || !om || text[pos + 3] != ':' || *oh > 23 || *om > 59) {
            return std::nullopt;
        }
        offset = hours(*oh) + minutes(*om);
        if (text[pos] == '-') {
            offset = -offset;
        }
        pos += 6;
    } else {
        return std::nullopt;
    }
    if (pos != text.size()) {
        return std::nullopt;
    }
    const auto local =
        sys_days{ymd} + hours(*hour) + minutes(*minute) + seconds(*second) + fraction;
    return time_point_cast<store::clock::duration>(local - offset);
}

}  // namespace pm_agent::api
