#pragma once
/// Bearer-token checks for the configured token kinds (API.md "Auth", CONFIG.md auth.*).
/// Per-agent tokens are the engine's business; this class only knows the configured kinds.

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pm_agent/config/config.hpp"

namespace pm_agent::api {

/// What a route needs. `admin` also satisfies `submit`.
enum class token_kind { submit, admin, registration };

/// The outcome of a check, mapped by the caller to 200 / 401 / 403.
enum class auth_outcome { allowed, unauthorized, forbidden };

/// SHA-256 of a token: configured tokens are kept and compared only as digests, in constant time.
using token_digest = std::array<unsigned char, 32>;
token_digest digest_token(std::string_view token);

/// The token of an `Authorization: Bearer <token>` header; empty when absent or malformed.
std::string_view bearer_token(std::string_view authorization);

class authenticator {
  public:
    /// `loopback`: the listen address is loopback, so kinds with no token are not checked.
    authenticator(const config::auth_config& auth, bool loopback);

    /// Checks `token` (already taken out of the header) for a route that needs `kind`.
    /// Missing or unknown token: unauthorized; a configured token of another kind: forbidden.
    /// `known_elsewhere` says the token is valid for something else (an agent token), which
    /// makes a wrong-kind answer forbidden rather than unauthorized.
    auth_outcome check(std::string_view token, token_kind kind, bool known_elsewhere = false) const;

    /// Whether this kind is checked at all (false: open on loopback for development).
    bool enforced(token_kind kind) const;

    /// The configured kind of a token, if any (admin before submit before registration).
    std::optional<token_kind> kind_of(std::string_view token) const;

  private:
    bool matches(const std::vector<token_digest>& set, const token_digest& digest) const;

    std::vector<token_digest> submit_;
    std::vector<token_digest> admin_;
    std::vector<token_digest> registration_;
    bool loopback_;
};

}  // namespace pm_agent::api
