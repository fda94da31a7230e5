#pragma once
/// The api layer's application: routes each request to its handler, checks tokens and rate
/// limits, speaks the JSON of API.md, and runs the agent WebSocket protocol over the engine.

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "pm_agent/api/application.hpp"
#include "pm_agent/config/config.hpp"

namespace pm_agent::metrics {
class registry;
}
namespace pm_agent::store {
class store;
}
namespace pm_agent::redis {
class client;
}
namespace boost::asio {
class io_context;
}

namespace pm_agent::api {

class service final : public application {
  public:
    /// `st` is the worker's store ("memory" when null: one is made here); `store_name` names it
    /// in logs and /api/v1/stats. With `redis` (and the worker's loop `ioc`; both must outlive
    /// the service) rate limits are shared between workers and they exchange wake-ups, cancel
    /// notices and presence through it.
    service(const config::config& cfg, metrics::registry& registry, transport_state& state,
            std::unique_ptr<store::store> st = nullptr, std::string store_name = "memory",
            redis::client* redis = nullptr, boost::asio::io_context* ioc = nullptr);
    ~service() override;

    void handle(http_request&& request, respond_fn done) override;
    void abandon(std::uint64_t connection_id) override;
    bool may_wait_for_event(const http_request& request) const override;
    void upgrade(const http_request& request, ws_connection& connection,
                 upgrade_callback done) override;
    std::chrono::steady_clock::time_point tick(std::chrono::steady_clock::time_point now) override;
    void begin_drain() override;

    /// "memory" or "postgres", for logs and /api/v1/stats.
    std::string_view store_name() const;

  private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace pm_agent::api
