// Request bodies -> engine requests. Types are checked here, ranges in core::validate_*; every
// error names the field so that a client author can fix the call from the message alone.

#include <cmath>

#include <boost/json/parse.hpp>

#include "pm_agent/api/codec.hpp"
#include "pm_agent/core/text.hpp"

namespace pm_agent::api {
namespace {

namespace json = boost::json;
using store::errc;

store::error bad(std::string_view field_prefix, std::string_view field, std::string_view problem) {
    std::string message;
    message.reserve(field_prefix.size() + field.size() + problem.size() + 2);
    message.append(field_prefix).append(field).append(": ").append(problem);
    return store::error{errc::bad_request, std::move(message)};
}

/// Fields the server owns: a submitter sending one is told so rather than silently ignored.
constexpr std::string_view k_server_owned_task_fields[] = {"id",         "status",     "attempts",
                                                           "agent_id",   "result",     "error",
                                                           "created_at", "updated_at", "progress"};

constexpr std::string_view k_task_fields[] = {
    "type",         "payload",   "queue",   "priority", "required_capabilities",
    "max_attempts", "timeout_s", "delay_s", "run_at",   "idempotency_key"};

bool contains(std::span<const std::string_view> set, std::string_view name) {
    for (auto candidate : set) {
        if (candidate == name) {
            return true;
        }
    }
    return false;
}

/// JSON strings are UTF-8 already (the parser checks); a store cannot keep U+0000.
template <class Text>
bool storable(const Text& s) {
    return core::is_storable_text(std::string_view(s.data(), s.size()));
}

constexpr std::string_view k_no_nul = "must not contain U+0000";

/// A non-empty string field a store keeps as sent: the text, or the error naming the field.
store::result<std::string> stored_text(const json::value& v, std::string_view field_prefix,
                                       std::string_view name) {
    if (!v.is_string() || v.get_string().empty()) {
        return bad(field_prefix, name, "must be a non-empty string");
    }
    if (!storable(v.get_string())) {
        return bad(field_prefix, name, k_no_nul);
    }
    return std::string(v.get_string());
}

store::result<std::vector<std::string>> string_list(const json::value& v,
                                                    std::string_view field_prefix,
                                                    std::string_view name) {
    if (!v.is_array()) {
        return bad(field_prefix, name, "must be an array of strings");
    }
    std::vector<std::string> out;
    out.reserve(v.get_array().size());
    for (const auto& item : v.get_array()) {
        if (!item.is_string() || item.get_string().empty()) {
            return bad(field_prefix, name, "must be an array of non-empty strings");
        }
        if (!storable(item.get_string())) {
            return bad(field_prefix, name, k_no_nul);
        }
        out.emplace_back(item.get_string());
    }
    return out;
}

}  // namespace

bool numbers_are_finite(const json::value& v) {
    switch (v.kind()) {
        case json::kind::double_:
            return std::isfinite(v.get_double());
        case json::kind::array:
            for (const auto& item : v.get_array()) {
                if (!numbers_are_finite(item)) {
                    return false;
                }
            }
            return true;
        case json::kind::object:
            for (const auto& entry : v.get_object()) {
                if (!numbers_are_finite(entry.value())) {
                    return false;
                }
            }
            return true;
        default:
            return true;
    }
}

store::result<boost::json::object> parse_object(std::string_view body, bool empty_is_object) {
    if (body.empty() && empty_is_object) {
        return json::object();
    }
    boost::system::error_code ec;
    json::value parsed = json::parse(body, ec);
    if (ec) {
        return store::error{errc::bad_request, "malformed JSON body: " + ec.message()};
    }
    if (!parsed.is_object()) {
        return store::error{errc::bad_request, "the body must be a JSON object"};
    }
    if (!numbers_are_finite(parsed)) {
        return store::error{errc::bad_request, "malformed JSON body: a number out of range"};
    }
    return std::move(parsed.get_object());
}

store::result<std::int64_t> integer_field(const json::value& v, std::string_view name) {
    if (v.is_int64()) {
        return v.get_int64();
    }
    if (v.is_uint64()) {
        if (v.get_uint64() > static_cast<std::uint64_t>(INT64_MAX)) {
            return bad("", name, "out of range");
        }
        return static_cast<std::int64_t>(v.get_uint64());
    }
    if (v.is_double()) {
        const double d = v.get_double();
        if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.0e15) {
            return static_cast<std::int64_t>(d);
        }
    }
    return bad("", name, "must be an integer");
}

store::result<double> number_field(const json::value& v, std::string_view name) {
    if (v.is_number()) {
        return v.to_number<double>();
    }
    return bad("", name, "must be a number");
}

store::result<std::string> string_field(const json::value& v, std::string_view name) {
    if (v.is_string()) {
        if (!storable(v.get_string())) {
            return bad("", name, k_no_nul);
        }
        return std::string(v.get_string());
    }
    return bad("", name, "must be a string");
}

