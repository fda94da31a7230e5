// pm-agent-server entry point: parses the command line, loads the configuration and wires the
// worker's objects together. No logic lives here.

#include <CLI/CLI.hpp>

#include <spdlog/spdlog.h>
#include <cstdio>
#include <algorithm>
#include <functional>
#include <iostream>

#include <boost/asio/io_context.hpp>

#include "pm_agent/api/service.hpp"
#include "pm_agent/config/load.hpp"
#include "pm_agent/http/server.hpp"
#include "pm_agent/log/logging.hpp"
#include "pm_agent/metrics/registry.hpp"
#include "pm_agent/pg/pool.hpp"
#include "pm_agent/process/supervisor.hpp"
#include "pm_agent/redis/client.hpp"
#include "pm_agent/store/postgres_store.hpp"

namespace {

constexpr int k_exit_config_error = 2;

pm_agent::http::server_options transport_options(const pm_agent::config::config& cfg) {
    pm_agent::http::server_options options;
    options.host = cfg.server.host;
    options.port = cfg.server.port;
    options.reuse_port = cfg.server.workers > 1;
    options.max_connections = cfg.server.max_connections;
    options.connection_timeout = cfg.server.connection_timeout;
    options.read_timeout = cfg.server.read_timeout;
    options.header_limit_bytes = cfg.server.header_limit_bytes;
    options.body_limit_bytes = cfg.server.body_limit_bytes;
    options.shutdown_timeout = cfg.server.shutdown_timeout;
    options.ws_read_message_max = cfg.agents.read_message_max;
    options.ws_outbound_queue_max = cfg.agents.outbound_queue_max;
    options.ws_ping_interval = cfg.agents.heartbeat_interval;
    options.ws_silence_timeout = cfg.agents.heartbeat_timeout;
    options.ws_permessage_deflate = cfg.agents.permessage_deflate;
    return options;
}

pm_agent::pg::pool_options pool_options(const pm_agent::config::config& cfg) {
    pm_agent::pg::pool_options options;
    options.url = *cfg.database.url;
    options.size = static_cast<std::size_t>(cfg.database.pool_size);
    options.statement_timeout = cfg.database.statement_timeout;
    options.prepared_statements = cfg.database.prepared_statements;
    return options;
}

pm_agent::store::postgres_options postgres_options(const pm_agent::config::config& cfg) {
    pm_agent::store::postgres_options options;
    options.poll_interval = cfg.database.poll_interval;
    options.max_batch = static_cast<std::size_t>(cfg.performance.task_batch_size);
    // Heartbeats are written once per interval, not each: well inside the timeouts they feed.
    const auto& agents = cfg.agents;
    options.heartbeat_write_interval = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::min({std::chrono::duration_cast<std::chrono::milliseconds>(agents.heartbeat_interval),
                  std::chrono::duration_cast<std::chrono::milliseconds>(agents.heartbeat_timeout) / 4,
                  std::chrono::duration_cast<std::chrono::milliseconds>(agents.lease_timeout) / 4}));
    return options;
}

pm_agent::redis::client_options redis_options(const pm_agent::config::config& cfg) {
    pm_agent::redis::client_options options;
    options.url = *cfg.redis.url;
    options.pool_size = static_cast<std::size_t>(cfg.redis.pool_size);
    options.timeout = cfg.redis.timeout;
    return options;
}

/// `migrate`, and `serve --migrate` before any worker starts: blocking, never on a loop.
int run_migrations(const pm_agent::config::config& cfg) {
    if (!cfg.database.url) {
        std::cerr << "pm-agent-server: migrate needs database.url (DATABASE_URL)\n";
        return k_exit_config_error;
    }
    std::vector<int> applied;
    if (auto error = pm_agent::store::migrate_database(*cfg.database.url, &applied);
        !error.empty()) {
        std::cerr << "pm-agent-server: migration failed: " << error << "\n";
        return 1;
    }
    std::cerr << "pm-agent-server event=migrated applied=" << applied.size() << "\n";
    return 0;
}

/// The worker's loop. Handlers still pending when run() returns (a drain that timed out leaves
/// sessions mid-request) hold coroutine frames that refer to the server and the service, so
/// they are destroyed while those still exist: finish() before the objects go out of scope.
class worker_loop : public boost::asio::io_context {
  public:
    worker_loop() : io_context(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO) {}  // one thread, no locks
    void finish() { shutdown(); }
};

