#pragma once

#include <boost/json/value.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pm_agent::bench {

/// Appends `text` as a JSON string literal (ids come from the server: escape them anyway).
inline void append_quoted(std::string& out, std::string_view text) {
    constexpr char hex[] = "0123456789abcdef";
    out.push_back('"');
    for (char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(c);
        } else if (u < 0x20) {
            out += "\\u00";
            out.push_back(hex[u >> 4]);
            out.push_back(hex[u & 0xf]);
        } else {
            out.push_back(c);
        }
    }
    out.push_back('"');
}

/// `object[key]` as a string, if it is one.
inline std::optional<std::string_view> string_at(const boost::json::value& v,
                                                 std::string_view key) {
    const auto* object = v.if_object();
    if (object == nullptr) {
        return std::nullopt;
    }
    const auto* field = object->if_contains(key);
    if (field == nullptr || !field->is_string()) {
        return std::nullopt;
    }
    const auto& s = field->get_string();
    return std::string_view(s.data(), s.size());
}

/// The submit timestamp the bench put in a task's payload (`{"t": ns, ...}`).
inline std::optional<std::int64_t> submit_stamp(const boost::json::value& task) {
    const auto* object = task.if_object();
    const auto* payload = object != nullptr ? object->if_contains("payload") : nullptr;
    const auto* payload_object = payload != nullptr ? payload->if_object() : nullptr;
    const auto* t = payload_object != nullptr ? payload_object->if_contains("t") : nullptr;
    if (t == nullptr) {
        return std::nullopt;
    }
    if (t->is_int64()) {
        return t->get_int64();
    }
    if (t->is_uint64()) {
        return static_cast<std::int64_t>(t->get_uint64());
    }
    return std::nullopt;
}

}  // namespace pm_agent::bench
