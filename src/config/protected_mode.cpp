#include <fmt/format.h>

#include "config/value_codecs.hpp"
#include "pm_agent/config/cidr.hpp"
#include "pm_agent/config/load.hpp"

namespace pm_agent::config {

bool is_loopback_host(std::string_view host) {
    if (detail::iequals(host, "localhost")) {
        return true;
    }
    // Listen addresses are sometimes written in URL form, "[::1]".
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    const auto address = ip_address::parse(host);
    if (!address) {
        return false;  // any other name may resolve to a public address
    }
    const auto v4_loopback = cidr::parse("127.0.0.0/8");
    const auto v6_loopback = cidr::parse("::1/128");
    return v4_loopback->contains(*address) || v6_loopback->contains(*address);
}

std::optional<std::string> protected_mode_violation(const config& effective) {
    const auto& auth = effective.auth;
    if (is_loopback_host(effective.server.host) || !auth.submit_tokens.empty() ||
        !auth.admin_tokens.empty() || !auth.registration_tokens.empty()) {
        return std::nullopt;
    }
    return fmt::format(
        "protected mode: refusing to listen on {} (not a loopback address) with no auth tokens "
        "configured. Either set tokens (PM_AGENT_SUBMIT_TOKENS and/or PM_AGENT_ADMIN_TOKENS for "
        "clients, PM_AGENT_REGISTRATION_TOKENS for agents; comma-separated, or auth.* in the "
        "config file), or listen on 127.0.0.1 only (--host 127.0.0.1 or PM_AGENT_HOST=127.0.0.1)",
        detail::quoted(effective.server.host));
}

}  // namespace pm_agent::config