/// One worker process: logging, the service and the transport on this thread until drained.
/// With server.workers > 1 it runs in a child of the supervisor, so everything that starts a
/// thread or a loop (spdlog's logger, io_context, store connections) belongs here, after fork().
/// `on_listening` (may be empty) is told once the port is bound.
int serve_worker(const pm_agent::config::config& cfg, const std::function<void()>& on_listening) {
    pm_agent::log::init(cfg.log.level, cfg.log.format == pm_agent::config::log_format::json);
    pm_agent::metrics::registry registry;
    worker_loop ioc;
    std::unique_ptr<pm_agent::pg::pool> db;
    std::unique_ptr<pm_agent::store::store> st;
    if (cfg.database.url) {
        db = std::make_unique<pm_agent::pg::pool>(ioc, pool_options(cfg), registry);
        db->start();
        st = pm_agent::store::make_postgres_store(ioc, *db, cfg.queue, cfg.agents,
                                                  postgres_options(cfg));
    } else {
        spdlog::warn(
            "event=store_not_durable store=memory detail=\"tasks live in this process only\"");
    }
    std::unique_ptr<pm_agent::redis::client> redis;
    if (cfg.redis.url) {
        redis = std::make_unique<pm_agent::redis::client>(ioc, redis_options(cfg), registry);
        redis->start();
    }
    pm_agent::api::transport_state state;
    pm_agent::api::service service(cfg, registry, state, std::move(st), db ? "postgres" : "memory",
                                   redis.get(), &ioc);
    pm_agent::http::server server(transport_options(cfg), service, state, registry, ioc);
    std::uint16_t port = 0;
    try {
        port = server.bind();
    } catch (const std::exception& e) {
        spdlog::critical("event=bind_failed host={} port={} error=\"{}\"", cfg.server.host,
                         cfg.server.port, e.what());
        ioc.finish();
        pm_agent::log::shutdown();
        return 1;
    }
    spdlog::info("event=listening host={} port={} store={} version={}", cfg.server.host, port,
                 service.store_name(), PM_AGENT_VERSION);
    if (on_listening) {
        on_listening();
    }
    server.run();
    ioc.finish();
    spdlog::info("event=stopped");
    pm_agent::log::shutdown();
    return 0;
}

pm_agent::process::supervisor_options supervisor_options(const pm_agent::config::config& cfg) {
    pm_agent::process::supervisor_options options;
    options.workers = cfg.server.workers;
    options.host = cfg.server.host;
    options.port = cfg.server.port;
    options.shutdown_timeout = cfg.server.shutdown_timeout;
    options.log_level = cfg.log.level;
    options.log_json = cfg.log.format == pm_agent::config::log_format::json;
    return options;
}

int serve(const pm_agent::config::config& cfg) {
    if (auto violation = pm_agent::config::protected_mode_violation(cfg)) {
        std::cerr << "pm-agent-server: refusing to start: " << *violation << "\n";
        return k_exit_config_error;
    }
    if (cfg.redis.url) {
        if (auto error = pm_agent::redis::url_error(*cfg.redis.url); !error.empty()) {
            std::cerr << "pm-agent-server: configuration error: " << error << "\n";
            return k_exit_config_error;
        }
    }
    if (cfg.server.workers <= 1) {
        return serve_worker(cfg, {});
    }
    // N workers share the port (SO_REUSEPORT); the supervisor fixes it, so port 0 is one port.
    return pm_agent::process::run_supervised(
        supervisor_options(cfg), [&cfg](const pm_agent::process::worker_context& worker) {
            auto worker_cfg = cfg;
            worker_cfg.server.port = worker.port;
            return serve_worker(worker_cfg, worker.listening);
        });
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"pm-agent-server: a work server for fleets of long-running agents"};
    app.set_version_flag("--version", std::string("pm-agent-server ") + PM_AGENT_VERSION);
    app.require_subcommand(0, 1);

    std::string config_file;
    app.add_option("--config", config_file, "JSON configuration file");
    // Flags are kept as raw text and validated by the config loader, so that a bad flag value
    // gets the same error (naming its key) as a bad file or environment value.
    std::map<std::string, std::string> flag_values;
    for (const auto& key : pm_agent::config::schema_keys()) {
        if (key.flag.empty()) {
            continue;
        }
        auto* option = app.add_option_function<std::string>(
            std::string(key.flag),
            [&flag_values, dotted = std::string(key.key)](const std::string& value) {
                flag_values[dotted] = value;
            },
            "overrides " + std::string(key.key));
        option->type_name("VALUE");
    }
    auto* serve_cmd = app.add_subcommand("serve", "run the server (default)");
    auto* check_cmd =
        app.add_subcommand("check-config", "print the effective configuration (secrets masked)");
    auto* migrate_cmd =
        app.add_subcommand("migrate", "apply the PostgreSQL schema migrations and exit");
    bool migrate_first = false;
    serve_cmd->add_flag("--migrate", migrate_first,
                        "apply the PostgreSQL schema migrations before serving");
    serve_cmd->fallthrough();
    check_cmd->fallthrough();
    migrate_cmd->fallthrough();

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }

    pm_agent::config::sources from;
    if (!config_file.empty()) {
        from.file_path = config_file;
    }
    from.flags = flag_values;
    from.getenv = pm_agent::config::process_environment();
    auto loaded = pm_agent::config::load_config(from);
    if (!loaded.ok()) {
        std::cerr << "pm-agent-server: configuration error: " << loaded.error->message << "\n";
        return k_exit_config_error;
    }
    if (check_cmd->parsed()) {
        std::cout << pm_agent::config::render_masked(*loaded.value);
        return 0;
    }
    if (migrate_cmd->parsed() || (migrate_first && loaded.value->database.url)) {
        if (const int rc = run_migrations(*loaded.value); rc != 0 || migrate_cmd->parsed()) {
            return rc;
        }
    }
    return serve(*loaded.value);
}
