// Text-format values to and from PostgreSQL, and rows to records (see pg_codec.hpp).
#include "store/postgres/pg_codec.hpp"

#include <charconv>
#include <cstdlib>

#include <boost/json/parse.hpp>

namespace pm_agent::store::postgres {

std::string micros(time_point t) {
    return std::to_string(
        std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count());
}

time_point from_micros(std::int64_t us) {
    return time_point(std::chrono::duration_cast<clock::duration>(std::chrono::microseconds(us)));
}

void append_array_element(std::string& out, std::string_view text) {
    out.push_back('"');
    for (char c : text) {
        if (c == '"' || c == '\\') {
            out.push_back('\\');
        }
        out.push_back(c);
    }
    out.push_back('"');
}

std::string text_array(std::span<const std::string> items) {
    array_builder b;
    for (const std::string& s : items) {
        b.add(s);
    }
    return b.take();
}

bool parse_text_array(std::string_view text, std::vector<std::string>& out) {
    out.clear();
    if (text.size() < 2 || text.front() != '{' || text.back() != '}') {
        return false;
    }
    std::size_t i = 1;
    const std::size_t end = text.size() - 1;
    while (i < end) {
        std::string item;
        if (text[i] == '"') {
            ++i;
            while (i < end && text[i] != '"') {
                if (text[i] == '\\' && i + 1 < end) {
                    ++i;
                }
                item.push_back(text[i++]);
            }
            ++i;  // closing quote
            out.push_back(std::move(item));
        } else {
            while (i < end && text[i] != ',') {
                item.push_back(text[i++]);
            }
            if (item != "NULL") {
                out.push_back(std::move(item));
            }
        }
        if (i < end && text[i] == ',') {
            ++i;
        }
    }
    return true;
}

void array_builder::sep() {
    if (!first_) {
        out_.push_back(',');
    }
    first_ = false;
}

void array_builder::add(std::string_view text) {
    sep();
    append_array_element(out_, text);
}

void array_builder::add_null() {
    sep();
    out_ += "NULL";
}

void array_builder::add_int(std::int64_t v) {
    sep();
    char buf[24];
    auto [p, ec] = std::to_chars(buf, buf + sizeof(buf), v);
    out_.append(buf, p);
}

std::string array_builder::take() {
    out_.push_back('}');
    std::string out = std::move(out_);
    out_ = "{";
    first_ = true;
    return out;
}

std::string bytea_hex(std::span<const unsigned char> bytes) {
    static constexpr char k_digits[] = "0123456789abcdef";
    std::string out = "\\x";
    out.reserve(2 + bytes.size() * 2);
    for (unsigned char b : bytes) {
        out.push_back(k_digits[b >> 4]);
        out.push_back(k_digits[b & 15]);
    }
    return out;
}

bool parse_bytea_hex(std::string_view text, std::span<unsigned char> out) {
    if (text.size() != 2 + out.size() * 2 || text.substr(0, 2) != "\\x") {
        return false;
    }
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') {
            return c - '0';
        }
        if (c >= 'a' && c <= 'f') {
            return c - 'a' + 10;
        }
        return -1;
    };
    for (std::size_t i = 0; i < out.size(); ++i) {
        const int hi = nibble(text[2 + 2 * i]);
        const int lo = nibble(text[3 + 2 * i]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        out[i] = static_cast<unsigned char>(hi * 16 + lo);
    }
    return true;
}

std::int64_t to_int(std::string_view text) {
    std::int64_t v = 0;
    std::from_chars(text.data(), text.data() + text.size(), v);
    return v;
}

double to_double(std::string_view text) {
    double v = 0;
    std::from_chars(text.data(), text.data() + text.size(), v);
    return v;
}

namespace {

std::optional<std::string> opt_text(const pg::rows& r, std::size_t row, int col) {
    if (r.is_null(row, col)) {
        return std::nullopt;
    }
    return std::string(r.get(row, col));
}

std::optional<time_point> opt_time(const pg::rows& r, std::size_t row, int col) {
    if (r.is_null(row, col)) {
        return std::nullopt;
    }
    return from_micros(to_int(r.get(row, col)));
}

boost::json::value json_or_null(const pg::rows& r, std::size_t row, int col) {
    if (r.is_null(row, col)) {
        return nullptr;
    }
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(r.get(row, col), ec);
    return ec ? boost::json::value(nullptr) : v;
}

}  // namespace

task read_task(const pg::rows& r, std::size_t row, int f) {
    task t;
    t.id = r.get(row, f + 0);
    t.queue = r.get(row, f + 1);
    t.type = r.get(row, f + 2);
    t.payload = json_or_null(r, row, f + 3);
    t.priority = static_cast<int>(to_int(r.get(row, f + 4)));
    t.status = parse_task_status(r.get(row, f + 5)).value_or(task_status::pending);
    t.attempts = static_cast<int>(to_int(r.get(row, f + 6)));
    t.max_attempts = static_cast<int>(to_int(r.get(row, f + 7)));
    parse_text_array(r.get(row, f + 8), t.required_capabilities);
    t.timeout_s = static_cast<std::uint32_t>(to_int(r.get(row, f + 9)));
    t.idempotency_key = opt_text(r, row, f + 10);
    t.agent_id = opt_text(r, row, f + 11);
    t.result = json_or_null(r, row, f + 12);
    t.error = opt_text(r, row, f + 13);
    if (!r.is_null(row, f + 14)) {
        t.progress = task_progress{to_double(r.get(row, f + 14)), std::string(r.get(row, f + 15))};
    }
    t.run_at = opt_time(r, row, f + 16);
    t.created_at = from_micros(to_int(r.get(row, f + 17)));
    t.updated_at = from_micros(to_int(r.get(row, f + 18)));
    t.lease_expires_at = opt_time(r, row, f + 19);
    t.attempt = static_cast<std::uint32_t>(to_int(r.get(row, f + 20)));
    t.seq = static_cast<std::uint64_t>(to_int(r.get(row, f + 21)));
    t.ready_at = from_micros(to_int(r.get(row, f + 22)));
    return t;
}

agent read_agent(const pg::rows& r, std::size_t row, int f) {
    agent a;
    a.id = r.get(row, f + 0);
    a.name = r.get(row, f + 1);
    parse_text_array(r.get(row, f + 2), a.queues);
    parse_text_array(r.get(row, f + 3), a.capabilities);
    boost::json::value labels = json_or_null(r, row, f + 4);
    if (const auto* obj = labels.if_object()) {
        for (const auto& [k, v] : *obj) {
            if (const auto* s = v.if_string()) {
                a.labels.emplace(std::string(k), std::string(*s));
            }
        }
    }
    a.max_concurrency = static_cast<std::uint32_t>(to_int(r.get(row, f + 5)));
    a.status = parse_agent_status(r.get(row, f + 6)).value_or(agent_status::offline);
    a.running = static_cast<std::uint32_t>(to_int(r.get(row, f + 7)));
    a.last_heartbeat = from_micros(to_int(r.get(row, f + 8)));
    a.registered_at = from_micros(to_int(r.get(row, f + 9)));
    a.lease_expires_at = opt_time(r, row, f + 10);
    a.worker = r.get(row, f + 11);
    parse_bytea_hex(r.get(row, f + 12), a.token_hash);
    a.seq = static_cast<std::uint64_t>(to_int(r.get(row, f + 13)));
    return a;
}

}  // namespace pm_agent::store::postgres
