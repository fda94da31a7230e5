#pragma once
// Plain POSIX helpers of the supervisor: an owned file descriptor and the port reservation.

#include <unistd.h>

#include <cstdint>
#include <optional>
#include <string>

namespace pm_agent::process {

/// A file descriptor closed when it goes out of scope.
class unique_fd {
  public:
    explicit unique_fd(int fd = -1) : fd_(fd) {}
    ~unique_fd() { reset(); }
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    int get() const { return fd_; }
    void reset(int fd = -1) {
        if (fd_ >= 0) {
            ::close(fd_);
        }
        fd_ = fd;
    }

  private:
    int fd_;
};

/// `what: strerror(errno)`.
std::string errno_text(const char* what);

/// Binds (without listening) a socket with SO_REUSEPORT to host:port (a numeric address) and
/// stores the bound port in `bound`; returns why it failed otherwise. Held for the supervisor's
/// lifetime it reserves the port, so with port 0 every worker, restarted ones included, binds
/// the same port; connections only ever go to the workers' listening sockets.
std::optional<std::string> reserve_port(const std::string& host, std::uint16_t port, unique_fd& fd,
                                        std::uint16_t& bound);

}  // namespace pm_agent::process
