#pragma once
/// Building the effective configuration once at start-up (flag > environment > JSON file >
/// default, see CONFIG.md), printing it with secrets masked, and the protected-mode check.

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pm_agent/config/config.hpp"

namespace pm_agent::config {

/// Why the configuration was refused. `message` is complete and printable: it names the
/// dotted key, the source (file path, environment variable or flag) and the problem, and
/// never contains a token or a URL password.
struct load_error {
    std::string key;  ///< dotted JSON key ("server.port"); empty when the file itself is at fault
    std::string message;
};

/// Where load_config() reads from. Nothing is read from the process unless given here.
struct sources {
    std::optional<std::string> file_path;                           ///< --config FILE
    std::map<std::string, std::string> flags;                       ///< dotted key -> raw flag text
    std::function<std::optional<std::string>(const char*)> getenv;  ///< empty: no environment
};

/// Exactly one of value / error is set.
struct load_result {
    std::optional<config> value;
    std::optional<load_error> error;

    bool ok() const { return value.has_value(); }
};

/// One key of the schema, for wiring command-line options and for documentation.
struct key_info {
    std::string_view key;   ///< dotted JSON key
    std::string_view env;   ///< environment variable, empty when the key has none
    std::string_view flag;  ///< command-line flag ("--port"), empty when the key has none
};

/// Every key of CONFIG.md in file order.
std::vector<key_info> schema_keys();

/// Merges the sources over the defaults and validates every value and the cross-field rules.
/// An environment variable that is set but empty counts as unset (docker-compose passes
/// "${VAR:-}" through as an empty string).
load_result load_config(const sources& from);

/// The process environment, for sources::getenv in main(); tests inject a map instead.
std::function<std::optional<std::string>(const char*)> process_environment();

/// Pretty JSON of the effective config in the file's layout. Tokens become "***" (one per
/// configured token, so the count stays visible); URL passwords become "***".
std::string render_masked(const config& effective);

/// `url` with its password (userinfo after ':' and any `password=` query parameter)
/// replaced by "***"; everything else is kept so the operator can still read host and db.
std::string mask_url(std::string_view url);

/// 127.0.0.0/8, ::1 (also IPv4-mapped) and "localhost". Wildcards (0.0.0.0, ::) and other
/// names are not loopback.
bool is_loopback_host(std::string_view host);

/// A message telling the operator how to fix it when server.host is not loopback and no
/// submit, admin or registration token is configured; nullopt when the server may start.
std::optional<std::string> protected_mode_violation(const config& effective);

}  // namespace pm_agent::config
