#pragma once
/// The one error shape of API.md: {"error": {"code": "...", "message": "..."}} with the
/// matching HTTP status. Every non-2xx answer is built here.

#include <string>
#include <string_view>

#include "pm_agent/api/http_types.hpp"

namespace pm_agent::api {

/// The body for an error, JSON-escaped.
std::string error_body(std::string_view code, std::string_view message);

/// A complete error response.
http_response error_response(unsigned status, std::string_view code, std::string_view message);

/// The API.md code for a status this server uses (400 -> bad_request, ...).
std::string_view error_code_for_status(unsigned status);

}  // namespace pm_agent::api
