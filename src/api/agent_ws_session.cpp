// The agent WebSocket protocol of API.md over the engine: register or resume, credit (`ready`),
// pushed tasks and cancels, progress/complete/fail with `ack`, heartbeats, `error` for bad
// frames (the connection stays), and `draining` when the worker shuts down.

#include "api/service_state.hpp"
#include "pm_agent/api/codec.hpp"
#include "pm_agent/api/query.hpp"

namespace pm_agent::api {

namespace {

using store::errc;

/// WebSocket close codes of API.md.
constexpr std::uint16_t k_close_policy = 1008;
/// An extension (README): the agent connected again, and the newer connection is the one kept
/// (as an MQTT broker takes a session over). Not 1008: a client must not take it for a
/// revoked token.
constexpr std::uint16_t k_close_replaced = 4001;
/// Frames and pongs renew the agent's leases, but at most this often: a busy agent sends
/// thousands of frames a second.
using core::k_liveness_interval;
/// What `draining` tells agents: reconnect (to any worker) after about this long.
constexpr std::int64_t k_reconnect_after_s = 1;

/// The token of an upgrade request: the Authorization header, else `?token=`.
std::string upgrade_token(const http_request& request) {
    auto token = bearer_token(request.authorization);
    if (!token.empty()) {
        return std::string(token);
    }
    if (auto params = parse_query(request.query)) {
        for (auto& [name, value] : *params) {
            if (name == "token") {
                return value;
            }
        }
    }
    return {};
}

}  // namespace

class agent_ws_session final : public ws_session, public core::agent_sink {
  public:
    /// `agent_id` empty: a new agent that must send `register` first.
    agent_ws_session(service_state& s, ws_connection& connection, std::string agent_id,
                     bool registration_checked, std::string client)
        : s_(s),
          connection_(connection),
          agent_id_(std::move(agent_id)),
          registration_checked_(registration_checked),
          client_(std::move(client)) {}
    ~agent_ws_session() override { *alive_ = false; }

    void on_open() override {
        s_.ws_sessions.emplace(this, true);
        open_ = true;
        opened_at_ = service_state::now();
        if (!agent_id_.empty()) {
            attach({});
        }
    }

    void on_message(std::string_view text) override {
        auto decoded = decode_ws_message(text);
        if (auto* bad = std::get_if<ws_decode_error>(&decoded)) {
            send_error(bad->error, bad->task_id);
            return;
        }
        auto& message = std::get<ws_message>(decoded);
        if (auto* reg = std::get_if<ws_in::register_msg>(&message)) {
            handle_register(std::move(*reg));
            return;
        }
        if (!attached_) {
            send_error({errc::bad_request, "send register first"}, {});
            close_if_never_registered();
            return;
        }
        // Any message says the agent is alive; a heartbeat says so itself (counting it here too
        // made every heartbeat two, the second one written in full on PostgreSQL).
        if (!std::holds_alternative<ws_in::heartbeat_msg>(message)) {
            on_alive();
        }
        std::visit([this](auto& m) { handle(m); }, message);
    }

    void on_alive() override {
        if (!attached_) {
            close_if_never_registered();
            return;
        }
        const auto now = service_state::now();
        if (now - last_liveness_ < k_liveness_interval) {
            return;
        }
        last_liveness_ = now;
        s_.engine.heartbeat(agent_id_, std::nullopt, now,
                            [](store::result<std::vector<std::string>>) {});
    }

    void on_closed() override {
        open_ = false;
        s_.ws_sessions.erase(this);
        if (attached_) {
            attached_ = false;
            s_.engine.detach(agent_id_, *this);
        }
    }

    // core::agent_sink: queue frames only.
    void push_task(const store::task& task) override {
        std::string frame;
        frame.reserve(448);
        append_ws_task(frame, task);
        send(std::move(frame));
    }
    void push_cancel(std::string_view task_id) override { send(ws_cancel(task_id)); }
    void deregistered() override {
        attached_ = false;
        connection_.close(k_close_policy, "agent deregistered");
    }
    void replaced() override {
        attached_ = false;
        connection_.close(k_close_replaced, "replaced by a newer connection of this agent");
    }

    void announce_drain() { send(ws_draining(k_reconnect_after_s)); }

  private:
    /// Wraps a store callback so that it does nothing once this session is gone: with an
    /// asynchronous store the answer can arrive after the connection closed.
    template <class F>
    auto guarded(F f) {
        return [alive = alive_, f = std::move(f)](auto&&... args) mutable {
            if (*alive) {
                f(std::forward<decltype(args)>(args)...);
            }
        };
    }

