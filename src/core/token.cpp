#include "pm_agent/core/token.hpp"

#include <openssl/crypto.h>
#include <openssl/sha.h>

namespace pm_agent::core {

namespace {

constexpr char k_base64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

}  // namespace

std::string generate_token(random_source& rng) {
    std::array<unsigned char, 33> bytes{};  // 33 bytes = 44 characters; the last one dropped
    rng.fill(std::span<unsigned char>(bytes.data(), 32));
    std::string out;
    out.reserve(44);
    for (std::size_t i = 0; i < bytes.size(); i += 3) {
        const unsigned v =
            (unsigned{bytes[i]} << 16) | (unsigned{bytes[i + 1]} << 8) | bytes[i + 2];
        out += k_base64url[(v >> 18) & 63];
        out += k_base64url[(v >> 12) & 63];
        out += k_base64url[(v >> 6) & 63];
        out += k_base64url[v & 63];
    }
    out.resize(43);  // 256 bits need 43 base64 characters
    return out;
}

token_hash hash_token(std::string_view token) {
    token_hash out{};
    SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), out.data());
    return out;
}

bool token_matches(std::string_view token, const token_hash& expected) {
    const token_hash got = hash_token(token);
    return CRYPTO_memcmp(got.data(), expected.data(), got.size()) == 0;
}

}  // namespace pm_agent::core
