#pragma once
// Private to src/config: the table of every key of CONFIG.md. The loader, the renderer and
// schema_keys() all walk this one table, so a key cannot be readable but not printable.

#include <boost/json/value.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "pm_agent/config/config.hpp"

namespace pm_agent::config::detail {

/// How render_masked() hides a value.
enum class secret_kind { none, tokens, url };

/// One key: where it comes from and how it is read and written. The functions return an
/// error text (empty on success) that names neither key nor source.
struct field {
    std::string_view key;   ///< "server.port"
    const char* env;        ///< environment variable, nullptr when the key has none
    std::string_view flag;  ///< "--port", empty when the key has none
    secret_kind secret = secret_kind::none;
    std::function<std::string(config&, const boost::json::value&)> from_json;
    std::function<std::string(config&, std::string_view)> from_text;
    std::function<boost::json::value(const config&)> to_json;

    std::string_view section() const { return key.substr(0, key.find('.')); }
    std::string_view name() const { return key.substr(key.find('.') + 1); }
};

/// Section names in file order.
std::vector<std::string_view> section_names();

/// Every key in file order. Built per call (a few dozen entries, read at start-up only) so
/// that no table lives in global state.
std::vector<field> make_fields();

}  // namespace pm_agent::config::detail
