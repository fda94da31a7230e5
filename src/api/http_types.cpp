#include "pm_agent/api/http_types.hpp"

namespace pm_agent::api {

std::string_view to_string(http_method m) {
    switch (m) {
        case http_method::get:
            return "GET";
        case http_method::head:
            return "HEAD";
        case http_method::post:
            return "POST";
        case http_method::put:
            return "PUT";
        case http_method::patch:
            return "PATCH";
        case http_method::del:
            return "DELETE";
        case http_method::options:
            return "OPTIONS";
        case http_method::other:
            break;
    }
    return "other";
}

}  // namespace pm_agent::api
