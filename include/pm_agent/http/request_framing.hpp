#pragma once
/// What RFC 9112 asks of a request beyond what the parser checks, as pure code: exactly one
/// Host in HTTP/1.1 (§3.2), a Transfer-Encoding that ends in chunked and uses nothing else we
/// cannot decode (§6.1, §6.3), and the absolute-form target a server must accept (§3.2.2).
/// The transport gathers the facts; this decides. Beast-free, so it is tested without sockets.

#include <optional>
#include <string_view>

namespace pm_agent::http {

/// The header facts the checks need, gathered in the transport's one pass over the fields.
struct request_framing {
    unsigned version = 11;                ///< 10 or 11
    unsigned host_fields = 0;             ///< how many Host fields came
    std::string_view transfer_encoding;   ///< the first Transfer-Encoding value, if any
    unsigned transfer_encoding_fields = 0;
};

/// Why a request is refused: its status and a message for the JSON error body. Every refusal
/// closes the connection (the body's end may not be where the parser thought).
struct framing_refusal {
    unsigned status;
    std::string_view message;
};

std::optional<framing_refusal> check_framing(const request_framing& facts);

/// The origin-form part of a request target: "http://host:8000/a?b" -> "/a?b", and
/// "http://host" -> "" (an empty path, which the caller reads as "/"); any other target is
/// returned as it is.
std::string_view origin_form(std::string_view target);

}  // namespace pm_agent::http
