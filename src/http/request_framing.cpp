// RFC 9112's request checks the parser leaves to us. Refusing what we cannot frame matters:
// a body read with the wrong length leaves its bytes to be parsed as the next request.

#include "pm_agent/http/request_framing.hpp"

#include "pm_agent/core/text.hpp"

namespace pm_agent::http {
namespace {

using core::iequals_ascii;
using core::take_element;

std::optional<framing_refusal> check_transfer_encoding(std::string_view list) {
    // A coding list such as "gzip, chunked"; empty elements are allowed (RFC 9110 §5.6.1).
    unsigned chunked = 0;
    bool last_is_chunked = false;
    bool unknown = false;
    while (!list.empty()) {
        auto element = take_element(list, ',');
        if (element.empty()) {
            continue;
        }
        const auto coding = take_element(element, ';');  // what follows are its parameters
        last_is_chunked = iequals_ascii(coding, "chunked");
        chunked += last_is_chunked ? 1 : 0;
        unknown = unknown || !last_is_chunked;
    }
    if (!last_is_chunked || chunked > 1) {
        return framing_refusal{400, "Transfer-Encoding must end with chunked, applied once"};
    }
    if (unknown) {
        return framing_refusal{501, "the only transfer coding supported is chunked"};
    }
    return std::nullopt;
}

}  // namespace

std::optional<framing_refusal> check_framing(const request_framing& facts) {
    if (facts.version >= 11 && facts.host_fields != 1) {
        return framing_refusal{400, facts.host_fields == 0
                                        ? "an HTTP/1.1 request needs a Host header"
                                        : "a request may carry only one Host header"};
    }
    if (facts.transfer_encoding_fields > 0 && facts.version < 11) {
        // RFC 9112 §6.1: HTTP/1.0 has no transfer codings; such framing is faulty.
        return framing_refusal{400, "Transfer-Encoding is not allowed in HTTP/1.0"};
    }
    if (facts.transfer_encoding_fields > 1) {
        // Beast reads the first field only; what it would frame is not what was sent.
        return framing_refusal{400, "send Transfer-Encoding as one header field"};
    }
    if (facts.transfer_encoding_fields == 1) {
        return check_transfer_encoding(facts.transfer_encoding);
    }
    return std::nullopt;
}

std::string_view origin_form(std::string_view target) {
    const auto scheme_end = target.find("://");
    if (scheme_end == std::string_view::npos || target.empty() || target.front() == '/') {
        return target;
    }
    const auto scheme = target.substr(0, scheme_end);
    if (!iequals_ascii(scheme, "http") && !iequals_ascii(scheme, "https")) {
        return target;
    }
    const auto rest = target.substr(scheme_end + 3);
    const auto path_start = rest.find_first_of("/?");
    return path_start == std::string_view::npos ? std::string_view{} : rest.substr(path_start);
}

}  // namespace pm_agent::http
