#include "pm_agent/api/errors.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>

namespace pm_agent::api {

std::string error_body(std::string_view code, std::string_view message) {
    std::string body;
    body.reserve(32 + code.size() + message.size());
    body += R"({"error":{"code":)";
    body += boost::json::serialize(boost::json::string_view(code.data(), code.size()));
    body += R"(,"message":)";
    body += boost::json::serialize(boost::json::string_view(message.data(), message.size()));
    body += "}}";
    return body;
}

http_response error_response(unsigned status, std::string_view code, std::string_view message) {
    http_response response;
    response.status = status;
    response.body = error_body(code, message);
    return response;
}

std::string_view error_code_for_status(unsigned status) {
    switch (status) {
        case 400:
            return "bad_request";
        case 401:
            return "unauthorized";
        case 403:
            return "forbidden";
        case 404:
            return "not_found";
        case 405:
            return "method_not_allowed";
        case 408:
            return "request_timeout";
        case 409:
            return "conflict";
        case 413:
            return "payload_too_large";
        case 429:
            return "rate_limited";
        case 431:
            return "header_too_large";
        case 501:
            return "not_implemented";
        case 503:
            return "unavailable";
        default:
            return status >= 500 ? "internal" : "bad_request";
    }
}

}  // namespace pm_agent::api
