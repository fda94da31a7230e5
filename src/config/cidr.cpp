#include "pm_agent/config/cidr.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

namespace pm_agent::config {
namespace {

// "1.2.3.4" or "::1" without any normalisation; inet_pton needs a NUL-terminated copy.
std::optional<ip_address> parse_raw(std::string_view text) {
    if (text.empty() || text.size() > 45) {  // 45: longest IPv6 text with an embedded IPv4
        return std::nullopt;
    }
    const std::string copy(text);
    ip_address address;
    if (copy.find(':') == std::string::npos) {
        address.is_v4 = true;
        if (inet_pton(AF_INET, copy.c_str(), address.bytes.data()) != 1) {
            return std::nullopt;
        }
        return address;
    }
    address.is_v4 = false;
    if (inet_pton(AF_INET6, copy.c_str(), address.bytes.data()) != 1) {
        return std::nullopt;
    }
    return address;
}

bool is_v4_mapped(const ip_address& address) {
    if (address.is_v4) {
        return false;
    }
    const auto& b = address.bytes;
    return std::all_of(b.begin(), b.begin() + 10, [](std::uint8_t x) { return x == 0; }) &&
           b[10] == 0xff && b[11] == 0xff;
}

ip_address to_v4(const ip_address& mapped) {
    ip_address v4;
    v4.is_v4 = true;
    std::copy(mapped.bytes.begin() + 12, mapped.bytes.end(), v4.bytes.begin());
    return v4;
}

ip_address to_mapped_v6(const ip_address& v4) {
    ip_address v6;
    v6.is_v4 = false;
    v6.bytes[10] = 0xff;
    v6.bytes[11] = 0xff;
    std::copy(v4.bytes.begin(), v4.bytes.begin() + 4, v6.bytes.begin() + 12);
    return v6;
}

bool same_prefix(const ip_address& a, const ip_address& b, int prefix_length) {
    const int full_bytes = prefix_length / 8;
    const int rest_bits = prefix_length % 8;
    if (!std::equal(a.bytes.begin(), a.bytes.begin() + full_bytes, b.bytes.begin())) {
        return false;
    }
    if (rest_bits == 0) {
        return true;
    }
    const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest_bits));
    return (a.bytes[full_bytes] & mask) == (b.bytes[full_bytes] & mask);
}

void clear_host_bits(ip_address& address, int prefix_length) {
    for (int bit = prefix_length; bit < address.bit_width(); ++bit) {
        address.bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80 >> (bit % 8)));
    }
}

}  // namespace

std::optional<ip_address> ip_address::parse(std::string_view text) {
    // Link-local peers come with a zone ("fe80::1%eth0"); the zone does not change the address.
    if (const auto percent = text.find('%');
        percent != std::string_view::npos && text.find(':') != std::string_view::npos) {
        text = text.substr(0, percent);
    }
    auto address = parse_raw(text);
    if (address && is_v4_mapped(*address)) {
        return to_v4(*address);
    }
    return address;
}

std::optional<cidr> cidr::parse(std::string_view text) {
    const auto slash = text.find('/');
    // Kept un-normalised: "::ffff:10.0.0.0/104" is an IPv6 range and matches through mapping.
    auto network = parse_raw(text.substr(0, slash));
    if (!network) {
        return std::nullopt;
    }
    cidr range{*network, network->bit_width()};
    if (slash != std::string_view::npos) {
        const auto digits = text.substr(slash + 1);
        if (digits.empty() || digits.size() > 3 ||
            !std::all_of(digits.begin(), digits.end(),
                         [](char c) { return c >= '0' && c <= '9'; })) {
            return std::nullopt;
        }
        int prefix = 0;
        std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
        if (prefix > network->bit_width()) {
            return std::nullopt;
        }
        range.prefix_length = prefix;
    }
    clear_host_bits(range.network, range.prefix_length);
    return range;
}

bool cidr::contains(const ip_address& address) const {
    if (address.is_v4 == network.is_v4) {
        return same_prefix(address, network, prefix_length);
    }
    if (address.is_v4) {
        return same_prefix(to_mapped_v6(address), network, prefix_length);
    }
    // An IPv6 address that is not IPv4-mapped (ip_address::parse unmaps those) is never
    // inside an IPv4 range.
    return is_v4_mapped(address) && same_prefix(to_v4(address), network, prefix_length);
}

bool cidr::contains(std::string_view address) const {
    const auto parsed = ip_address::parse(address);
    return parsed && contains(*parsed);
}

std::string cidr::to_string() const {
    char buffer[INET6_ADDRSTRLEN] = {};
    inet_ntop(network.is_v4 ? AF_INET : AF_INET6, network.bytes.data(), buffer, sizeof buffer);
    return std::string(buffer) + "/" + std::to_string(prefix_length);
}

std::optional<trusted_proxies> trusted_proxies::parse(std::span<const std::string> entries) {
    std::vector<cidr> ranges;
    ranges.reserve(entries.size());
    for (const auto& entry : entries) {
        auto range = cidr::parse(entry);
        if (!range) {
            return std::nullopt;
        }
        ranges.push_back(*range);
    }
    return trusted_proxies(std::move(ranges));
}

bool trusted_proxies::trusts(std::string_view peer_address) const {
    const auto parsed = ip_address::parse(peer_address);
    return parsed && trusts(*parsed);
}

bool trusted_proxies::trusts(const ip_address& peer_address) const {
    return std::any_of(ranges_.begin(), ranges_.end(),
                       [&](const cidr& range) { return range.contains(peer_address); });
}

}  // namespace pm_agent::config
