#include "pm_agent/api/auth.hpp"

#include <openssl/crypto.h>
#include <openssl/sha.h>

namespace pm_agent::api {
namespace {

std::vector<token_digest> digests_of(const std::vector<std::string>& tokens) {
    std::vector<token_digest> out;
    out.reserve(tokens.size());
    for (const auto& token : tokens) {
        out.push_back(digest_token(token));
    }
    return out;
}

}  // namespace

token_digest digest_token(std::string_view token) {
    token_digest digest{};
    SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), digest.data());
    return digest;
}

std::string_view bearer_token(std::string_view authorization) {
    constexpr std::string_view k_scheme = "bearer ";
    if (authorization.size() <= k_scheme.size()) {
        return {};
    }
    for (std::size_t i = 0; i < k_scheme.size(); ++i) {
        const char c = authorization[i];
        const char lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
        if (lower != k_scheme[i]) {
            return {};
        }
    }
    auto token = authorization.substr(k_scheme.size());
    while (!token.empty() && token.front() == ' ') {
        token.remove_prefix(1);
    }
    while (!token.empty() && token.back() == ' ') {
        token.remove_suffix(1);
    }
    return token;
}

authenticator::authenticator(const config::auth_config& auth, bool loopback)
    : submit_(digests_of(auth.submit_tokens)),
      admin_(digests_of(auth.admin_tokens)),
      registration_(digests_of(auth.registration_tokens)),
      loopback_(loopback) {}

bool authenticator::matches(const std::vector<token_digest>& set,
                            const token_digest& digest) const {
    bool found = false;
    for (const auto& candidate : set) {
        // Constant time per comparison; the loop does not stop early either.
        found |= CRYPTO_memcmp(candidate.data(), digest.data(), digest.size()) == 0;
    }
    return found;
}

std::optional<token_kind> authenticator::kind_of(std::string_view token) const {
    if (token.empty()) {
        return std::nullopt;
    }
    const auto digest = digest_token(token);
    if (matches(admin_, digest)) {
        return token_kind::admin;
    }
    if (matches(submit_, digest)) {
        return token_kind::submit;
    }
    if (matches(registration_, digest)) {
        return token_kind::registration;
    }
    return std::nullopt;
}

bool authenticator::enforced(token_kind kind) const {
    if (!loopback_) {
        return true;
    }
    switch (kind) {
        case token_kind::submit:
            return !submit_.empty();
        case token_kind::admin:
            return !admin_.empty();
        case token_kind::registration:
            return !registration_.empty();
    }
    return true;
}

auth_outcome authenticator::check(std::string_view token, token_kind kind,
                                  bool known_elsewhere) const {
    if (!enforced(kind)) {
        return auth_outcome::allowed;
    }
    const auto actual = kind_of(token);
    if (!actual) {
        return known_elsewhere ? auth_outcome::forbidden : auth_outcome::unauthorized;
    }
    const bool ok = *actual == kind || (kind == token_kind::submit && *actual == token_kind::admin);
    return ok ? auth_outcome::allowed : auth_outcome::forbidden;
}

}  // namespace pm_agent::api