    void send(std::string frame) {
        if (!open_ || connection_.send(std::move(frame))) {
            return;
        }
        // The agent stopped reading: its tasks go back to pending now, not at heartbeat_timeout.
        open_ = false;
        if (attached_) {
            attached_ = false;
            s_.engine.detach_too_slow(agent_id_, *this, service_state::now());
        }
    }

    /// A connection to /ws/agent that answers pings but has not sent `register` within
    /// heartbeat_timeout_s holds a slot of server.max_connections for nobody: closed with 1008.
    /// (Checked when it shows life: one that shows none is closed by the ping timeout.)
    void close_if_never_registered() {
        if (agent_id_.empty() && !registering_ &&
            service_state::now() - opened_at_ > s_.cfg.agents.heartbeat_timeout) {
            connection_.close(k_close_policy, "no register within heartbeat_timeout_s");
        }
    }

    void send_error(const store::error& error, std::string_view task_id) {
        send(ws_error(store::to_string(error.code), error.message, task_id));
    }

    /// Attaches the agent's connection to the engine and answers `registered`.
    void attach(std::string token) {
        s_.engine.attach(
            agent_id_, *this, service_state::now(),
            guarded([this, token = std::move(token)](store::result<const store::agent*> r) {
                if (!r) {
                    send_error(r.err(), {});
                    connection_.close(k_close_policy, "agent unknown");
                    return;
                }
                attached_ = true;
                // Up to max_concurrency tasks (one `ready`), and as many acks plus the tasks
                // that follow them (completions read at once), may be queued in one turn.
                connection_.allow_outbound(2 * static_cast<std::size_t>((*r)->max_concurrency));
                const auto& a = s_.cfg.agents;
                send(ws_registered(agent_id_, token, a.heartbeat_interval.count(),
                                   a.heartbeat_timeout.count(), a.lease_timeout.count()));
            }));
    }

    void handle_register(ws_in::register_msg&& reg) {
        if (!agent_id_.empty()) {
            send_error({errc::conflict, "already registered on this connection"}, {});
            return;
        }
        if (!registration_checked_ &&
            s_.auth.check(reg.token, token_kind::registration) != auth_outcome::allowed) {
            send_error({errc::unauthorized, "a registration token is required"}, {});
            connection_.close(k_close_policy, "unauthorized");
            return;
        }
        registering_ = true;
        s_.limit(limit_kind::agent, "register", "register:" + client_,
                 guarded([this, spec = std::move(reg.spec)](limit_answer a) mutable {
                     if (a.refused) {
                         registering_ = false;
                         send_error(a.refused->status == 503
                                        ? store::error{errc::unavailable,
                                                       "rate limiter unavailable; retry later"}
                                        : store::error{errc::rate_limited,
                                                       "too many registrations; retry later"},
                                    {});
                         return;
                     }
                     register_allowed(std::move(spec));
                 }));
    }

    void register_allowed(core::agent_spec&& spec) {
        if (!agent_id_.empty()) {
            send_error({errc::conflict, "already registered on this connection"}, {});
            return;
        }
        spec.worker = s_.worker_id;
        s_.engine.register_agent(std::move(spec), service_state::now(),
                                 guarded([this](store::result<core::registration> r) {
                                     registering_ = false;
                                     if (!r) {
                                         send_error(r.err(), {});
                                         return;
                                     }
                                     agent_id_ = r->agent->id;
                                     s_.remember_agent_token(r->token, agent_id_);
                                     attach(std::move(r->token));
                                 }));
    }

    void handle(ws_in::register_msg&) {}

    void handle(ws_in::heartbeat_msg& m) {
        const auto now = service_state::now();
        last_liveness_ = now;
        // Answered at once: the ack says this worker heard the agent (the worker itself keeps
        // the connection's liveness). The store's part (leases, cancel notices) follows and
        // speaks only if it fails; waiting for it made the ack as slow as the database.
        send(ws_heartbeat_ack(now, m.seq));
        s_.engine.heartbeat(agent_id_, std::nullopt, now,
                            guarded([this](store::result<std::vector<std::string>> r) {
                                if (!r) {
                                    send_error(r.err(), {});
                                }
                            }));
    }

