#include "pm_agent/ws/frame_codec.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace pm_agent::ws {
namespace {

/// A client frame: masked with a fixed key.
std::string client_frame(std::uint8_t first_byte, std::string_view payload) {
    std::string out;
    out.push_back(static_cast<char>(first_byte));
    const unsigned char mask[4] = {0x11, 0x22, 0x33, 0x44};
    const auto n = payload.size();
    if (n < 126) {
        out.push_back(static_cast<char>(0x80 | n));
    } else if (n <= 0xFFFF) {
        out.push_back(static_cast<char>(0x80 | 126));
        out.push_back(static_cast<char>(n >> 8));
        out.push_back(static_cast<char>(n & 0xFF));
    } else {
        out.push_back(static_cast<char>(0x80 | 127));
        for (int shift = 56; shift >= 0; shift -= 8) {
            out.push_back(static_cast<char>((static_cast<std::uint64_t>(n) >> shift) & 0xFF));
        }
    }
    out.append(reinterpret_cast<const char*>(mask), 4);
    for (std::size_t i = 0; i < n; ++i) {
        out.push_back(static_cast<char>(static_cast<unsigned char>(payload[i]) ^ mask[i % 4]));
    }
    return out;
}

struct recorded {
    frame_event::kind what;
    std::string payload;
    std::uint16_t code;
};

std::vector<recorded> decode(frame_decoder& d, std::string_view bytes) {
    std::vector<recorded> out;
    std::string copy(bytes);  // feed() unmasks in place
    d.feed(copy.data(), copy.size(), [&](const frame_event& e) {
        out.push_back({e.what, std::string(e.payload), e.code});
    });
    return out;
}

TEST(frame_decoder, decodes_a_text_message) {
    frame_decoder d(1024);
    auto events = decode(d, client_frame(0x81, R"({"type":"ready"})"));
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].what, frame_event::kind::text);
    EXPECT_EQ(events[0].payload, R"({"type":"ready"})");
    EXPECT_EQ(d.buffered(), 0u);
}

TEST(frame_decoder, handles_bytes_split_anywhere) {
    const std::string two = client_frame(0x81, "hello") + client_frame(0x81, std::string(300, 'x'));
    for (std::size_t cut = 0; cut <= two.size(); ++cut) {
        frame_decoder d(1024);
        auto events = decode(d, std::string_view(two).substr(0, cut));
        auto rest = decode(d, std::string_view(two).substr(cut));
        events.insert(events.end(), rest.begin(), rest.end());
        ASSERT_EQ(events.size(), 2u) << cut;
        EXPECT_EQ(events[0].payload, "hello");
        EXPECT_EQ(events[1].payload, std::string(300, 'x'));
        EXPECT_EQ(d.buffered(), 0u);
    }
}

TEST(frame_decoder, reassembles_fragments_with_control_frames_between) {
    frame_decoder d(1024);
    auto events =
        decode(d, client_frame(0x01, "hel") + client_frame(0x89, "p") + client_frame(0x80, "lo"));
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[0].what, frame_event::kind::ping);
    EXPECT_EQ(events[0].payload, "p");
    EXPECT_EQ(events[1].what, frame_event::kind::text);
    EXPECT_EQ(events[1].payload, "hello");
    EXPECT_EQ(d.buffered(), 0u);
}

TEST(frame_decoder, large_lengths) {
    frame_decoder d(1 << 20);
    const std::string big(70000, 'y');
    auto events = decode(d, client_frame(0x82, big));
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].what, frame_event::kind::binary);
    EXPECT_EQ(events[0].payload.size(), big.size());
}

TEST(frame_decoder, close_reports_code_and_reason) {
    frame_decoder d(1024);
    auto events =
        decode(d, client_frame(0x88, close_payload(1000, "bye")) + client_frame(0x81, "late"));
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].what, frame_event::kind::close);
    EXPECT_EQ(events[0].code, 1000);
    EXPECT_EQ(events[0].payload, "bye");
    EXPECT_TRUE(d.done());
    for (std::uint16_t code : {1001, 1003, 1007, 1011, 1014, 3000, 4000, 4999}) {
        frame_decoder valid(1024);
        auto closed = decode(valid, client_frame(0x88, close_payload(code, "")));
        ASSERT_EQ(closed.size(), 1u);
        EXPECT_EQ(closed[0].what, frame_event::kind::close) << code;
        EXPECT_EQ(closed[0].code, code);
    }
}

TEST(frame_decoder, protocol_errors) {
    struct case_t {
        std::string bytes;
        std::uint16_t code;
    };
    std::string unmasked = "\x81\x02hi";
    std::vector<case_t> cases{
        {unmasked, k_close_protocol_error},
        {client_frame(0xC1, "x"), k_close_protocol_error},  // RSV1 without deflate
        {client_frame(0x83, "x"), k_close_protocol_error},  // reserved opcode
        {client_frame(0x09, "x"), k_close_protocol_error},  // fragmented control frame
        {client_frame(0x80, "x"), k_close_protocol_error},  // continuation with no message
        {client_frame(0x01, "a") + client_frame(0x81, "b"), k_close_protocol_error},
        {client_frame(0x89, std::string(126, 'p')), k_close_protocol_error},
        {client_frame(0x81, std::string(2000, 'z')), k_close_too_big},
        // A 64-bit length with its top bit set is malformed, not merely big.
        {std::string("\x81\xFF\x80\0\0\0\0\0\0\x05", 10) + "mask", k_close_protocol_error},
        {client_frame(0x01, std::string(600, 'z')) + client_frame(0x80, std::string(600, 'z')),
         k_close_too_big},
        {client_frame(0x81, "\xC0\xAF"), k_close_invalid_payload},      // overlong
        {client_frame(0x81, "\xED\xA0\x80"), k_close_invalid_payload},  // surrogate
        {client_frame(0x88, "x"), k_close_protocol_error},
        {client_frame(0x88, close_payload(999, "")), k_close_protocol_error},
        {client_frame(0x88, close_payload(1004, "")), k_close_protocol_error},
        {client_frame(0x88, close_payload(1006, "")), k_close_protocol_error},
        {client_frame(0x88, close_payload(1015, "")), k_close_protocol_error},
        {client_frame(0x88, close_payload(2999, "")), k_close_protocol_error},
        {client_frame(0x88, close_payload(5000, "")), k_close_protocol_error},
        {client_frame(0x88, close_payload(1000, "\xC0\xAF")), k_close_invalid_payload},
    };
    for (const auto& c : cases) {
        frame_decoder d(1024);
        auto events = decode(d, c.bytes);
        ASSERT_FALSE(events.empty());
        EXPECT_EQ(events.back().what, frame_event::kind::error);
        EXPECT_EQ(events.back().code, c.code);
        EXPECT_TRUE(d.done());
    }
}

