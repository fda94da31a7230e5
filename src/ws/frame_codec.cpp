#include "pm_agent/ws/frame_codec.hpp"

#include <algorithm>
#include <utility>

#include <zlib.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

namespace pm_agent::ws {

frame_decoder::header_status frame_decoder::read_header(std::string_view data, header& h,
                                                        std::uint16_t& error_code) const {
    if (data.size() < 2) {
        return header_status::need_more;
    }
    const auto b0 = static_cast<unsigned char>(data[0]);
    const auto b1 = static_cast<unsigned char>(data[1]);
    error_code = k_close_protocol_error;
    h.compressed = (b0 & 0x40) != 0;
    if ((b0 & 0x30) != 0 || (h.compressed && !deflate_)) {
        return header_status::bad;  // RSV bits of an extension that was not negotiated
    }
    h.fin = (b0 & 0x80) != 0;
    const auto op = b0 & 0x0F;
    if (h.compressed && op >= 0x8) {
        return header_status::bad;  // control frames are never compressed
    }
    if (op != 0x0 && op != 0x1 && op != 0x2 && op != 0x8 && op != 0x9 && op != 0xA) {
        return header_status::bad;
    }
    h.op = static_cast<opcode>(op);
    if ((b1 & 0x80) == 0) {
        return header_status::bad;  // a client must mask every frame
    }
    std::uint64_t length = b1 & 0x7F;
    std::size_t pos = 2;
    if (length == 126) {
        if (data.size() < 4) {
            return header_status::need_more;
        }
        length = (static_cast<std::uint64_t>(static_cast<unsigned char>(data[2])) << 8) |
                 static_cast<unsigned char>(data[3]);
        pos = 4;
    } else if (length == 127) {
        if (data.size() < 10) {
            return header_status::need_more;
        }
        if ((static_cast<unsigned char>(data[2]) & 0x80) != 0) {
            return header_status::bad;  // RFC 6455 §5.2: the top bit of a 64-bit length is 0
        }
        length = 0;
        for (int i = 0; i < 8; ++i) {
            length = (length << 8) | static_cast<unsigned char>(data[2 + i]);
        }
        pos = 10;
    }
    if (op >= 0x8 && (!h.fin || length > 125)) {
        return header_status::bad;  // control frames are short and never fragmented
    }
    if (length > max_message_) {
        error_code = k_close_too_big;
        return header_status::bad;
    }
    if (data.size() < pos + 4) {
        return header_status::need_more;
    }
    for (int i = 0; i < 4; ++i) {
        h.mask[i] = static_cast<unsigned char>(data[pos + static_cast<std::size_t>(i)]);
    }
    h.length = length;
    h.header_size = pos + 4;
    return header_status::ok;
}

void frame_decoder::keep_rest(std::string_view rest) {
    if (rest.empty()) {
        if (partial_.capacity() > 0) {
            std::string().swap(partial_);  // idle connections keep no buffer
        }
        return;
    }
    partial_.assign(rest.data(), rest.size());
}

void frame_decoder::unmask(char* payload, std::size_t length, const unsigned char* mask) {
    for (std::size_t i = 0; i < length; ++i) {
        payload[i] = static_cast<char>(static_cast<unsigned char>(payload[i]) ^ mask[i & 3]);
    }
}

std::size_t write_frame_header(char* out, opcode op, std::uint64_t payload_size) {
    out[0] = static_cast<char>(0x80 | static_cast<std::uint8_t>(op));
    if (payload_size < 126) {
        out[1] = static_cast<char>(payload_size);
        return 2;
    }
    if (payload_size <= 0xFFFF) {
        out[1] = static_cast<char>(126);
        out[2] = static_cast<char>((payload_size >> 8) & 0xFF);
        out[3] = static_cast<char>(payload_size & 0xFF);
        return 4;
    }
    out[1] = static_cast<char>(127);
    for (int i = 0; i < 8; ++i) {
        out[2 + i] = static_cast<char>((payload_size >> (56 - 8 * i)) & 0xFF);
    }
    return k_max_frame_header;
}

void append_frame(std::string& out, opcode op, std::string_view payload) {
    char header[k_max_frame_header];
    out.append(header, write_frame_header(header, op, payload.size()));
    out.append(payload);
}

namespace {

/// The deflate block tail that permessage-deflate strips from every message (RFC 7692 §7.2.1).
constexpr unsigned char k_deflate_tail[4] = {0x00, 0x00, 0xFF, 0xFF};
/// Raw deflate with the largest window (negative: no zlib header).
constexpr int k_window_bits = -15;

}  // namespace

std::optional<std::string> inflate_message(std::string_view compressed, std::size_t max_size,
                                           bool& too_big) {
    too_big = false;
    z_stream zs{};
    if (inflateInit2(&zs, k_window_bits) != Z_OK) {
        return std::nullopt;
    }
    std::string input(compressed);
    input.append(reinterpret_cast<const char*>(k_deflate_tail), sizeof(k_deflate_tail));
    zs.next_in = reinterpret_cast<Bytef*>(input.data());
    zs.avail_in = static_cast<uInt>(input.size());
    std::string out;
    char chunk[16384];
    int rc = Z_OK;
    while (rc == Z_OK) {
        zs.next_out = reinterpret_cast<Bytef*>(chunk);
        zs.avail_out = sizeof(chunk);
        rc = inflate(&zs, Z_SYNC_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
            inflateEnd(&zs);
            return std::nullopt;
        }
        out.append(chunk, sizeof(chunk) - zs.avail_out);
        if (out.size() > max_size) {
            too_big = true;
            inflateEnd(&zs);
            return std::nullopt;
        }
        if (zs.avail_in == 0 && zs.avail_out != 0) {
            break;
        }
        if (rc == Z_BUF_ERROR) {
            break;
        }
    }
    const bool consumed = zs.avail_in == 0;
    inflateEnd(&zs);
    if (!consumed) {
        return std::nullopt;
    }
    return out;
}

std::string deflate_message(std::string_view text) {
    z_stream zs{};
    deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, k_window_bits, 8, Z_DEFAULT_STRATEGY);
    std::string out;
    out.resize(deflateBound(&zs, static_cast<uLong>(text.size())) + 16);
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
    zs.avail_in = static_cast<uInt>(text.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    deflate(&zs, Z_SYNC_FLUSH);
    out.resize(out.size() - zs.avail_out);
    deflateEnd(&zs);
    if (out.size() >= 4 &&
        std::equal(out.end() - 4, out.end(), reinterpret_cast<const char*>(k_deflate_tail))) {
        out.resize(out.size() - 4);
    }
    return out;
}

namespace {

using core::take_element;
using core::trim_blanks;

/// A window size parameter's value: 8 to 15, in decimal.
bool window_bits(std::string_view value) {
    int bits = 0;
    for (char c : value) {
        if (c < '0' || c > '9' || bits > 15) {
            return false;
        }
        bits = bits * 10 + (c - '0');
    }
    return !value.empty() && bits >= 8 && bits <= 15;
}

/// Whether one offer's parameters (after "permessage-deflate") are ones this server can accept
/// as k_deflate_response answers them (RFC 7692 §5: decline an offer with an unknown or
/// repeated parameter or a bad value).
bool acceptable_deflate_params(std::string_view params) {
    bool seen_server_nct = false;
    bool seen_client_nct = false;
    bool seen_client_bits = false;
    while (!params.empty()) {
        const auto param = take_element(params, ';');
        const auto equals = param.find('=');
        const auto name = trim_blanks(param.substr(0, equals));
        auto value = equals == std::string_view::npos ? std::string_view()
                                                      : trim_blanks(param.substr(equals + 1));
        if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
            value = value.substr(1, value.size() - 2);
        }
        const bool has_value = equals != std::string_view::npos;
        auto once = [](bool& seen) { return !std::exchange(seen, true); };
        if (name == "server_no_context_takeover" || name == "client_no_context_takeover") {
            if (has_value || !once(name.front() == 's' ? seen_server_nct : seen_client_nct)) {
                return false;
            }
        } else if (name == "client_max_window_bits") {
            // A hint that the client can take a limit; our inflater takes any window.
            if ((has_value && !window_bits(value)) || !once(seen_client_bits)) {
                return false;
            }
        } else {
            // server_max_window_bits would have to be echoed; anything else is unknown.
            return false;
        }
    }
    return true;
}

}  // namespace

bool accepts_deflate_offer(std::string_view header) {
    // Offers are comma-separated, in the client's order of preference; the first acceptable
    // permessage-deflate offer is taken.
    while (!header.empty()) {
        auto offer = take_element(header, ',');
        // What is left of the offer after its name are its parameters.
        if (take_element(offer, ';') == "permessage-deflate" && acceptable_deflate_params(offer)) {
            return true;
        }
    }
    return false;
}

std::string close_payload(std::uint16_t code, std::string_view reason) {
    std::string out;
    out.push_back(static_cast<char>(code >> 8));
    out.push_back(static_cast<char>(code & 0xFF));
    out.append(reason.substr(0, 123));
    return out;
}

std::string accept_key(std::string_view client_key) {
    static constexpr std::string_view k_guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    std::string input(client_key);
    input.append(k_guid);
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
    unsigned char encoded[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
    const int length = EVP_EncodeBlock(encoded, digest, SHA_DIGEST_LENGTH);
    return std::string(reinterpret_cast<const char*>(encoded), static_cast<std::size_t>(length));
}

}  // namespace pm_agent::ws
