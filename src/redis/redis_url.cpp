// redis:// URLs, parsed with Boost.URL (percent-decoding of the user and password included).
#include "redis/redis_url.hpp"

#include <boost/url/parse.hpp>

#include <charconv>
#include <stdexcept>

namespace pm_agent::redis {

redis_endpoint parse_redis_url(std::string_view text) {
    auto parsed = boost::urls::parse_uri(text);
    if (!parsed) {
        throw std::invalid_argument("redis.url: not a URL (redis://[:password@]host:port[/db])");
    }
    const auto& u = *parsed;
    if (u.scheme() != "redis") {
        throw std::invalid_argument("redis.url: the scheme must be redis://");
    }
    redis_endpoint out;
    out.host = std::string(u.host_address());
    if (out.host.empty()) {
        throw std::invalid_argument("redis.url: no host");
    }
    if (u.has_port()) {
        const auto port = u.port();
        unsigned value = 0;
        auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
        if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
            throw std::invalid_argument("redis.url: the port must be 1-65535");
        }
        out.port = static_cast<std::uint16_t>(value);
    }
    if (u.has_password()) {
        out.password = std::string(u.password());
        if (!u.user().empty()) {
            out.user = std::string(u.user());
        }
    } else if (u.has_userinfo() && !u.user().empty()) {
        // redis://secret@host: a lone userinfo is the password (as redis-cli -u reads it).
        out.password = std::string(u.user());
    }
    std::string_view path = u.encoded_path();
    if (!path.empty() && path != "/") {
        path.remove_prefix(1);
        int db = 0;
        auto [end, ec] = std::from_chars(path.data(), path.data() + path.size(), db);
        if (ec != std::errc() || end != path.data() + path.size() || db < 0) {
            throw std::invalid_argument("redis.url: the path must be a database number (/0)");
        }
        out.db = db;
    }
    return out;
}

}  // namespace pm_agent::redis
