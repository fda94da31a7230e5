#include "pm_agent/config/load.hpp"

#include <fmt/format.h>
#include <boost/json/stream_parser.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "config/schema.hpp"
#include "config/value_codecs.hpp"

namespace pm_agent::config {
namespace {

using detail::field;

// Levenshtein distance, for "did you mean" on a misspelt key.
std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) {
        row[j] = j;
    }
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
            diagonal = above;
        }
    }
    return row[b.size()];
}

std::string suggestion(std::string_view unknown, const std::vector<std::string_view>& known) {
    std::string_view best;
    std::size_t best_distance = 3;  // farther than two edits is a different word, not a typo
    for (const auto candidate : known) {
        const auto distance = edit_distance(unknown, candidate);
        if (distance < best_distance) {
            best = candidate;
            best_distance = distance;
        }
    }
    return best.empty() ? std::string() : fmt::format(" (did you mean '{}'?)", best);
}

// 1-based line and column of byte `offset`, for a JSON syntax error.
std::pair<std::size_t, std::size_t> line_and_column(std::string_view text, std::size_t offset) {
    offset = std::min(offset, text.size());
    const auto before = text.substr(0, offset);
    const auto line = 1 + static_cast<std::size_t>(std::count(before.begin(), before.end(), '\n'));
    const auto last_newline = before.rfind('\n');
    const auto column = last_newline == std::string_view::npos ? offset + 1 : offset - last_newline;
    return {line, column};
}

std::optional<load_error> read_json_file(const std::string& path, boost::json::value& out) {
    std::error_code ignored;
    if (std::filesystem::is_directory(path, ignored)) {
        return load_error{"", fmt::format("config file '{}': is a directory", path)};
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return load_error{
            "", fmt::format("config file '{}': cannot open: {}", path, std::strerror(errno))};
    }
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) {
        return load_error{"", fmt::format("config file '{}': read error", path)};
    }
    boost::json::stream_parser parser;
    boost::system::error_code ec;
    // On error write() returns how far it got, which is where the syntax error is.
    const std::size_t consumed = parser.write(text.data(), text.size(), ec);
    if (!ec) {
        parser.finish(ec);
    }
    if (ec) {
        const auto [line, column] = line_and_column(text, consumed);
        return load_error{
            "", fmt::format("config file '{}': invalid JSON at line {}, column {}: {}", path, line,
                            column, ec.message())};
    }
    out = parser.release();
    return std::nullopt;
}

std::optional<load_error> apply_file(const std::string& path, const std::vector<field>& fields,
                                     config& cfg) {
    boost::json::value document;
    if (auto error = read_json_file(path, document)) {
        return error;
    }
    if (!document.is_object()) {
        return load_error{"", fmt::format("config file '{}': expected a JSON object at the top, "
                                          "got {}",
                                          path, detail::kind_name(document))};
    }
    const auto sections = detail::section_names();
    for (const auto& [section_name, section] : document.get_object()) {
        if (std::find(sections.begin(), sections.end(), section_name) == sections.end()) {
            return load_error{
                std::string(section_name),
                fmt::format("config file '{}': unknown section {}{}", path,
                            detail::quoted(section_name), suggestion(section_name, sections))};
        }
        if (!section.is_object()) {
            return load_error{
                std::string(section_name),
                fmt::format("config file '{}': {}: expected an object, got {}", path,
                            std::string_view(section_name), detail::kind_name(section))};
        }
        std::vector<std::string_view> names;
        for (const auto& f : fields) {
            if (f.section() == section_name) {
                names.push_back(f.name());
            }
        }
        for (const auto& [name, value] : section.get_object()) {
            const auto key =
                fmt::format("{}.{}", std::string_view(section_name), std::string_view(name));
            const auto it = std::find_if(fields.begin(), fields.end(),
                                         [&](const field& f) { return f.key == key; });
            if (it == fields.end()) {
                return load_error{key, fmt::format("config file '{}': unknown key {}{}", path,
                                                   detail::quoted(key), suggestion(name, names))};
            }
            if (auto why = it->from_json(cfg, value); !why.empty()) {
                return load_error{key, fmt::format("config file '{}': {}: {}", path, key, why)};
            }
        }
    }
    return std::nullopt;
}

