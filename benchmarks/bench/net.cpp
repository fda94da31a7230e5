// Connection set-up shared by submitters and agents.

#include "net.hpp"

#include <netinet/in.h>

#include <boost/asio/detail/socket_option.hpp>
#include <iostream>

namespace pm_agent::bench {
namespace {

/// Linux: pick the source port at connect(), by the full 4-tuple, not at bind().
#ifdef IP_BIND_ADDRESS_NO_PORT
using bind_no_port = asio::detail::socket_option::boolean<IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT>;
#endif

constexpr unsigned k_source_addresses = 250;

}  // namespace

std::optional<target> parse_target(const std::string& url, bool bind_source, std::string& error) {
    constexpr std::string_view scheme = "http://";
    if (url.rfind(scheme, 0) != 0) {
        error = "--url must start with http://";
        return std::nullopt;
    }
    std::string authority = url.substr(scheme.size());
    if (auto slash = authority.find('/'); slash != std::string::npos) {
        authority.resize(slash);
    }
    std::string host = authority;
    std::string port = "80";
    if (auto colon = authority.rfind(':'); colon != std::string::npos) {
        host = authority.substr(0, colon);
        port = authority.substr(colon + 1);
    }
    if (host.empty() || port.empty()) {
        error = "--url needs a host and a port";
        return std::nullopt;
    }
    asio::io_context io;
    tcp::resolver resolver(io);
    beast::error_code ec;
    auto results = resolver.resolve(tcp::v4(), host, port, ec);
    if (ec || results.empty()) {
        error = "cannot resolve " + host + ":" + port + ": " + ec.message();
        return std::nullopt;
    }
    target t;
    t.host_header = authority;
    t.endpoint = results.begin()->endpoint();
    const auto address = t.endpoint.address().to_v4().to_uint();
    t.spread_sources = bind_source && (address >> 24) == 127;
    return t;
}

asio::awaitable<beast::error_code> connect_to(tcp::socket& socket, target& server) {
    beast::error_code ec;
    socket.open(tcp::v4(), ec);
    if (ec) {
        co_return ec;
    }
    if (server.spread_sources) {
        const unsigned x = 1 + (server.next_source++ % k_source_addresses);
#ifdef IP_BIND_ADDRESS_NO_PORT
        socket.set_option(bind_no_port(true), ec);
#endif
        socket.bind(tcp::endpoint(asio::ip::address_v4((127u << 24) | x), 0), ec);
        if (ec) {
            co_return ec;
        }
    }
    auto [connect_ec] = co_await socket.async_connect(server.endpoint, k_tuple);
    if (connect_ec) {
        co_return connect_ec;
    }
    socket.set_option(tcp::no_delay(true), ec);
    co_return ec;
}

void report_exception(std::exception_ptr e) {
    if (!e) {
        return;
    }
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        std::cerr << "pm-agent-bench: coroutine failed: " << ex.what() << "\n";
    }
}

}  // namespace pm_agent::bench
