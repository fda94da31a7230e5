#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "pm_agent/config/load.hpp"

namespace pm_agent::config {
namespace {

// The checkout's root: $PM_AGENT_SOURCE_DIR (set by CMake for out-of-tree runs), else four
// levels above this file (tests/unit/config/<file>).
std::filesystem::path source_dir() {
    if (const char* dir = std::getenv("PM_AGENT_SOURCE_DIR"); dir != nullptr && *dir != '\0') {
        return dir;
    }
    return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path().parent_path();
}

std::string read_text(const std::filesystem::path& path) {
    std::ifstream in(path);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

load_result load_shipped(const char* name) {
    return load_config(sources{(source_dir() / "config" / name).string(), {}, {}});
}

TEST(ConfigShippedFiles, ScalingJsonLoadsWithTheSeedSections) {
    const auto result = load_shipped("scaling.json");
    ASSERT_TRUE(result.ok()) << result.error->message;
    EXPECT_EQ(result.value->server.workers, 1);
    EXPECT_FALSE(result.value->database.url.has_value());
    EXPECT_FALSE(protected_mode_violation(*result.value).has_value());

    const auto document = boost::json::parse(read_text(source_dir() / "config" / "scaling.json"));
    std::vector<std::string> sections;
    for (const auto& [section, members] : document.get_object()) {
        sections.emplace_back(section);
    }
    EXPECT_EQ(sections, (std::vector<std::string>{"server", "redis", "database", "performance"}));
}

TEST(ConfigShippedFiles, ExampleHasEveryKeyAtItsDefault) {
    const auto result = load_shipped("pm-agent.example.json");
    ASSERT_TRUE(result.ok()) << result.error->message;
    EXPECT_EQ(*result.value, config{});

    const auto document =
        boost::json::parse(read_text(source_dir() / "config" / "pm-agent.example.json"));
    for (const auto& k : schema_keys()) {
        const auto dot = k.key.find('.');
        const auto* section = document.get_object().if_contains(k.key.substr(0, dot));
        ASSERT_NE(section, nullptr) << k.key;
        EXPECT_NE(section->get_object().if_contains(k.key.substr(dot + 1)), nullptr)
            << "pm-agent.example.json lacks " << k.key;
    }
}

TEST(ConfigShippedFiles, ExampleIsWhatCheckConfigPrintsForTheDefaults) {
    EXPECT_EQ(read_text(source_dir() / "config" / "pm-agent.example.json"),
              render_masked(config{}));
}

}  // namespace
}  // namespace pm_agent::config
