#pragma once
/// IPv4/IPv6 address ranges for server.trusted_proxies: parsed once at start-up, then matched
/// against every peer address without allocating.

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pm_agent::config {

/// One IP address in network byte order. IPv4-mapped IPv6 addresses ("::ffff:1.2.3.4") are
/// stored as the IPv4 address they carry, so a dual-stack socket's peer matches IPv4 ranges.
struct ip_address {
    std::array<std::uint8_t, 16> bytes{};  ///< first 4 bytes used when is_v4
    bool is_v4 = true;

    /// Parses "1.2.3.4", "::1", "::ffff:1.2.3.4" or "fe80::1%eth0" (the zone is ignored).
    static std::optional<ip_address> parse(std::string_view text);
    /// 32 or 128.
    int bit_width() const { return is_v4 ? 32 : 128; }

    friend bool operator==(const ip_address&, const ip_address&) = default;
};

/// An address range "10.0.0.0/8", "::1/128"; a bare address is a host route (/32 or /128).
/// Host bits below the prefix are cleared, as nginx's set_real_ip_from does.
struct cidr {
    ip_address network;
    int prefix_length = 32;

    /// nullopt when the text is not an address, optionally followed by /0..32 (IPv4) or
    /// /0..128 (IPv6) in plain decimal.
    static std::optional<cidr> parse(std::string_view text);
    /// True when the address lies in the range; an IPv4 address is also matched against
    /// IPv6 ranges in its mapped form (::ffff:0:0/96).
    bool contains(const ip_address& address) const;
    /// Parses the address first; text that is not an address is never contained.
    bool contains(std::string_view address) const;
    /// Canonical "network/prefix" text.
    std::string to_string() const;
};

/// The peers whose X-Forwarded-For / X-Real-IP header is believed (server.trusted_proxies).
class trusted_proxies {
  public:
    /// Trusts nobody.
    trusted_proxies() = default;
    explicit trusted_proxies(std::vector<cidr> ranges) : ranges_(std::move(ranges)) {}

    /// Builds from the configured list; nullopt if any entry is not a valid CIDR (load_config
    /// already rejects such a config, naming the entry).
    static std::optional<trusted_proxies> parse(std::span<const std::string> entries);

    /// True when the peer address is inside one of the ranges; false for unparsable text.
    bool trusts(std::string_view peer_address) const;
    bool trusts(const ip_address& peer_address) const;

    const std::vector<cidr>& ranges() const { return ranges_; }

  private:
    std::vector<cidr> ranges_;
};

}  // namespace pm_agent::config
