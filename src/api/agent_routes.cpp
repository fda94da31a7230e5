// Agent routes of API.md (register, heartbeat, deregister, admin listing) and /api/v1/stats.

#include "api/cluster_link.hpp"
#include "api/service_state.hpp"
#include "pm_agent/api/codec.hpp"
#include "pm_agent/api/query.hpp"

namespace pm_agent::api {
namespace {

using store::errc;

std::string agent_body(const store::agent& agent) {
    std::string out;
    out.reserve(256);
    append_agent_json(out, agent);
    return out;
}

void register_allowed(service_state& s, http_request&& request, respond_fn done);

/// Heartbeat ages from Redis presence where it is fresher than the store's (which a
/// PostgreSQL store writes once per interval, not per heartbeat), then `then(agents)`.
template <class Then>
void with_presence(service_state& s, std::vector<store::agent> agents, Then then) {
    if (!s.cluster || agents.empty()) {
        then(std::move(agents));
        return;
    }
    std::vector<std::string> ids;
    ids.reserve(agents.size());
    for (const store::agent& a : agents) {
        ids.push_back(a.id);
    }
    s.cluster->last_heartbeats(
        std::move(ids), [agents = std::move(agents), then = std::move(then)](
                            std::vector<std::optional<std::int64_t>> seen) mutable {
            for (std::size_t i = 0; i < agents.size() && i < seen.size(); ++i) {
                if (!seen[i]) {
                    continue;
                }
                const auto at = store::time_point(std::chrono::milliseconds(*seen[i]));
                if (at > agents[i].last_heartbeat) {
                    agents[i].last_heartbeat = at;
                }
            }
            then(std::move(agents));
        });
}

void register_agent(service_state& s, http_request&& request, respond_fn done) {
    if (auto refused = s.require(request, token_kind::registration)) {
        done(std::move(*refused));
        return;
    }
    // The key first: the callback below takes the request, and arguments are evaluated in no
    // fixed order.
    const std::string key = "register:" + s.client_address(request);
    s.limit(limit_kind::agent, "register", key,
            [&s, request = std::move(request), done = std::move(done)](limit_answer a) mutable {
                if (a.refused) {
                    done(std::move(*a.refused));
                    return;
                }
                register_allowed(s, std::move(request), std::move(done));
            });
}

void register_allowed(service_state& s, http_request&& request, respond_fn done) {
    auto body = parse_object(request.body, false);
    if (!body) {
        done(error_from(body.err()));
        return;
    }
    auto spec = decode_agent_spec(*body, false);
    if (!spec) {
        done(error_from(spec.err()));
        return;
    }
    spec->worker = s.worker_id;
    s.engine.register_agent(
        std::move(*spec), service_state::now(),
        [&s, done = std::move(done)](store::result<core::registration> r) mutable {
            if (!r) {
                done(error_from(r.err()));
                return;
            }
            s.remember_agent_token(r->token, r->agent->id);
            std::string out = R"({"agent_id":)";
            append_json_string(out, r->agent->id);
            out += R"(,"token":)";
            append_json_string(out, r->token);
            out += R"(,"heartbeat_interval_s":)" +
                   std::to_string(s.cfg.agents.heartbeat_interval.count()) +
                   R"(,"heartbeat_timeout_s":)" +
                   std::to_string(s.cfg.agents.heartbeat_timeout.count()) +
                   R"(,"lease_timeout_s":)" + std::to_string(s.cfg.agents.lease_timeout.count()) +
                   "}";
            done(json_response(201, std::move(out)));
        });
}

void heartbeat(service_state& s, std::string agent_id, http_request&& request, respond_fn done) {
    auto body = parse_object(request.body, true);
    if (!body) {
        done(error_from(body.err()));
        return;
    }
    std::optional<store::agent_status> status;
    for (const auto& [key, value] : *body) {
        if (key == "status") {
            if (!value.is_string()) {
                done(error_response(400, "bad_request",
                                    "status: must be \"online\" or \"draining\""));
                return;
            }
            status = store::parse_agent_status(std::string_view(value.get_string()));
            if (!status || *status == store::agent_status::offline) {
                done(error_response(400, "bad_request",
                                    "status: must be \"online\" or \"draining\""));
                return;
            }
        } else if (key != "running" && key != "seq") {
            done(error_response(400, "bad_request",
                                std::string(key.data(), key.size()) + ": unknown field"));
            return;
        }
    }
    s.authenticate_agent(
        request, agent_id,
        [&s, agent_id, status, done = std::move(done)](store::result<std::string> who) mutable {
            if (!who) {
                done(error_from(who.err()));
                return;
            }
            s.engine.heartbeat(
                agent_id, status, service_state::now(),
                [done = std::move(done)](store::result<std::vector<std::string>> r) mutable {
                    if (!r) {
                        done(error_from(r.err()));
                        return;
                    }
                    std::string out = R"({"ok":true,"cancel":[)";
                    for (std::size_t i = 0; i < r->size(); ++i) {
                        if (i > 0) {
                            out.push_back(',');
                        }
                        append_json_string(out, (*r)[i]);
                    }
                    out += "]}";
                    done(json_response(200, std::move(out)));
                });
        });
}

void deregister(service_state& s, std::string agent_id, http_request&& request, respond_fn done) {
    auto finish = [&s, agent_id](respond_fn done) {
        s.engine.deregister(agent_id, service_state::now(),
                            [&s, agent_id, done = std::move(done)](store::result<void> r) mutable {
                                if (!r) {
                                    done(error_from(r.err()));
                                    return;
                                }
                                std::erase_if(s.agent_tokens,
                                              [&](const auto& e) { return e.second == agent_id; });
                                if (s.cluster) {
                                    s.cluster->forget(agent_id);
                                }
                                http_response response;
                                response.status = 204;
                                done(std::move(response));
                            });
    };
    // An admin may remove any agent; otherwise only the agent itself.
    const auto token = bearer_token(request.authorization);
    if (s.auth.kind_of(token) == token_kind::admin ||
        (!s.auth.enforced(token_kind::admin) && token.empty())) {
        finish(std::move(done));
        return;
    }
    s.authenticate_agent(request, agent_id,
                         [finish, done = std::move(done)](store::result<std::string> who) mutable {
                             if (!who) {
                                 done(error_from(who.err()));
                                 return;
                             }
                             finish(std::move(done));
                         });
}

void list_agents(service_state& s, const http_request& request, respond_fn done) {
    auto params = parse_query(request.query);
    if (!params) {
        done(error_response(400, "bad_request", k_malformed_query));
        return;
    }
    store::agent_filter filter;
    if (auto error = read_paging(*params, filter.limit, filter.cursor)) {
        done(error_from(*error));
        return;
    }
    for (auto& [name, value] : *params) {
        if (name == "status") {
            filter.status = store::parse_agent_status(value);
            if (!filter.status) {
                done(error_response(400, "bad_request", "status: unknown agent status"));
                return;
            }
        } else if (name == "queue") {
            filter.queue = value;
        } else if (name != "limit" && name != "cursor") {
            done(error_response(400, "bad_request", name + ": unknown filter"));
            return;
        }
    }
    s.engine.list_agents(std::move(filter), [&s, done = std::move(done)](
                                                store::result<store::agent_page> r) mutable {
        if (!r) {
            done(error_from(r.err()));
            return;
        }
        auto next = std::move(r->next_cursor);
        with_presence(s, std::move(r->items),
                      [next = std::move(next),
                       done = std::move(done)](std::vector<store::agent> agents) mutable {
                          store::agent_page page{std::move(agents), std::move(next)};
                          done(page_response(page, append_agent_json));
                      });
    });
}

void append_status_counts(std::string& out, const store::status_counts& counts) {
    out.push_back('{');
    for (std::size_t i = 0; i < counts.size(); ++i) {
        if (i > 0) {
            out.push_back(',');
        }
        out.push_back('"');
        out += store::to_string(static_cast<store::task_status>(i));
        out += "\":" + std::to_string(counts[i]);
    }
    out.push_back('}');
}

}  // namespace

void handle_stats(service_state& s, const http_request& request, respond_fn done) {
    if (auto refused = s.require(request, token_kind::admin)) {
        done(std::move(*refused));
        return;
    }
    s.engine.stats([&s, done = std::move(done)](store::result<store::store_stats> r) mutable {
        if (!r) {
            done(error_from(r.err()));
            return;
        }
        const auto uptime =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - s.started);
        std::string out = R"({"version":")" PM_AGENT_VERSION R"(","worker":)";
        append_json_string(out, s.worker_id);
        out += R"(,"uptime_s":)" + std::to_string(static_cast<std::int64_t>(uptime.count()));
        out += R"(,"store":")" + s.store_name + R"(","connections":{"http":)" +
               std::to_string(s.transport.http_connections) + R"(,"ws":)" +
               std::to_string(s.transport.ws_connections) + "}";
        out += R"(,"agents":{)";
        for (std::size_t i = 0; i < store::k_agent_status_count; ++i) {
            if (i > 0) {
                out.push_back(',');
            }
            out.push_back('"');
            out += store::to_string(static_cast<store::agent_status>(i));
            out += "\":" + std::to_string(r->agents[i]);
        }
        out += R"(},"tasks":)";
        append_status_counts(out, r->tasks);
        out += R"(,"queues":{)";
        for (std::size_t i = 0; i < r->queues.size(); ++i) {
            if (i > 0) {
                out.push_back(',');
            }
            append_json_string(out, r->queues[i].first);
            out.push_back(':');
            append_status_counts(out, r->queues[i].second);
        }
        out += "}}";
        done(json_response(200, std::move(out)));
    });
}

void handle_agent_route(service_state& s, const route_match& match, http_request&& request,
                        respond_fn done) {
    switch (match.id) {
        case route_id::register_agent:
            register_agent(s, std::move(request), std::move(done));
            return;
        case route_id::heartbeat:
            heartbeat(s, std::string(match.param), std::move(request), std::move(done));
            return;
        case route_id::deregister_agent:
            deregister(s, std::string(match.param), std::move(request), std::move(done));
            return;
        case route_id::list_agents:
        case route_id::get_agent: {
            if (auto refused = s.require(request, token_kind::admin)) {
                done(std::move(*refused));
                return;
            }
            if (match.id == route_id::list_agents) {
                list_agents(s, request, std::move(done));
                return;
            }
            s.engine.get_agent(match.param, [&s, done = std::move(done)](
                                                store::result<const store::agent*> r) mutable {
                if (!r) {
                    done(error_from(r.err()));
                    return;
                }
                with_presence(s, {**r},
                              [done = std::move(done)](std::vector<store::agent> agents) mutable {
                                  done(json_response(200, agent_body(agents.front())));
                              });
            });
            return;
        }
        default:
            done(error_response(404, "not_found", "no such endpoint"));
            return;
    }
}

}  // namespace pm_agent::api
