#pragma once
/// A libpq conninfo split so that host names can be resolved before libpq sees them.
///
/// PQconnectStart resolves host names with a blocking getaddrinfo, which would stall the loop
/// (DESIGN.md §1). So the URL is parsed once with PQconninfoParse, the names among its hosts
/// are resolved by the caller (Asio's asynchronous resolver), and libpq gets host=<name>
/// (kept for TLS/SNI and .pgpass) with hostaddr=<address>. Numeric hosts and Unix-socket
/// directories pass through. Sans-I/O: no socket, no DNS here.

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pm_agent::pg {

/// Keyword/value arrays as PQconnectStartParams takes them (null-terminated).
class connect_params {
  public:
    void add(std::string keyword, std::string value);
    /// The value of a keyword, or nullptr.
    const std::string* find(const std::string& keyword) const;
    /// Null-terminated arrays pointing into this object; valid while it lives unchanged.
    const char* const* keywords();
    const char* const* values();

  private:
    std::vector<std::pair<std::string, std::string>> pairs_;
    std::vector<const char*> keyword_ptrs_;
    std::vector<const char*> value_ptrs_;
};

/// One entry of the host list, classified.
enum class host_kind { name, numeric, socket, none };

/// Classifies a host entry: "" is none (libpq's default), a path ('/' or '@') a Unix socket,
/// an IPv4/IPv6 literal numeric, anything else a name to resolve.
host_kind classify_host(const std::string& host);

class conninfo {
  public:
    /// Parses a URI or key=value string. nullopt when libpq rejects it; the reason is dropped on
    /// purpose because it may quote part of the URL, password included.
    static std::optional<conninfo> parse(const std::string& text);

    /// The distinct host names that need DNS, in order; empty when nothing must be resolved
    /// (numeric hosts, sockets, or hostaddr given by the user).
    const std::vector<std::string>& names() const { return names_; }

    /// The parameters for libpq, each name replaced by its addresses: `addresses[i]` are the
    /// addresses of names()[i] (several become several host entries, which libpq tries in
    /// turn). nullopt when no host is left (every name failed to resolve).
    std::optional<connect_params> resolve(
        const std::vector<std::vector<std::string>>& addresses) const;

  private:
    std::vector<std::pair<std::string, std::string>> options_;  // set keywords but host/port
    std::vector<std::string> hosts_;  // split host list ("" entries allowed)
    std::vector<std::string> ports_;  // split port list, or one (or no) entry shared by all
    std::string host_;                // as given, for the pass-through case
    std::string port_;
    bool pass_through_ = true;  // nothing to resolve: hand libpq the options unchanged
    std::vector<std::string> names_;
};

}  // namespace pm_agent::pg
