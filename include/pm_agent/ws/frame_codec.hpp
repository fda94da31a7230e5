#pragma once
/// RFC 6455 framing as pure code (no sockets): an incremental decoder for client frames and an
/// encoder for server frames, plus the opening handshake's accept key. The transport feeds it
/// whatever bytes arrived; a connection that is idle keeps no buffer at all.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pm_agent/core/text.hpp"

namespace pm_agent::ws {

enum class opcode : std::uint8_t {
    continuation = 0x0,
    text = 0x1,
    binary = 0x2,
    close = 0x8,
    ping = 0x9,
    pong = 0xA,
};

/// Close codes the codec itself produces (RFC 6455 §7.4.1).
inline constexpr std::uint16_t k_close_normal = 1000;
inline constexpr std::uint16_t k_close_protocol_error = 1002;
inline constexpr std::uint16_t k_close_unsupported_data = 1003;
inline constexpr std::uint16_t k_close_no_status = 1005;
inline constexpr std::uint16_t k_close_invalid_payload = 1007;
inline constexpr std::uint16_t k_close_too_big = 1009;

/// RFC 6455 §8.1: text messages and close reasons are UTF-8.
using core::is_utf8;

/// The most bytes a frame header takes.
inline constexpr std::size_t k_max_frame_header = 10;

/// Writes the header of an unmasked server frame (FIN set) for a payload of `payload_size`
/// bytes into `out` (k_max_frame_header bytes of room); returns its length.
std::size_t write_frame_header(char* out, opcode op, std::uint64_t payload_size);

/// Appends one unmasked server frame (FIN set) with `payload` to `out`.
void append_frame(std::string& out, opcode op, std::string_view payload);

/// A close frame's payload: the code then the reason (truncated to fit 125 bytes).
std::string close_payload(std::uint16_t code, std::string_view reason);

/// The Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key.
std::string accept_key(std::string_view client_key);

/// permessage-deflate (RFC 7692) without context takeover: every message is compressed on its
/// own. Inflates `compressed` (the tail 00 00 ff ff is added here); nullopt when the data is
/// not valid deflate or inflates past `max_size` (`too_big` then says which).
std::optional<std::string> inflate_message(std::string_view compressed, std::size_t max_size,
                                           bool& too_big);

/// Deflates one message for a frame with RSV1 set (the tail 00 00 ff ff removed).
std::string deflate_message(std::string_view text);

/// Reads a Sec-WebSocket-Extensions offer: true when it offers permessage-deflate in a form
/// this server accepts (no server_max_window_bits demand). The answer to send is then
/// k_deflate_response.
bool accepts_deflate_offer(std::string_view extensions_header);
inline constexpr std::string_view k_deflate_response =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// What the decoder found. Views are valid only during the callback.
struct frame_event {
    enum class kind { text, binary, ping, pong, close, error } what;
    std::string_view payload;  ///< message (text/binary), ping/pong data, close reason
    std::uint16_t code = 0;    ///< close: the peer's code (1005 when none); error: ours to send
};

/// Decodes client-to-server frames: masked, no extensions, fragmented messages reassembled,
/// control frames allowed between fragments, text checked to be UTF-8, messages limited to
/// `max_message` bytes. After an `error` or a `close` event it ignores further input.
class frame_decoder {
  public:
    /// `deflate`: permessage-deflate was negotiated, so RSV1 marks a compressed message.
    explicit frame_decoder(std::size_t max_message, bool deflate = false)
        : max_message_(max_message), deflate_(deflate) {}

    /// Consumes `size` bytes at `data`, calling `on_event(const frame_event&)` for each complete
    /// message or control frame. Payloads are unmasked in place (so `data` is modified): the
    /// transport reads into one scratch buffer shared by all connections and nothing is copied
    /// for a message that arrived whole. Bytes of an unfinished frame are kept until the next
    /// call.
    template <class OnEvent>
    void feed(char* data, std::size_t size, OnEvent&& on_event) {
        if (done_) {
            return;
        }
        if (!partial_.empty()) {
            partial_.append(data, size);
            std::string held = std::move(partial_);
            partial_.clear();
            const auto used = parse(held.data(), held.size(), on_event);
            keep_rest(std::string_view(held).substr(used));
            return;
        }
        const auto used = parse(data, size, on_event);
        keep_rest(std::string_view(data + used, size - used));
    }

    /// True once an error or close was reported.
    bool done() const { return done_; }
    /// Bytes held between calls (a partial frame or fragmented message); 0 when idle.
    std::size_t buffered() const { return partial_.size() + message_.size(); }

  private:
    /// One frame's parsed header.
    struct header {
        bool fin;
        bool compressed;  ///< RSV1
        opcode op;
        std::uint64_t length;
        std::size_t header_size;
        unsigned char mask[4];
    };
    enum class header_status { need_more, ok, bad };

