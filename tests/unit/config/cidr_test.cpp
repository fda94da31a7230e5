#include <gtest/gtest.h>

#include "pm_agent/config/cidr.hpp"

namespace pm_agent::config {
namespace {

TEST(ConfigCidr, ParsesRangesAndBareAddresses) {
    const auto v4 = cidr::parse("10.0.0.0/8");
    ASSERT_TRUE(v4.has_value());
    EXPECT_TRUE(v4->network.is_v4);
    EXPECT_EQ(v4->prefix_length, 8);
    EXPECT_EQ(v4->to_string(), "10.0.0.0/8");

    const auto host = cidr::parse("192.168.1.7");
    ASSERT_TRUE(host.has_value());
    EXPECT_EQ(host->to_string(), "192.168.1.7/32");

    const auto v6 = cidr::parse("::1");
    ASSERT_TRUE(v6.has_value());
    EXPECT_FALSE(v6->network.is_v4);
    EXPECT_EQ(v6->to_string(), "::1/128");

    EXPECT_EQ(cidr::parse("2001:db8::/32")->to_string(), "2001:db8::/32");
    EXPECT_EQ(cidr::parse("0.0.0.0/0")->prefix_length, 0);
}

TEST(ConfigCidr, ClearsHostBits) {
    EXPECT_EQ(cidr::parse("10.1.2.3/8")->to_string(), "10.0.0.0/8");
    EXPECT_EQ(cidr::parse("172.16.255.1/12")->to_string(), "172.16.0.0/12");
    EXPECT_EQ(cidr::parse("2001:db8::1/64")->to_string(), "2001:db8::/64");
}

TEST(ConfigCidr, RejectsMalformedText) {
    for (const auto* text :
         {"", "nginx", "10.0.0.0/33", "::/129", "10.0.0/8", "10.0.0.0/", "/8", "10.0.0.0/8/8",
          "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/ 8", " 10.0.0.0/8", "10.0.0.0/8 ", "1.2.3.4.5",
          "256.0.0.1", "fe80::1%eth0", "::1/1280", "01.2.3.4", "10.0.0.0/8x"}) {
        EXPECT_FALSE(cidr::parse(text).has_value()) << "'" << text << "'";
    }
}

TEST(ConfigCidr, MatchesIpv4) {
    const auto range = *cidr::parse("10.0.0.0/8");
    EXPECT_TRUE(range.contains("10.0.0.1"));
    EXPECT_TRUE(range.contains("10.255.255.255"));
    EXPECT_FALSE(range.contains("11.0.0.1"));
    EXPECT_FALSE(range.contains("9.255.255.255"));
    EXPECT_FALSE(range.contains("not an address"));
    EXPECT_FALSE(range.contains("::1"));

    const auto odd = *cidr::parse("192.168.4.0/22");  // prefix not on a byte boundary
    EXPECT_TRUE(odd.contains("192.168.7.200"));
    EXPECT_FALSE(odd.contains("192.168.8.1"));
    EXPECT_FALSE(odd.contains("192.168.3.255"));

    EXPECT_TRUE(cidr::parse("0.0.0.0/0")->contains("203.0.113.9"));
    EXPECT_TRUE(cidr::parse("127.0.0.1")->contains("127.0.0.1"));
    EXPECT_FALSE(cidr::parse("127.0.0.1")->contains("127.0.0.2"));
}

TEST(ConfigCidr, MatchesIpv6) {
    const auto range = *cidr::parse("2001:db8::/32");
    EXPECT_TRUE(range.contains("2001:db8::1"));
    EXPECT_TRUE(range.contains("2001:db8:ffff:ffff::1"));
    EXPECT_FALSE(range.contains("2001:db9::1"));
    EXPECT_FALSE(range.contains("10.0.0.1"));
    EXPECT_TRUE(cidr::parse("::1/128")->contains("::1"));
    EXPECT_FALSE(cidr::parse("::1/128")->contains("::2"));
    EXPECT_TRUE(cidr::parse("fe80::/10")->contains("fe80::1%eth0"));
    // A dual-stack socket sees an IPv4 peer as ::ffff:a.b.c.d, which lies inside ::/0.
    EXPECT_TRUE(cidr::parse("::/0")->contains("1.2.3.4"));
    EXPECT_FALSE(cidr::parse("8000::/1")->contains("1.2.3.4"));
}

TEST(ConfigCidr, MappedIpv6MatchesIpv4Ranges) {
    const auto v4 = *cidr::parse("10.0.0.0/8");
    EXPECT_TRUE(v4.contains("::ffff:10.1.2.3"));
    EXPECT_TRUE(v4.contains("::FFFF:10.1.2.3"));
    EXPECT_FALSE(v4.contains("::ffff:11.1.2.3"));
    EXPECT_TRUE(cidr::parse("127.0.0.1")->contains("::ffff:127.0.0.1"));

    // And the other way: an IPv4 peer matches a range written in mapped form.
    const auto mapped = *cidr::parse("::ffff:10.0.0.0/104");
    EXPECT_TRUE(mapped.contains("10.9.9.9"));
    EXPECT_TRUE(mapped.contains("::ffff:10.9.9.9"));
    EXPECT_FALSE(mapped.contains("11.9.9.9"));
    EXPECT_TRUE(cidr::parse("::ffff:0:0/96")->contains("198.51.100.1"));
}

TEST(ConfigIpAddress, NormalisesMappedAddresses) {
    const auto mapped = ip_address::parse("::ffff:1.2.3.4");
    const auto plain = ip_address::parse("1.2.3.4");
    ASSERT_TRUE(mapped && plain);
    EXPECT_EQ(*mapped, *plain);
    EXPECT_TRUE(mapped->is_v4);
    EXPECT_FALSE(ip_address::parse("1.2.3.4%eth0").has_value());  // zones are IPv6-only
    EXPECT_FALSE(ip_address::parse("1.2.3.4/32").has_value());
}

TEST(ConfigTrustedProxies, TrustsOnlyPeersInsideItsRanges) {
    const std::vector<std::string> entries{"127.0.0.1/32", "::1/128", "10.0.0.0/8"};
    const auto proxies = trusted_proxies::parse(entries);
    ASSERT_TRUE(proxies.has_value());
    EXPECT_EQ(proxies->ranges().size(), 3u);
    EXPECT_TRUE(proxies->trusts("127.0.0.1"));
    EXPECT_TRUE(proxies->trusts("::1"));
    EXPECT_TRUE(proxies->trusts("::ffff:10.20.30.40"));
    EXPECT_FALSE(proxies->trusts("127.0.0.2"));
    EXPECT_FALSE(proxies->trusts("192.168.0.1"));
    EXPECT_FALSE(proxies->trusts("garbage"));
    EXPECT_FALSE(proxies->trusts(""));
}

TEST(ConfigTrustedProxies, RejectsABadEntryAndDefaultTrustsNobody) {
    const std::vector<std::string> entries{"10.0.0.0/8", "10.0.0.0/99"};
    EXPECT_FALSE(trusted_proxies::parse(entries).has_value());
    const trusted_proxies nobody;
    EXPECT_FALSE(nobody.trusts("127.0.0.1"));
}

}  // namespace
}  // namespace pm_agent::config
