#pragma once
/// Injected randomness: agent tokens, the per-process id base and retry jitter all come from a
/// random_source, so tests run deterministic and production uses the OS CSPRNG.

#include <cstdint>
#include <span>

namespace pm_agent::core {

/// A source of random bytes. Used on the loop thread only.
class random_source {
  public:
    virtual ~random_source() = default;
    /// Fills `out` with random bytes.
    virtual void fill(std::span<unsigned char> out) = 0;
    /// 64 random bits.
    std::uint64_t next_u64();
    /// Uniform in [0, 1).
    double next_unit();
};

/// OpenSSL's CSPRNG (RAND_bytes): what the server uses.
class crypto_random final : public random_source {
  public:
    void fill(std::span<unsigned char> out) override;
};

/// A deterministic generator (splitmix64) for tests and benchmarks. Not for tokens in
/// production: its output is predictable from the seed.
class seeded_random final : public random_source {
  public:
    explicit seeded_random(std::uint64_t seed) : state_(seed) {}
    void fill(std::span<unsigned char> out) override;

  private:
    std::uint64_t state_;
};

}  // namespace pm_agent::core
