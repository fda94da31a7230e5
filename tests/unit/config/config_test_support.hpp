#pragma once
// Helpers shared by the config tests: a temporary JSON file and an injected environment.

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>

#include "pm_agent/config/load.hpp"

namespace pm_agent::config::testing {

/// A file under the temp directory, named after the running test, removed on destruction.
class temp_file {
  public:
    explicit temp_file(const std::string& content) {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        path_ = std::filesystem::temp_directory_path() /
                ("pm_agent_config_" + std::to_string(::getpid()) + "_" + info->test_suite_name() +
                 "_" + info->name() + ".json");
        std::ofstream(path_, std::ios::binary) << content;
    }
    ~temp_file() {
        std::error_code ignored;
        std::filesystem::remove(path_, ignored);
    }
    temp_file(const temp_file&) = delete;
    temp_file& operator=(const temp_file&) = delete;

    std::string path() const { return path_.string(); }

  private:
    std::filesystem::path path_;
};

/// Passes when `part` occurs in `text`; prints the whole text otherwise.
inline ::testing::AssertionResult contains(const std::string& text, const std::string& part) {
    if (text.find(part) != std::string::npos) {
        return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "'" << part << "' not found in: " << text;
}

/// Passes when `part` does not occur in `text`.
inline ::testing::AssertionResult lacks(const std::string& text, const std::string& part) {
    if (text.find(part) == std::string::npos) {
        return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "'" << part << "' unexpectedly found in: " << text;
}

/// An environment holding exactly `variables`.
inline std::function<std::optional<std::string>(const char*)> fake_env(
    std::map<std::string, std::string> variables) {
    return [variables = std::move(variables)](const char* name) -> std::optional<std::string> {
        const auto it = variables.find(name);
        if (it == variables.end()) {
            return std::nullopt;
        }
        return it->second;
    };
}

/// load_config() on a JSON text, with optional environment and flags.
inline load_result load_json(const std::string& json, std::map<std::string, std::string> env = {},
                             std::map<std::string, std::string> flags = {}) {
    temp_file file(json);
    return load_config(sources{file.path(), std::move(flags), fake_env(std::move(env))});
}

/// load_config() with only environment and flags.
inline load_result load_without_file(std::map<std::string, std::string> env,
                                     std::map<std::string, std::string> flags = {}) {
    return load_config(sources{std::nullopt, std::move(flags), fake_env(std::move(env))});
}

}  // namespace pm_agent::config::testing
