#include "pm_agent/log/logging.hpp"

#include <spdlog/async.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>

namespace pm_agent::log {
namespace {

/// Queue length of the async logger; past it the oldest line is dropped (and counted).
constexpr std::size_t k_queue_lines = 8192;

/// `%*`: the message as a JSON string body (quotes, backslashes and control bytes escaped).
class json_escaped_message final : public spdlog::custom_flag_formatter {
  public:
    void format(const spdlog::details::log_msg& msg, const std::tm&,
                spdlog::memory_buf_t& dest) override {
        for (char c : msg.payload) {
            switch (c) {
                case '"':
                    dest.append(std::string_view("\\\""));
                    break;
                case '\\':
                    dest.append(std::string_view("\\\\"));
                    break;
                case '\n':
                    dest.append(std::string_view("\\n"));
                    break;
                default:
                    if (static_cast<unsigned char>(c) < 0x20) {
                        fmt::format_to(std::back_inserter(dest), "\\u{:04x}", c);
                    } else {
                        dest.push_back(c);
                    }
            }
        }
    }
    std::unique_ptr<custom_flag_formatter> clone() const override {
        return std::make_unique<json_escaped_message>();
    }
};

}  // namespace

void init(const std::string& level, bool json) {
    spdlog::init_thread_pool(k_queue_lines, 1);
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    auto logger = std::make_shared<spdlog::async_logger>(
        "pm-agent", sink, spdlog::thread_pool(), spdlog::async_overflow_policy::overrun_oldest);
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    if (json) {
        formatter->add_flag<json_escaped_message>('*').set_pattern(
            R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","pid":%P,"msg":"%*"})");
    } else {
        formatter->set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %l pid=%P %v");
    }
    logger->set_formatter(std::move(formatter));
    logger->set_level(spdlog::level::from_str(level));
    logger->flush_on(spdlog::level::warn);
    spdlog::set_default_logger(logger);
}

std::size_t dropped_lines() {
    auto pool = spdlog::thread_pool();
    return pool ? pool->overrun_counter() : 0;
}

void shutdown() {
    spdlog::shutdown();
}

}  // namespace pm_agent::log
