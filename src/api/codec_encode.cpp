// Records -> the JSON objects of API.md. Written by hand into one string: the task object is
// built for every push and every answer, so it avoids an intermediate json::value.

#include <charconv>

#include <boost/json/serialize.hpp>

#include "pm_agent/api/codec.hpp"

namespace pm_agent::api {
namespace {

constexpr char k_hex[] = "0123456789abcdef";

void append_int(std::string& out, std::int64_t value) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
    out.append(buf, end);
}

void append_double(std::string& out, double value) {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
    out.append(buf, end);
}

void append_optional_string(std::string& out, const std::optional<std::string>& value) {
    if (value) {
        append_json_string(out, *value);
    } else {
        out += "null";
    }
}

void append_optional_time(std::string& out, const std::optional<store::time_point>& value) {
    if (value) {
        out.push_back('"');
        append_rfc3339(out, *value);
        out.push_back('"');
    } else {
        out += "null";
    }
}

void append_time(std::string& out, store::time_point value) {
    out.push_back('"');
    append_rfc3339(out, value);
    out.push_back('"');
}

void append_string_array(std::string& out, const std::vector<std::string>& items) {
    out.push_back('[');
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i > 0) {
            out.push_back(',');
        }
        append_json_string(out, items[i]);
    }
    out.push_back(']');
}

void append_value(std::string& out, const boost::json::value& value) {
    if (value.is_null()) {
        out += "null";
        return;
    }
    out += boost::json::serialize(value);
}

}  // namespace

void append_json_string(std::string& out, std::string_view text) {
    out.push_back('"');
    for (char c : text) {
        const auto u = static_cast<unsigned char>(c);
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (u < 0x20) {
                    out += "\\u00";
                    out.push_back(k_hex[u >> 4]);
                    out.push_back(k_hex[u & 0xf]);
                } else {
                    out.push_back(c);
                }
        }
    }
    out.push_back('"');
}

void append_task_json(std::string& out, const store::task& task) {
    out += R"({"id":)";
    append_json_string(out, task.id);
    out += R"(,"queue":)";
    append_json_string(out, task.queue);
    out += R"(,"type":)";
    append_json_string(out, task.type);
    out += R"(,"payload":)";
    append_value(out, task.payload);
    out += R"(,"priority":)";
    append_int(out, task.priority);
    out += R"(,"status":")";
    out += store::to_string(task.status);
    out += R"(","attempts":)";
    append_int(out, task.attempts);
    out += R"(,"max_attempts":)";
    append_int(out, task.max_attempts);
    out += R"(,"required_capabilities":)";
    append_string_array(out, task.required_capabilities);
    out += R"(,"timeout_s":)";
    if (task.timeout_s > 0) {
        append_int(out, task.timeout_s);
    } else {
        out += "null";
    }
    out += R"(,"idempotency_key":)";
    append_optional_string(out, task.idempotency_key);
    out += R"(,"agent_id":)";
    append_optional_string(out, task.agent_id);
    out += R"(,"result":)";
    append_value(out, task.result);
    out += R"(,"error":)";
    append_optional_string(out, task.error);
    out += R"(,"run_at":)";
    append_optional_time(out, task.run_at);
    out += R"(,"created_at":)";
    append_time(out, task.created_at);
    out += R"(,"updated_at":)";
    append_time(out, task.updated_at);
    out += R"(,"progress":)";
    if (task.progress) {
        out += R"({"value":)";
        append_double(out, task.progress->value);
        out += R"(,"message":)";
        append_json_string(out, task.progress->message);
        out.push_back('}');
    } else {
        out += "null";
    }
    out.push_back('}');
}

std::string task_json(const store::task& task) {
    std::string out;
    out.reserve(384);
    append_task_json(out, task);
    return out;
}

void append_agent_json(std::string& out, const store::agent& agent) {
    out += R"({"id":)";
    append_json_string(out, agent.id);
    out += R"(,"name":)";
    append_json_string(out, agent.name);
    out += R"(,"queues":)";
    append_string_array(out, agent.queues);
    out += R"(,"capabilities":)";
    append_string_array(out, agent.capabilities);
    out += R"(,"labels":{)";
    bool first = true;
    for (const auto& [key, value] : agent.labels) {
        if (!first) {
            out.push_back(',');
        }
        first = false;
        append_json_string(out, key);
        out.push_back(':');
        append_json_string(out, value);
    }
    out += R"(},"max_concurrency":)";
    append_int(out, agent.max_concurrency);
    out += R"(,"status":")";
    out += store::to_string(agent.status);
    out += R"(","running":)";
    append_int(out, agent.running);
    out += R"(,"last_heartbeat":)";
    append_time(out, agent.last_heartbeat);
    out += R"(,"registered_at":)";
    append_time(out, agent.registered_at);
    out += R"(,"worker":)";
    append_json_string(out, agent.worker);
    out.push_back('}');
}

std::string ws_registered(std::string_view agent_id, std::string_view token,
                          std::int64_t heartbeat_interval_s, std::int64_t heartbeat_timeout_s,
                          std::int64_t lease_timeout_s) {
    std::string out = R"({"type":"registered","agent_id":)";
    append_json_string(out, agent_id);
    if (!token.empty()) {
        out += R"(,"token":)";
        append_json_string(out, token);
    }
    out += R"(,"heartbeat_interval_s":)";
    append_int(out, heartbeat_interval_s);
    out += R"(,"heartbeat_timeout_s":)";
    append_int(out, heartbeat_timeout_s);
    out += R"(,"lease_timeout_s":)";
    append_int(out, lease_timeout_s);
    out.push_back('}');
    return out;
}

void append_ws_task(std::string& out, const store::task& task) {
    out += R"({"type":"task","task":)";
    append_task_json(out, task);
    out.push_back('}');
}

std::string ws_cancel(std::string_view task_id) {
    std::string out = R"({"type":"cancel","task_id":)";
    append_json_string(out, task_id);
    out.push_back('}');
    return out;
}

std::string ws_heartbeat_ack(store::time_point now, const std::optional<boost::json::value>& seq) {
    std::string out = R"({"type":"heartbeat_ack","server_time":)";
    append_time(out, now);
    if (seq) {
        out += R"(,"seq":)";
        append_value(out, *seq);
    }
    out.push_back('}');
    return out;
}

std::string ws_ack(std::string_view task_id, store::task_status status) {
    std::string out = R"({"type":"ack","task_id":)";
    append_json_string(out, task_id);
    out += R"(,"status":")";
    out += store::to_string(status);
    out += R"("})";
    return out;
}

std::string ws_error(std::string_view code, std::string_view message, std::string_view task_id) {
    std::string out = R"({"type":"error","code":)";
    append_json_string(out, code);
    out += R"(,"message":)";
    append_json_string(out, message);
    if (!task_id.empty()) {
        out += R"(,"task_id":)";
        append_json_string(out, task_id);
    }
    out.push_back('}');
    return out;
}

std::string ws_draining(std::int64_t reconnect_after_s) {
    std::string out = R"({"type":"draining","reconnect_after_s":)";
    append_int(out, reconnect_after_s);
    out.push_back('}');
    return out;
}

}  // namespace pm_agent::api
