// RFC 9112's Host and Transfer-Encoding rules and absolute-form targets, without sockets.

#include "pm_agent/http/request_framing.hpp"

#include <gtest/gtest.h>

namespace pm_agent::http {
namespace {

std::optional<unsigned> refusal_status(request_framing facts) {
    auto refusal = check_framing(facts);
    return refusal ? std::optional<unsigned>(refusal->status) : std::nullopt;
}

request_framing with_te(std::string_view te) {
    return request_framing{.version = 11, .host_fields = 1, .transfer_encoding = te,
                           .transfer_encoding_fields = 1};
}

TEST(RequestFraming, Http11NeedsExactlyOneHost) {
    EXPECT_EQ(refusal_status({.version = 11, .host_fields = 0}), 400u);
    EXPECT_EQ(refusal_status({.version = 11, .host_fields = 2}), 400u);
    EXPECT_EQ(refusal_status({.version = 11, .host_fields = 1}), std::nullopt);
    EXPECT_EQ(refusal_status({.version = 10, .host_fields = 0}), std::nullopt);
}

TEST(RequestFraming, ChunkedIsTheOnlyTransferCoding) {
    EXPECT_EQ(refusal_status(with_te("chunked")), std::nullopt);
    EXPECT_EQ(refusal_status(with_te(" Chunked ")), std::nullopt);
    EXPECT_EQ(refusal_status(with_te(", chunked")), std::nullopt);
    // A coding we cannot decode under chunked: understood framing, unsupported content.
    EXPECT_EQ(refusal_status(with_te("gzip, chunked")), 501u);
    EXPECT_EQ(refusal_status(with_te("x-custom;q=1 , chunked")), 501u);
    // Framing that does not end in chunked has no knowable length (§6.3).
    EXPECT_EQ(refusal_status(with_te("identity")), 400u);
    EXPECT_EQ(refusal_status(with_te("chunked, gzip")), 400u);
    EXPECT_EQ(refusal_status(with_te("chunked, chunked")), 400u);
    EXPECT_EQ(refusal_status(with_te("")), 400u);
}

TEST(RequestFraming, TransferEncodingInHttp10OrTwiceIsRefused) {
    auto http10 = with_te("chunked");
    http10.version = 10;
    EXPECT_EQ(refusal_status(http10), 400u);
    auto twice = with_te("chunked");
    twice.transfer_encoding_fields = 2;
    EXPECT_EQ(refusal_status(twice), 400u);
}

TEST(RequestFraming, AbsoluteFormBecomesOriginForm) {
    EXPECT_EQ(origin_form("http://example.com:8000/api/v1/tasks?limit=2"),
              "/api/v1/tasks?limit=2");
    EXPECT_EQ(origin_form("HTTPS://example.com/health"), "/health");
    EXPECT_EQ(origin_form("http://example.com"), "");
    EXPECT_EQ(origin_form("http://example.com?x=1"), "?x=1");
    EXPECT_EQ(origin_form("/health"), "/health");
    EXPECT_EQ(origin_form("/a?next=http://b/c"), "/a?next=http://b/c");
    EXPECT_EQ(origin_form("ftp://example.com/x"), "ftp://example.com/x");
    EXPECT_EQ(origin_form("*"), "*");
}

}  // namespace
}  // namespace pm_agent::http
