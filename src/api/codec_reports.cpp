// What a holding agent reports about its task, decoded once for both edges: the REST bodies
// of progress/fail and the WebSocket messages of the same name carry the same fields.

#include <algorithm>

#include "pm_agent/api/codec.hpp"

namespace pm_agent::api {
namespace {

namespace json = boost::json;

store::error bad_field(std::string_view message) {
    return store::error{store::errc::bad_request, std::string(message)};
}

}  // namespace

store::result<progress_report> decode_progress_report(const json::object& body) {
    const auto* value = body.if_contains("progress");
    if (value == nullptr || !value->is_number()) {
        return bad_field("progress: required number from 0 to 1");
    }
    progress_report out;
    out.progress = value->to_number<double>();
    if (!(out.progress >= 0 && out.progress <= 1)) {
        return bad_field("progress: must be from 0 to 1");
    }
    if (const auto* m = body.if_contains("message"); m != nullptr && !m->is_null()) {
        auto message = string_field(*m, "message");
        if (!message) {
            return std::move(message).err();
        }
        out.message = std::move(*message);
    }
    return out;
}

store::result<fail_report> decode_fail_report(const json::object& body) {
    const auto* error = body.if_contains("error");
    if (error == nullptr || !error->is_string()) {
        return bad_field("error: required string");
    }
    auto reason = string_field(*error, "error");
    if (!reason) {
        return std::move(reason).err();
    }
    fail_report out;
    out.error = std::move(*reason);
    if (const auto* retryable = body.if_contains("retryable");
        retryable != nullptr && !retryable->is_null()) {
        if (!retryable->is_bool()) {
            return bad_field("retryable: must be a boolean");
        }
        out.retryable = retryable->get_bool();
    }
    return out;
}

store::result<void> refuse_unknown_fields(const json::object& body,
                                          std::span<const std::string_view> known) {
    for (const auto& entry : body) {
        const std::string_view key(entry.key().data(), entry.key().size());
        if (std::find(known.begin(), known.end(), key) == known.end()) {
            return bad_field(std::string(key) + ": unknown field");
        }
    }
    return {};
}

}  // namespace pm_agent::api
