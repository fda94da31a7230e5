#pragma once
/// Per-agent tokens: 32 random bytes, base64url without padding (43 characters). Only their
/// SHA-256 is stored, and comparison is constant-time.

#include <array>
#include <string>
#include <string_view>

#include "pm_agent/core/random.hpp"

namespace pm_agent::core {

using token_hash = std::array<unsigned char, 32>;

/// A fresh token.
std::string generate_token(random_source& rng);
/// SHA-256 of a token.
token_hash hash_token(std::string_view token);
/// True when SHA-256(token) equals `expected`, compared in constant time.
bool token_matches(std::string_view token, const token_hash& expected);

}  // namespace pm_agent::core
