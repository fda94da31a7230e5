#include "process/port_reservation.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace pm_agent::process {

std::string errno_text(const char* what) {
    return std::string(what) + ": " + std::strerror(errno);
}

std::optional<std::string> reserve_port(const std::string& host, std::uint16_t port, unique_fd& fd,
                                        std::uint16_t& bound) {
    sockaddr_storage address{};
    socklen_t length = 0;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
    if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        length = sizeof(*v4);
    } else if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        length = sizeof(*v6);
    } else {
        return "not a numeric IPv4 or IPv6 address";
    }
    fd.reset(::socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) {
        return errno_text("socket");
    }
    const int one = 1;
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        return errno_text("setsockopt");
    }
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), length) != 0) {
        return errno_text("bind");
    }
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
        return errno_text("getsockname");
    }
    bound = ntohs(address.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
    return std::nullopt;
}

}  // namespace pm_agent::process
