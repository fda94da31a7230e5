#pragma once
/// The JSON of API.md: request bodies decoded into engine requests (types checked, every error
/// naming its field), records encoded as the Task and Agent objects, RFC 3339 times, and the
/// WebSocket messages in both directions. Pure functions: no sockets, no clock.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/json/value.hpp>

#include "pm_agent/core/requests.hpp"
#include "pm_agent/store/result.hpp"
#include "pm_agent/store/types.hpp"

namespace pm_agent::api {

// --- times -------------------------------------------------------------------------------

/// "2026-11-24T01:33:00.123Z" (UTC, milliseconds).
void append_rfc3339(std::string& out, store::time_point t);
std::string format_rfc3339(store::time_point t);
/// Accepts "YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)" ('t'/'z' and a space separator too).
std::optional<store::time_point> parse_rfc3339(std::string_view text);

// --- request bodies ----------------------------------------------------------------------

/// Whether every number in `v` is finite. The parser reads 1e400 as infinity, which JSON
/// cannot carry back out (it would be sent as `Infinity`): bodies holding one are refused.
bool numbers_are_finite(const boost::json::value& v);

/// Parses a request body that must be a JSON object (an empty body is `{}` when
/// `empty_is_object`). Errors are bad_request with a message fit for the client.
store::result<boost::json::object> parse_object(std::string_view body, bool empty_is_object);

/// POST /api/v1/tasks body (or one batch entry, with `field_prefix` "tasks[3]."). Server-owned
/// fields and unknown fields are refused, naming the field. `header_key` is the
/// Idempotency-Key header (empty: none); it must agree with the field when both are sent.
store::result<core::task_spec> decode_task_spec(boost::json::object& body,
                                                std::string_view header_key,
                                                std::string_view field_prefix);

/// POST /api/v1/tasks/batch body -> the entries, each decoded as above.
store::result<std::vector<core::task_spec>> decode_task_batch(boost::json::object& body);

/// Registration (REST body or the WebSocket `register` message; `allow_ws_fields` accepts
/// `type` and `token`).
store::result<core::agent_spec> decode_agent_spec(boost::json::object& body, bool allow_ws_fields);

/// A field that must be an integer (a JSON integer, or a number with no fractional part).
store::result<std::int64_t> integer_field(const boost::json::value& v, std::string_view name);
/// A field that must be a number.
store::result<double> number_field(const boost::json::value& v, std::string_view name);
/// A field that must be a string.
store::result<std::string> string_field(const boost::json::value& v, std::string_view name);

// --- a holder's reports: the REST body, or the fields of the WebSocket message -----------

struct progress_report {
    double progress = 0;
    std::string message;
};
struct fail_report {
    std::string error;
    bool retryable = true;
};
/// `progress` (required, 0..1) and `message`? of a progress report.
store::result<progress_report> decode_progress_report(const boost::json::object& body);
/// `error` (required) and `retryable`? of a failure report.
store::result<fail_report> decode_fail_report(const boost::json::object& body);
/// A REST body's fields must all be in `known`: a typo ("reslt", "retriable") is refused,
/// naming it, rather than silently dropped.
store::result<void> refuse_unknown_fields(const boost::json::object& body,
                                          std::span<const std::string_view> known);

// --- records -----------------------------------------------------------------------------

/// The Task object of API.md (plus `progress`, an extension), appended to `out`.
void append_task_json(std::string& out, const store::task& task);
std::string task_json(const store::task& task);
/// The Agent object of API.md, appended to `out`.
void append_agent_json(std::string& out, const store::agent& agent);
/// Appends `text` as a JSON string literal (quoted, escaped).
void append_json_string(std::string& out, std::string_view text);

// --- WebSocket messages ------------------------------------------------------------------

namespace ws_in {
struct register_msg {
    core::agent_spec spec;
    std::string token;  ///< registration token, when sent in the message
};
struct heartbeat_msg {
    std::optional<boost::json::value> seq;  ///< echoed as is
};
struct ready_msg {
    std::uint32_t slots = 0;
};
struct progress_msg {
    std::string task_id;
    double progress = 0;
    std::string message;
};
struct complete_msg {
    std::string task_id;
    boost::json::value result;
};
struct fail_msg {
    std::string task_id;
    std::string error;
    bool retryable = true;
};
}  // namespace ws_in

using ws_message = std::variant<ws_in::register_msg, ws_in::heartbeat_msg, ws_in::ready_msg,
                                ws_in::progress_msg, ws_in::complete_msg, ws_in::fail_msg>;

/// Decodes one agent -> server text frame. Errors are bad_request (malformed JSON, missing or
/// mistyped field, unknown type) and carry the task_id when the message named one.
struct ws_decode_error {
    store::error error;
    std::string task_id;
};
std::variant<ws_message, ws_decode_error> decode_ws_message(std::string_view text);

/// Server -> agent frames.
std::string ws_registered(std::string_view agent_id, std::string_view token,
                          std::int64_t heartbeat_interval_s, std::int64_t heartbeat_timeout_s,
                          std::int64_t lease_timeout_s);
void append_ws_task(std::string& out, const store::task& task);
std::string ws_cancel(std::string_view task_id);
std::string ws_heartbeat_ack(store::time_point now, const std::optional<boost::json::value>& seq);
std::string ws_ack(std::string_view task_id, store::task_status status);
std::string ws_error(std::string_view code, std::string_view message, std::string_view task_id);
std::string ws_draining(std::int64_t reconnect_after_s);

}  // namespace pm_agent::api