    header_status read_header(std::string_view data, header& h, std::uint16_t& error_code) const;
    /// Handles one complete frame; returns false after an error/close event.
    template <class OnEvent>
    bool on_frame(const header& h, char* payload, std::size_t length, OnEvent& on_event);
    template <class OnEvent>
    std::size_t parse(char* data, std::size_t size, OnEvent& on_event) {
        std::size_t used = 0;
        while (!done_) {
            header h{};
            std::uint16_t code = 0;
            const auto status = read_header(std::string_view(data + used, size - used), h, code);
            if (status == header_status::bad) {
                fail(on_event, code,
                     code == k_close_too_big ? "message too big" : "malformed frame");
                return size;
            }
            if (status == header_status::need_more || size - used < h.header_size + h.length) {
                break;
            }
            char* payload = data + used + h.header_size;
            used += h.header_size + h.length;
            if (!on_frame(h, payload, static_cast<std::size_t>(h.length), on_event)) {
                return size;
            }
        }
        return used;
    }
    template <class OnEvent>
    void fail(OnEvent& on_event, std::uint16_t code, std::string_view reason) {
        done_ = true;
        on_event(frame_event{frame_event::kind::error, reason, code});
    }
    void keep_rest(std::string_view rest);
    static void unmask(char* payload, std::size_t length, const unsigned char* mask);

    std::size_t max_message_;
    std::string partial_;  ///< bytes of an unfinished frame
    std::string message_;  ///< payload of an unfinished fragmented message
    opcode message_op_ = opcode::text;
    bool in_message_ = false;
    bool message_compressed_ = false;
    bool deflate_ = false;
    bool done_ = false;
};

template <class OnEvent>
bool frame_decoder::on_frame(const header& h, char* payload, std::size_t length,
                             OnEvent& on_event) {
    unmask(payload, length, h.mask);
    const std::string_view data(payload, length);
    if (static_cast<std::uint8_t>(h.op) >= 0x8) {
        if (h.op == opcode::ping || h.op == opcode::pong) {
            on_event(frame_event{
                h.op == opcode::ping ? frame_event::kind::ping : frame_event::kind::pong, data, 0});
            return true;
        }
        // close: optional 2-byte code then UTF-8 reason.
        if (data.size() == 1) {
            fail(on_event, k_close_protocol_error, "close frame with a 1-byte payload");
            return false;
        }
        std::uint16_t code = k_close_no_status;
        std::string_view reason;
        if (data.size() >= 2) {
            code = static_cast<std::uint16_t>((static_cast<unsigned char>(data[0]) << 8) |
                                              static_cast<unsigned char>(data[1]));
            reason = data.substr(2);
            // RFC 6455 §7.4: 1004-1006 and 1015 are never sent, codes under 3000 only as the
            // RFC and IANA define them; §7.1.6: the reason is UTF-8.
            const bool known = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                               (code >= 3000 && code <= 4999);
            if (!known) {
                fail(on_event, k_close_protocol_error, "invalid close code");
                return false;
            }
            if (!is_utf8(reason)) {
                fail(on_event, k_close_invalid_payload, "close reason is not UTF-8");
                return false;
            }
        }
        done_ = true;
        on_event(frame_event{frame_event::kind::close, reason, code});
        return false;
    }
    if (h.op == opcode::continuation) {
        if (!in_message_ || h.compressed) {
            fail(on_event, k_close_protocol_error, "unexpected continuation frame");
            return false;
        }
    } else {
        if (in_message_) {
            fail(on_event, k_close_protocol_error, "new message inside a fragmented one");
            return false;
        }
        message_op_ = h.op;
        message_compressed_ = h.compressed;
    }
    if (message_.size() + length > max_message_) {
        fail(on_event, k_close_too_big, "message too big");
        return false;
    }
    std::string_view message = data;
    if (!h.fin || in_message_) {
        message_.append(data);
        in_message_ = !h.fin;
        if (in_message_) {
            return true;
        }
        message = message_;
    }
    std::string inflated;
    if (message_compressed_) {
        bool too_big = false;
        auto plain = inflate_message(message, max_message_, too_big);
        if (!plain) {
            fail(on_event, too_big ? k_close_too_big : k_close_invalid_payload,
                 too_big ? "message too big" : "malformed compressed message");
            return false;
        }
        inflated = std::move(*plain);
        message = inflated;
    }
    const auto kind =
        message_op_ == opcode::text ? frame_event::kind::text : frame_event::kind::binary;
    if (kind == frame_event::kind::text && !is_utf8(message)) {
        fail(on_event, k_close_invalid_payload, "text message is not UTF-8");
        return false;
    }
    on_event(frame_event{kind, message, 0});
    if (!message_.empty()) {
        std::string().swap(message_);  // a fragmented message's buffer is not kept
    }
    return true;
}

}  // namespace pm_agent::ws
