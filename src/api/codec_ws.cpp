// Agent -> server WebSocket frames. A bad frame is answered with `error` and changes nothing,
// so every check happens here, before the engine sees the message.

#include <boost/json/parse.hpp>

#include "pm_agent/api/codec.hpp"
#include "pm_agent/core/text.hpp"

namespace pm_agent::api {
namespace {

namespace json = boost::json;
using store::errc;

ws_decode_error decode_error(std::string message, std::string task_id = {}) {
    return ws_decode_error{store::error{errc::bad_request, std::move(message)}, std::move(task_id)};
}

/// The required task_id of progress/complete/fail.
std::optional<std::string> task_id_of(const json::object& msg) {
    const auto* id = msg.if_contains("task_id");
    if (id == nullptr || !id->is_string() || id->get_string().empty() ||
        !core::is_storable_text(
            std::string_view(id->get_string().data(), id->get_string().size()))) {
        return std::nullopt;
    }
    return std::string(id->get_string());
}

}  // namespace

std::variant<ws_message, ws_decode_error> decode_ws_message(std::string_view text) {
    boost::system::error_code ec;
    json::value parsed = json::parse(text, ec);
    if (ec) {
        return decode_error("malformed JSON: " + ec.message());
    }
    if (!parsed.is_object()) {
        return decode_error("a message must be a JSON object with a \"type\"");
    }
    if (!numbers_are_finite(parsed)) {
        return decode_error("malformed JSON: a number out of range");
    }
    auto& msg = parsed.get_object();
    const auto* type_value = msg.if_contains("type");
    if (type_value == nullptr || !type_value->is_string()) {
        return decode_error("type: required string");
    }
    const std::string_view type(type_value->get_string().data(), type_value->get_string().size());

    if (type == "register") {
        ws_in::register_msg out;
        if (const auto* token = msg.if_contains("token"); token != nullptr && !token->is_null()) {
            if (!token->is_string()) {
                return decode_error("token: must be a string");
            }
            out.token = std::string(token->get_string());
        }
        auto spec = decode_agent_spec(msg, true);
        if (!spec) {
            return ws_decode_error{spec.err(), {}};
        }
        out.spec = std::move(*spec);
        return ws_message{std::move(out)};
    }
    if (type == "heartbeat") {
        ws_in::heartbeat_msg out;
        if (const auto* seq = msg.if_contains("seq"); seq != nullptr) {
            out.seq = *seq;
        }
        if (const auto* running = msg.if_contains("running");
            running != nullptr && !running->is_null() && !running->is_array()) {
            return decode_error("running: must be an array of task ids");
        }
        return ws_message{std::move(out)};
    }
    if (type == "ready") {
        const auto* slots = msg.if_contains("slots");
        if (slots == nullptr) {
            return decode_error("slots: required");
        }
        auto n = integer_field(*slots, "slots");
        if (!n || *n < 0 || *n > 1'000'000) {
            return decode_error("slots: must be an integer from 0 to 1000000");
        }
        return ws_message{ws_in::ready_msg{static_cast<std::uint32_t>(*n)}};
    }
    if (type == "progress" || type == "complete" || type == "fail") {
        auto task_id = task_id_of(msg);
        if (!task_id) {
            return decode_error("task_id: required string");
        }
        if (type == "progress") {
            auto report = decode_progress_report(msg);
            if (!report) {
                return ws_decode_error{std::move(report).err(), std::move(*task_id)};
            }
            return ws_message{ws_in::progress_msg{std::move(*task_id), report->progress,
                                                  std::move(report->message)}};
        }
        if (type == "complete") {
            ws_in::complete_msg out;
            out.task_id = std::move(*task_id);
            if (auto* result = msg.if_contains("result"); result != nullptr) {
                out.result = std::move(*result);
            }
            return ws_message{std::move(out)};
        }
        auto report = decode_fail_report(msg);
        if (!report) {
            return ws_decode_error{std::move(report).err(), std::move(*task_id)};
        }
        return ws_message{
            ws_in::fail_msg{std::move(*task_id), std::move(report->error), report->retryable}};
    }
    return decode_error("type: unknown message type \"" + std::string(type) + "\"");
}

}  // namespace pm_agent::api