    void handle(ws_in::ready_msg& m) { s_.engine.ready(agent_id_, m.slots, service_state::now()); }

    /// Answers a task operation with `ack` or `error` naming the task.
    auto acknowledge(std::string task_id) {
        return guarded([this, task_id = std::move(task_id)](store::result<const store::task*> r) {
            if (!r) {
                send_error(r.err(), task_id);
                return;
            }
            send(ws_ack(task_id, (*r)->status));
        });
    }

    void handle(ws_in::progress_msg& m) {
        s_.engine.progress({m.task_id, agent_id_}, m.progress, std::move(m.message),
                           service_state::now(), acknowledge(m.task_id));
    }

    void handle(ws_in::complete_msg& m) {
        s_.engine.complete({m.task_id, agent_id_}, std::move(m.result), service_state::now(),
                           acknowledge(m.task_id));
    }

    void handle(ws_in::fail_msg& m) {
        s_.engine.fail({m.task_id, agent_id_}, std::move(m.error), m.retryable,
                       service_state::now(), acknowledge(m.task_id));
    }

    service_state& s_;
    ws_connection& connection_;
    std::string agent_id_;
    bool registration_checked_;
    std::string client_;
    bool attached_ = false;
    bool registering_ = false;  // a `register` is being decided (rate limit, store)
    bool open_ = false;
    store::time_point opened_at_{};
    store::time_point last_liveness_{};
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

void upgrade_agent_socket(service_state& s, const route_match& match, const http_request& request,
                          ws_connection& connection, upgrade_callback done) {
    upgrade_result result;
    const std::string token = upgrade_token(request);
    if (match.id == route_id::ws_agent_new) {
        // The registration token may come now or in `register`; a token sent now and refused is
        // answered 401 at the upgrade.
        bool checked = false;
        if (!token.empty() || !s.auth.enforced(token_kind::registration)) {
            const bool agent_token = s.agent_tokens.contains(digest_token(token));
            switch (s.auth.check(token, token_kind::registration, agent_token)) {
                case auth_outcome::allowed:
                    checked = true;
                    break;
                case auth_outcome::unauthorized:
                    result.refusal = error_response(401, "unauthorized", "unknown token");
                    return done(std::move(result));
                case auth_outcome::forbidden:
                    result.refusal = error_response(403, "forbidden", "not a registration token");
                    return done(std::move(result));
            }
        }
        result.session = std::make_unique<agent_ws_session>(s, connection, std::string(), checked,
                                                            s.client_address(request));
        return done(std::move(result));
    }
    // A known agent resumes with its own token.
    if (token.empty()) {
        result.refusal = error_response(401, "unauthorized", "the agent's own token is required");
        return done(std::move(result));
    }
    if (auto it = s.agent_tokens.find(digest_token(token)); it != s.agent_tokens.end()) {
        if (it->second != match.param) {
            result.refusal =
                error_response(403, "forbidden", "this token belongs to another agent");
            return done(std::move(result));
        }
        result.session = std::make_unique<agent_ws_session>(s, connection, it->second, true,
                                                            s.client_address(request));
        return done(std::move(result));
    }
    // Not issued by this worker: the store knows whether it is this agent's token.
    const bool other_kind = s.auth.kind_of(token).has_value();
    std::string agent_id(match.param);
    std::string peer = s.client_address(request);
    s.engine.authenticate(
        agent_id, token,
        [&s, &connection, token, agent_id, peer = std::move(peer), other_kind,
         done = std::move(done)](store::result<const store::agent*> r) mutable {
            upgrade_result decided;
            if (!r) {
                if (r.err().code == store::errc::unavailable) {
                    decided.refusal = error_response(503, "unavailable", r.err().message);
                    decided.refusal->headers.emplace_back("Retry-After", "1");
                } else if (other_kind) {
                    // A valid token of another kind is 403, as on the REST routes.
                    decided.refusal = error_response(403, "forbidden",
                                                     "this endpoint needs the agent's own token");
                } else {
                    decided.refusal = error_response(401, "unauthorized", "unknown agent token");
                }
                return done(std::move(decided));
            }
            s.remember_agent_token(token, agent_id);
            decided.session =
                std::make_unique<agent_ws_session>(s, connection, agent_id, true, std::move(peer));
            done(std::move(decided));
        });
}

void announce_drain(service_state& s) {
    for (auto& [session, unused] : s.ws_sessions) {
        session->announce_drain();
    }
}

}  // namespace pm_agent::api
