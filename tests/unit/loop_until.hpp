#pragma once
// Test helper: runs a test-owned io_context until a condition holds, bounded.

#include <boost/asio/io_context.hpp>

#include <chrono>

namespace pm_agent::testing {

/// Runs `ioc` until pred() holds or `limit` passes; false on timeout.
template <class Pred>
bool run_loop_until(boost::asio::io_context& ioc, Pred pred, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            return false;
        }
        ioc.restart();
        ioc.run_one_for(std::chrono::milliseconds(10));
    }
    return true;
}

}  // namespace pm_agent::testing
