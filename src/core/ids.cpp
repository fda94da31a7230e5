#include "pm_agent/core/ids.hpp"

namespace pm_agent::core {

namespace {

constexpr char k_base32[] = "0123456789abcdefghjkmnpqrstvwxyz";  // Crockford, lowercase

// splitmix64's finalizer: each step (xor-shift, odd multiply) is invertible, so distinct
// inputs give distinct ids.
std::uint64_t mix(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

}  // namespace

id_generator::id_generator(random_source& rng) : base_(rng.next_u64()) {}

std::string id_generator::next_task_id() {
    return make('t');
}

std::string id_generator::next_agent_id() {
    return make('a');
}

std::string id_generator::make(char prefix) {
    std::uint64_t v = mix(base_ + ++counter_);
    std::string id(15, '_');
    id[0] = prefix;
    for (int i = 14; i >= 2; --i) {
        id[static_cast<std::size_t>(i)] = k_base32[v & 31];
        v >>= 5;
    }
    return id;
}

}  // namespace pm_agent::core
