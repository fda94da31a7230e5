// "host:pid": unique among the live workers of a fleet, and a restarted worker is a new one.
#include "pm_agent/process/identity.hpp"

#include <unistd.h>

namespace pm_agent::process {

std::string worker_identity() {
    char host[256] = {};
    std::string name = gethostname(host, sizeof(host) - 1) == 0 ? host : "unknown";
    name += ':';
    name += std::to_string(getpid());
    return name;
}

}  // namespace pm_agent::process
