#pragma once
// Private to src/redis: the parts of a redis:// URL the client needs.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pm_agent::redis {

struct redis_endpoint {
    std::string host;
    std::uint16_t port = 6379;
    std::optional<std::string> user;      ///< AUTH user (Redis 6 ACL), when the URL names one
    std::optional<std::string> password;  ///< a secret: never logged
    int db = 0;
};

/// redis://[[user]:password@]host[:port][/db]. Throws std::invalid_argument saying what is
/// wrong (never echoing the password).
redis_endpoint parse_redis_url(std::string_view url);

}  // namespace pm_agent::redis