store::result<core::task_spec> decode_task_spec(json::object& body, std::string_view header_key,
                                                std::string_view field_prefix) {
    core::task_spec spec;
    bool has_type = false;
    for (auto& [key_view, value] : body) {
        const std::string_view key(key_view.data(), key_view.size());
        if (contains(k_server_owned_task_fields, key)) {
            return bad(field_prefix, key, "is set by the server and must not be submitted");
        }
        if (!contains(k_task_fields, key)) {
            return bad(field_prefix, key, "unknown field");
        }
        if (key == "type") {
            auto type = stored_text(value, field_prefix, key);
            if (!type) {
                return std::move(type).err();
            }
            spec.type = std::move(*type);
            has_type = true;
        } else if (key == "payload") {
            spec.payload = std::move(value);
        } else if (key == "queue") {
            if (!value.is_null()) {
                auto queue = stored_text(value, field_prefix, key);
                if (!queue) {
                    return std::move(queue).err();
                }
                spec.queue = std::move(*queue);
            }
        } else if (key == "priority" || key == "max_attempts" || key == "timeout_s") {
            if (value.is_null()) {
                continue;
            }
            auto n = integer_field(value, key);
            if (!n) {
                return bad(field_prefix, key, "must be an integer");
            }
            (key == "priority"       ? spec.priority
             : key == "max_attempts" ? spec.max_attempts
                                     : spec.timeout_s) = *n;
        } else if (key == "required_capabilities") {
            if (value.is_null()) {
                continue;
            }
            auto list = string_list(value, field_prefix, key);
            if (!list) {
                return std::move(list).err();
            }
            spec.required_capabilities = std::move(*list);
        } else if (key == "delay_s") {
            if (value.is_null()) {
                continue;
            }
            if (!value.is_number()) {
                return bad(field_prefix, key, "must be a number of seconds");
            }
            spec.delay_s = value.to_number<double>();
        } else if (key == "run_at") {
            if (value.is_null()) {
                continue;
            }
            auto t = value.is_string() ? parse_rfc3339(std::string_view(value.get_string()))
                                       : std::nullopt;
            if (!t) {
                return bad(field_prefix, key,
                           "must be an RFC 3339 time such as 2030-01-01T00:00:00Z");
            }
            spec.run_at = *t;
        } else if (key == "idempotency_key") {
            if (value.is_null()) {
                continue;
            }
            auto idempotency_key = stored_text(value, field_prefix, key);
            if (!idempotency_key) {
                return std::move(idempotency_key).err();
            }
            spec.idempotency_key = std::move(*idempotency_key);
        }
    }
    if (!has_type) {
        return bad(field_prefix, "type", "is required");
    }
    if (spec.delay_s && spec.run_at) {
        return bad(field_prefix, "delay_s", "give either delay_s or run_at, not both");
    }
    if (!header_key.empty()) {
        if (!core::is_storable_text(header_key)) {
            return bad("", "Idempotency-Key", "must be UTF-8 text without U+0000");
        }
        if (spec.idempotency_key && *spec.idempotency_key != header_key) {
            return bad(field_prefix, "idempotency_key", "differs from the Idempotency-Key header");
        }
        spec.idempotency_key = std::string(header_key);
    }
    return spec;
}

store::result<std::vector<core::task_spec>> decode_task_batch(json::object& body) {
    auto* tasks = body.if_contains("tasks");
    if (tasks == nullptr) {
        return bad("", "tasks", "is required");
    }
    for (const auto& [key, value] : body) {
        if (key != "tasks") {
            return bad("", std::string_view(key.data(), key.size()), "unknown field");
        }
    }
    if (!tasks->is_array()) {
        return bad("", "tasks", "must be an array of task objects");
    }
    auto& array = tasks->get_array();
    if (array.empty()) {
        return bad("", "tasks", "must hold at least one task");
    }
    if (array.size() > 1000) {
        return bad("", "tasks", "holds more than 1000 tasks");
    }
    std::vector<core::task_spec> specs;
    specs.reserve(array.size());
    std::string prefix;
    for (std::size_t i = 0; i < array.size(); ++i) {
        prefix = "tasks[" + std::to_string(i) + "].";
        if (!array[i].is_object()) {
            return store::error{errc::bad_request,
                                "tasks[" + std::to_string(i) + "]: must be an object"};
        }
        auto spec = decode_task_spec(array[i].get_object(), {}, prefix);
        if (!spec) {
            return std::move(spec).err();
        }
        specs.push_back(std::move(*spec));
    }
    return specs;
}

store::result<core::agent_spec> decode_agent_spec(json::object& body, bool allow_ws_fields) {
    core::agent_spec spec;
    bool has_name = false;
    for (auto& [key_view, value] : body) {
        const std::string_view key(key_view.data(), key_view.size());
        if (key == "name") {
            auto name = stored_text(value, "", key);
            if (!name) {
                return std::move(name).err();
            }
            spec.name = std::move(*name);
            has_name = true;
        } else if (key == "queues" || key == "capabilities") {
            if (value.is_null()) {
                continue;
            }
            auto list = string_list(value, "", key);
            if (!list) {
                return std::move(list).err();
            }
            (key == "queues" ? spec.queues : spec.capabilities) = std::move(*list);
        } else if (key == "labels") {
            if (value.is_null()) {
                continue;
            }
            if (!value.is_object()) {
                return bad("", key, "must be an object of strings");
            }
            for (const auto& [label, label_value] : value.get_object()) {
                if (!label_value.is_string()) {
                    return bad("", key, "values must be strings");
                }
                if (!storable(label) || !storable(label_value.get_string())) {
                    return bad("", key, k_no_nul);
                }
                spec.labels.emplace(std::string(label), std::string(label_value.get_string()));
            }
        } else if (key == "max_concurrency") {
            if (value.is_null()) {
                continue;
            }
            auto n = integer_field(value, key);
            if (!n) {
                return std::move(n).err();
            }
            spec.max_concurrency = *n;
        } else if (allow_ws_fields && (key == "type" || key == "token")) {
            continue;
        } else {
            return bad("", key, "unknown field");
        }
    }
    if (!has_name) {
        return bad("", "name", "is required");
    }
    return spec;
}

}  // namespace pm_agent::api
