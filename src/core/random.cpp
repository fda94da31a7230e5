#include "pm_agent/core/random.hpp"

#include <openssl/rand.h>

#include <array>
#include <cstdlib>
#include <cstring>

namespace pm_agent::core {

std::uint64_t random_source::next_u64() {
    std::array<unsigned char, 8> bytes{};
    fill(bytes);
    std::uint64_t v = 0;
    std::memcpy(&v, bytes.data(), sizeof v);
    return v;
}

double random_source::next_unit() {
    // The top 53 bits make every representable double in [0, 1) on the 2^-53 grid equally likely.
    return static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
}

void crypto_random::fill(std::span<unsigned char> out) {
    if (out.empty()) {
        return;
    }
    if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) {
        // Tokens must never be guessable; a CSPRNG that cannot produce bytes is not something
        // to work around.
        std::abort();
    }
}

void seeded_random::fill(std::span<unsigned char> out) {
    std::size_t i = 0;
    while (i < out.size()) {
        state_ += 0x9e3779b97f4a7c15ULL;
        std::uint64_t z = state_;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        for (int b = 0; b < 8 && i < out.size(); ++b, ++i) {
            out[i] = static_cast<unsigned char>(z >> (8 * b));
        }
    }
}

}  // namespace pm_agent::core
