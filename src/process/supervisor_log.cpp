#include "process/supervisor_log.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>

namespace pm_agent::process {

namespace {

int rank(std::string_view level) {
    if (level == "trace" || level == "debug" || level == "info") {
        return 0;
    }
    if (level == "warn") {
        return 1;
    }
    return 2;
}

int rank(line_level level) {
    return static_cast<int>(level);
}

const char* name(line_level level) {
    switch (level) {
        case line_level::info:
            return "info";
        case line_level::warn:
            return "warning";  // spdlog's name, as in the workers' lines
        case line_level::error:
            return "error";
    }
    return "error";
}

std::string timestamp() {
    const auto now = std::chrono::system_clock::now();
    const auto seconds = std::chrono::system_clock::to_time_t(now);
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                            now.time_since_epoch() % std::chrono::seconds(1))
                            .count();
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char text[40];
    const auto n = std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &utc);
    std::snprintf(text + n, sizeof(text) - n, ".%06lldZ", static_cast<long long>(micros));
    return text;
}

void append_json_escaped(std::string& out, std::string_view text) {
    for (char c : text) {
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(c);
        } else if (static_cast<unsigned char>(c) < 0x20) {
            char escaped[8];
            std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
            out += escaped;
        } else {
            out.push_back(c);
        }
    }
}

}  // namespace

supervisor_log::supervisor_log(std::string_view min_level, bool json)
    : min_rank_(rank(min_level)), json_(json) {}

void supervisor_log::write(line_level level, std::string_view message) const {
    if (rank(level) < min_rank_) {
        return;
    }
    const auto pid = std::to_string(::getpid());
    std::string line;
    if (json_) {
        line = R"({"ts":")" + timestamp() + R"(","level":")" + name(level) + R"(","pid":)" + pid +
               R"(,"msg":"supervisor )";
        append_json_escaped(line, message);
        line += "\"}\n";
    } else {
        line = timestamp() + " " + name(level) + " pid=" + pid + " supervisor ";
        line += message;
        line += "\n";
    }
    // One write per line, so the lines do not interleave with the workers' on the shared stderr.
    [[maybe_unused]] auto ignored = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace pm_agent::process