TEST(utf8, accepts_valid_text) {
    EXPECT_TRUE(is_utf8("plain"));
    EXPECT_TRUE(is_utf8("h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80"));
    EXPECT_FALSE(is_utf8("\xF4\x90\x80\x80"));  // past U+10FFFF
    EXPECT_FALSE(is_utf8("\xE2\x82"));          // truncated
    EXPECT_TRUE(is_utf8(std::string_view("a\0b", 3)));
    EXPECT_FALSE(core::is_storable_text(std::string_view("a\0b", 3)));
    EXPECT_FALSE(core::is_storable_text("\xFF"));
    EXPECT_TRUE(core::is_storable_text("h\xC3\xA9llo"));
}

TEST(frame_encoder, writes_unmasked_frames_with_each_length_form) {
    std::string out;
    append_frame(out, opcode::text, "hi");
    EXPECT_EQ(out, std::string("\x81\x02hi"));
    out.clear();
    append_frame(out, opcode::text, std::string(200, 'a'));
    EXPECT_EQ(static_cast<unsigned char>(out[1]), 126);
    EXPECT_EQ(out.size(), 4u + 200u);
    out.clear();
    append_frame(out, opcode::binary, std::string(70000, 'a'));
    EXPECT_EQ(static_cast<unsigned char>(out[1]), 127);
    EXPECT_EQ(out.size(), 10u + 70000u);
}

TEST(handshake, accept_key_matches_rfc_example) {
    EXPECT_EQ(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

}  // namespace
}  // namespace pm_agent::ws

namespace pm_agent::ws {
namespace {

TEST(deflate, round_trips_a_message) {
    const std::string text(5000, 'a');
    const auto compressed = deflate_message(text);
    EXPECT_LT(compressed.size(), text.size() / 10);
    bool too_big = false;
    auto plain = inflate_message(compressed, 1 << 20, too_big);
    ASSERT_TRUE(plain);
    EXPECT_EQ(*plain, text);
}

TEST(deflate, refuses_garbage_and_bombs) {
    bool too_big = false;
    EXPECT_FALSE(inflate_message("\xff\xfe\xfd not deflate", 1024, too_big));
    EXPECT_FALSE(too_big);
    const auto bomb = deflate_message(std::string(100000, 'x'));
    EXPECT_FALSE(inflate_message(bomb, 1000, too_big));
    EXPECT_TRUE(too_big);
}

TEST(deflate, decoder_inflates_rsv1_messages_only_when_negotiated) {
    auto frame = client_frame(0xC1, deflate_message(R"({"type":"ready","slots":3})"));
    frame_decoder plain(1024);
    auto refused = decode(plain, frame);
    ASSERT_EQ(refused.size(), 1u);
    EXPECT_EQ(refused[0].what, frame_event::kind::error);

    frame_decoder negotiated(1024, true);
    auto events = decode(negotiated, frame + client_frame(0x81, "uncompressed"));
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[0].payload, R"({"type":"ready","slots":3})");
    EXPECT_EQ(events[1].payload, "uncompressed");
}

TEST(deflate, offer_parsing) {
    EXPECT_TRUE(accepts_deflate_offer("permessage-deflate; client_max_window_bits"));
    EXPECT_TRUE(accepts_deflate_offer("x-webkit, permessage-deflate"));
    EXPECT_FALSE(accepts_deflate_offer("permessage-deflate; server_max_window_bits=10"));
    EXPECT_FALSE(accepts_deflate_offer(""));
    // RFC 7692 §5: an offer with an unknown or repeated parameter, or a bad value, is declined
    // (a later acceptable offer may still be taken).
    EXPECT_FALSE(accepts_deflate_offer("permessage-deflate; x_unknown"));
    EXPECT_FALSE(accepts_deflate_offer("permessage-deflate; client_no_context_takeover=1"));
    EXPECT_FALSE(accepts_deflate_offer(
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover"));
    EXPECT_FALSE(accepts_deflate_offer("permessage-deflate; client_max_window_bits=16"));
    EXPECT_FALSE(accepts_deflate_offer("permessage-deflate; client_max_window_bits=7"));
    EXPECT_FALSE(accepts_deflate_offer("permessage-deflate; client_max_window_bits=abc"));
    EXPECT_TRUE(accepts_deflate_offer("permessage-deflate; client_max_window_bits=\"10\""));
    EXPECT_TRUE(accepts_deflate_offer(
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"));
    EXPECT_TRUE(accepts_deflate_offer(
        "permessage-deflate; server_max_window_bits=10, permessage-deflate; "
        "client_max_window_bits"));
}

}  // namespace
}  // namespace pm_agent::ws