std::optional<load_error> apply_environment(const sources& from, const std::vector<field>& fields,
                                            config& cfg) {
    if (!from.getenv) {
        return std::nullopt;
    }
    for (const auto& f : fields) {
        if (f.env == nullptr) {
            continue;
        }
        const auto text = from.getenv(f.env);
        if (!text || detail::trim(*text).empty()) {
            continue;
        }
        if (auto why = f.from_text(cfg, *text); !why.empty()) {
            return load_error{std::string(f.key),
                              fmt::format("environment variable {} ({}): {}", f.env, f.key, why)};
        }
    }
    return std::nullopt;
}

std::optional<load_error> apply_flags(const sources& from, const std::vector<field>& fields,
                                      config& cfg) {
    for (const auto& [key, text] : from.flags) {
        const auto it = std::find_if(fields.begin(), fields.end(),
                                     [&](const field& f) { return f.key == key; });
        if (it == fields.end()) {
            return load_error{key, fmt::format("flag for unknown key {}", detail::quoted(key))};
        }
        const auto source = it->flag.empty() ? fmt::format("flag for {}", key)
                                             : fmt::format("flag {} ({})", it->flag, key);
        if (auto why = it->from_text(cfg, text); !why.empty()) {
            return load_error{key, fmt::format("{}: {}", source, why)};
        }
    }
    return std::nullopt;
}

// Rules that involve more than one key; checked on the merged result.
std::optional<load_error> check_cross_field(const config& cfg) {
    if (cfg.server.workers > 1 && !cfg.database.url) {
        return load_error{"server.workers",
                          fmt::format("server.workers: is {}, but without database.url the "
                                      "in-memory store is used and it lives in one process; set "
                                      "server.workers to 1 or configure database.url "
                                      "(DATABASE_URL)",
                                      cfg.server.workers)};
    }
    if (cfg.queue.retry_base > cfg.queue.retry_max) {
        return load_error{"queue.retry_base_s",
                          fmt::format("queue.retry_base_s: {} is above queue.retry_max_s ({})",
                                      cfg.queue.retry_base.count(), cfg.queue.retry_max.count())};
    }
    if (cfg.agents.heartbeat_timeout <= cfg.agents.heartbeat_interval) {
        return load_error{"agents.heartbeat_timeout_s",
                          fmt::format("agents.heartbeat_timeout_s: {} must be above "
                                      "agents.heartbeat_interval_s ({}), or every agent goes "
                                      "offline between two pings",
                                      cfg.agents.heartbeat_timeout.count(),
                                      cfg.agents.heartbeat_interval.count())};
    }
    // Heartbeats renew leases, so a lease shorter than the ping period expires while healthy.
    if (cfg.agents.lease_timeout <= cfg.agents.heartbeat_interval) {
        return load_error{
            "agents.lease_timeout_s",
            fmt::format("agents.lease_timeout_s: {} must be above "
                        "agents.heartbeat_interval_s ({}), or leases expire "
                        "between two heartbeats",
                        cfg.agents.lease_timeout.count(), cfg.agents.heartbeat_interval.count())};
    }
    return std::nullopt;
}

}  // namespace

std::vector<key_info> schema_keys() {
    std::vector<key_info> keys;
    for (const auto& f : detail::make_fields()) {
        keys.push_back({f.key, f.env == nullptr ? std::string_view() : f.env, f.flag});
    }
    return keys;
}

load_result load_config(const sources& from) {
    const auto fields = detail::make_fields();
    config cfg;
    if (from.file_path) {
        if (auto error = apply_file(*from.file_path, fields, cfg)) {
            return load_result{std::nullopt, std::move(error)};
        }
    }
    if (auto error = apply_environment(from, fields, cfg)) {
        return load_result{std::nullopt, std::move(error)};
    }
    if (auto error = apply_flags(from, fields, cfg)) {
        return load_result{std::nullopt, std::move(error)};
    }
    if (auto error = check_cross_field(cfg)) {
        return load_result{std::nullopt, std::move(error)};
    }
    return load_result{std::move(cfg), std::nullopt};
}

std::function<std::optional<std::string>(const char*)> process_environment() {
    return [](const char* name) -> std::optional<std::string> {
        // getenv is read once at start-up, before any thread that could call setenv exists.
        if (const char* value = std::getenv(name)) {  // NOLINT(concurrency-mt-unsafe)
            return std::string(value);
        }
        return std::nullopt;
    };
}

}  // namespace pm_agent::config
