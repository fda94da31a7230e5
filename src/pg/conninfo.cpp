// Parsing a conninfo and substituting resolved addresses for host names (see conninfo.hpp).

#include "pg/conninfo.hpp"

#include <arpa/inet.h>
#include <libpq-fe.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string_view>

namespace pm_agent::pg {

namespace {

std::vector<std::string> split_commas(const std::string& text) {
    std::vector<std::string> parts;
    std::size_t begin = 0;
    while (true) {
        const std::size_t comma = text.find(',', begin);
        if (comma == std::string::npos) {
            parts.push_back(text.substr(begin));
            return parts;
        }
        parts.push_back(text.substr(begin, comma - begin));
        begin = comma + 1;
    }
}

std::string join_commas(const std::vector<std::string>& parts) {
    std::string text;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        if (i > 0) {
            text += ',';
        }
        text += parts[i];
    }
    return text;
}

std::string env_or_empty(const char* name) {
    const char* value = std::getenv(name);
    return value != nullptr ? std::string(value) : std::string();
}

}  // namespace

void connect_params::add(std::string keyword, std::string value) {
    pairs_.emplace_back(std::move(keyword), std::move(value));
}

const std::string* connect_params::find(const std::string& keyword) const {
    for (const auto& [key, value] : pairs_) {
        if (key == keyword) {
            return &value;
        }
    }
    return nullptr;
}

const char* const* connect_params::keywords() {
    keyword_ptrs_.clear();
    for (const auto& pair : pairs_) {
        keyword_ptrs_.push_back(pair.first.c_str());
    }
    keyword_ptrs_.push_back(nullptr);
    return keyword_ptrs_.data();
}

const char* const* connect_params::values() {
    value_ptrs_.clear();
    for (const auto& pair : pairs_) {
        value_ptrs_.push_back(pair.second.c_str());
    }
    value_ptrs_.push_back(nullptr);
    return value_ptrs_.data();
}

host_kind classify_host(const std::string& host) {
    if (host.empty()) {
        return host_kind::none;
    }
    // libpq treats an absolute path (and, since 14, '@' for the abstract namespace) as a
    // Unix-socket directory.
    if (host.front() == '/' || host.front() == '@') {
        return host_kind::socket;
    }
    unsigned char buffer[16];
    if (inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
        inet_pton(AF_INET6, host.c_str(), buffer) == 1) {
        return host_kind::numeric;
    }
    return host_kind::name;
}

std::optional<conninfo> conninfo::parse(const std::string& text) {
    char* error = nullptr;
    std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> options(
        PQconninfoParse(text.c_str(), &error), &PQconninfoFree);
    if (error != nullptr) {
        PQfreemem(error);
    }
    if (!options) {
        return std::nullopt;
    }

    conninfo info;
    std::string hostaddr;
    bool has_application_name = false;
    for (const PQconninfoOption* option = options.get(); option->keyword != nullptr; ++option) {
        if (option->val == nullptr) {
            continue;
        }
        const std::string_view keyword = option->keyword;
        if (keyword == "host") {
            info.host_ = option->val;
        } else if (keyword == "port") {
            info.port_ = option->val;
        } else {
            if (keyword == "hostaddr") {
                hostaddr = option->val;
                if (hostaddr.empty()) {
                    continue;  // "hostaddr=" says nothing; keeping it would clash with ours
                }
            }
            if (keyword == "fallback_application_name" || keyword == "application_name") {
                has_application_name = true;
            }
            info.options_.emplace_back(option->keyword, option->val);
        }
    }
    if (!has_application_name) {
        // So that pg_stat_activity says who holds the connections.
        info.options_.emplace_back("fallback_application_name", "pm-agent-server");
    }

    // PQconninfoParse applies no environment defaults, but libpq would: a PGHOST name must be
    // resolved here too, or PQconnectStart would look it up synchronously.
    std::string host = info.host_.empty() ? env_or_empty("PGHOST") : info.host_;
    if (hostaddr.empty()) {
        hostaddr = env_or_empty("PGHOSTADDR");
    }
    info.hosts_ = split_commas(host);
    for (const std::string& entry : info.hosts_) {
        if (classify_host(entry) == host_kind::name &&
            std::find(info.names_.begin(), info.names_.end(), entry) == info.names_.end()) {
            info.names_.push_back(entry);
        }
    }
    // A hostaddr given by the user already says where to connect: libpq does no DNS then.
    if (!hostaddr.empty()) {
        info.names_.clear();
    }
    info.pass_through_ = info.names_.empty();
    info.host_ = host;
    info.ports_ = split_commas(info.port_);
    return info;
}

std::optional<connect_params> conninfo::resolve(
    const std::vector<std::vector<std::string>>& addresses) const {
    connect_params params;
    for (const auto& [keyword, value] : options_) {
        params.add(keyword, value);
    }
    if (pass_through_) {
        if (!host_.empty()) {
            params.add("host", host_);
        }
        if (!port_.empty()) {
            params.add("port", port_);
        }
        return params;
    }

    // One port per host entry is expanded with its host; a single port applies to all.
    const bool per_host_ports = ports_.size() > 1 && ports_.size() == hosts_.size();
    std::vector<std::string> hosts;
    std::vector<std::string> hostaddrs;
    std::vector<std::string> ports;
    for (std::size_t i = 0; i < hosts_.size(); ++i) {
        const std::string& entry = hosts_[i];
        const std::string port = per_host_ports ? ports_[i] : std::string();
        switch (classify_host(entry)) {
            case host_kind::name: {
                const auto at = std::find(names_.begin(), names_.end(), entry) - names_.begin();
                if (static_cast<std::size_t>(at) >= addresses.size()) {
                    break;
                }
                for (const std::string& address : addresses[static_cast<std::size_t>(at)]) {
                    hosts.push_back(entry);
                    hostaddrs.push_back(address);
                    ports.push_back(port);
                }
                break;
            }
            case host_kind::numeric:
                hosts.push_back(entry);
                hostaddrs.push_back(entry);
                ports.push_back(port);
                break;
            case host_kind::socket:
            case host_kind::none:
                // An empty hostaddr entry makes libpq use the host entry as it is.
                hosts.push_back(entry);
                hostaddrs.emplace_back();
                ports.push_back(port);
                break;
        }
    }
    if (hosts.empty()) {
        return std::nullopt;
    }
    params.add("host", join_commas(hosts));
    params.add("hostaddr", join_commas(hostaddrs));
    if (per_host_ports) {
        params.add("port", join_commas(ports));
    } else if (!port_.empty()) {
        params.add("port", port_);
    }
    return params;
}

}  // namespace pm_agent::pg
