// Task routes of API.md: submit (one and batch), read, list, cancel for submitters; request
// (long poll), start, progress, complete, fail for the holding agent.

#include <algorithm>
#include <span>

#include "api/service_state.hpp"
#include "pm_agent/api/codec.hpp"
#include "pm_agent/api/query.hpp"

namespace pm_agent::api {
namespace {

using store::errc;

/// The most a long poll may wait (API.md: wait_s 0..60).
constexpr double k_max_wait_s = 60;

http_response task_response(unsigned status, const store::task& task) {
    return json_response(status, task_json(task));
}

/// Answers `done` with the task, or the error.
auto answer_task(respond_fn done) {
    return [done = std::move(done)](store::result<const store::task*> r) mutable {
        if (!r) {
            done(error_from(r.err()));
            return;
        }
        done(task_response(200, **r));
    };
}

void submit_one(service_state& s, http_request&& request, respond_fn done) {
    auto body = parse_object(request.body, false);
    if (!body) {
        done(error_from(body.err()));
        return;
    }
    auto spec = decode_task_spec(*body, request.idempotency_key, "");
    if (!spec) {
        done(error_from(spec.err()));
        return;
    }
    s.engine.submit(std::move(*spec), service_state::now(),
                    [done = std::move(done)](store::result<store::submitted> r) mutable {
                        if (!r) {
                            done(error_from(r.err()));
                            return;
                        }
                        const auto& task = *r->record;
                        std::string out = R"({"task_id":)";
                        append_json_string(out, task.id);
                        out += R"(,"status":")";
                        out += store::to_string(task.status);
                        out += R"("})";
                        done(json_response(r->created ? 202 : 200, std::move(out)));
                    });
}

void submit_batch(service_state& s, http_request&& request, respond_fn done) {
    if (!request.idempotency_key.empty()) {
        // Ignoring it would make a retried batch a second batch, which its sender sent the
        // header to prevent.
        done(error_response(400, "bad_request",
                            "Idempotency-Key: not taken on a batch; give each task its own "
                            "idempotency_key"));
        return;
    }
    auto body = parse_object(request.body, false);
    if (!body) {
        done(error_from(body.err()));
        return;
    }
    auto specs = decode_task_batch(*body);
    if (!specs) {
        done(error_from(specs.err()));
        return;
    }
    s.engine.submit_batch(
        std::move(*specs), service_state::now(),
        [done = std::move(done)](store::result<std::span<const store::submitted>> r) mutable {
            if (!r) {
                done(error_from(r.err()));
                return;
            }
            std::string out = R"({"task_ids":[)";
            bool first = true;
            for (const auto& entry : *r) {
                if (!first) {
                    out.push_back(',');
                }
                first = false;
                append_json_string(out, entry.record->id);
            }
            out += "]}";
            done(json_response(202, std::move(out)));
        });
}

void list_tasks(service_state& s, const http_request& request, respond_fn done) {
    auto params = parse_query(request.query);
    if (!params) {
        done(error_response(400, "bad_request", k_malformed_query));
        return;
    }
    store::task_filter filter;
    if (auto error = read_paging(*params, filter.limit, filter.cursor)) {
        done(error_from(*error));
        return;
    }
    for (auto& [name, value] : *params) {
        if (name == "status") {
            filter.status = store::parse_task_status(value);
            if (!filter.status) {
                done(error_response(400, "bad_request", "status: unknown task status"));
                return;
            }
        } else if (name == "queue") {
            filter.queue = value;
        } else if (name == "type") {
            filter.type = value;
        } else if (name == "agent_id") {
            filter.agent_id = value;
        } else if (name != "limit" && name != "cursor") {
            done(error_response(400, "bad_request", name + ": unknown filter"));
            return;
        }
    }
    s.engine.list_tasks(std::move(filter),
                        [done = std::move(done)](store::result<store::task_page> r) mutable {
                            if (!r) {
                                done(error_from(r.err()));
                                return;
                            }
                            done(page_response(*r, append_task_json));
                        });
}

/// POST /api/v1/tasks/request: the caller's agent id is in the body and must match its token.
void request_allowed(service_state& s, const std::string& agent_id, std::size_t max_tasks,
                     double wait_s, std::uint64_t connection_id, respond_fn done);

void request_tasks(service_state& s, http_request&& request, respond_fn done) {
    auto body = parse_object(request.body, false);
    if (!body) {
        done(error_from(body.err()));
        return;
    }
    const auto* agent_value = body->if_contains("agent_id");
    if (agent_value == nullptr || !agent_value->is_string()) {
        done(error_response(400, "bad_request", "agent_id: required string"));
        return;
    }
    std::size_t max_tasks = 1;
    double wait_s = 0;
    for (const auto& [key, value] : *body) {
        if (key == "max_tasks") {
            auto n = integer_field(value, "max_tasks");
            if (!n || *n < 1 || *n > 1000) {
                done(error_response(400, "bad_request",
                                    "max_tasks: must be an integer from 1 to 1000"));
                return;
            }
            max_tasks = static_cast<std::size_t>(*n);
        } else if (key == "wait_s") {
            auto w = number_field(value, "wait_s");
            if (!w || !(*w >= 0 && *w <= k_max_wait_s)) {
                done(error_response(400, "bad_request", "wait_s: must be a number from 0 to 60"));
                return;
            }
            wait_s = *w;
        } else if (key != "agent_id") {
            done(error_response(400, "bad_request",
                                std::string(key.data(), key.size()) + ": unknown field"));
            return;
        }
    }
    std::string agent_id(agent_value->get_string());
    s.authenticate_agent(request, agent_id,
                         [&s, agent_id, max_tasks, wait_s, connection_id = request.connection_id,
                          done = std::move(done)](store::result<std::string> who) mutable {
                             if (!who) {
                                 done(error_from(who.err()));
                                 return;
                             }
                             // A copy for the callback: arguments are evaluated in no fixed
                             // order, and a moved-from id made every agent's key "" (one
                             // bucket for all of them).
                             s.limit(limit_kind::agent, "request", agent_id,
                                     [&s, agent_id, max_tasks, wait_s, connection_id,
                                      done = std::move(done)](limit_answer a) mutable {
                                         if (a.refused) {
                                             done(std::move(*a.refused));
                                             return;
                                         }
                                         request_allowed(s, agent_id, max_tasks, wait_s,
                                                         connection_id, std::move(done));
                                     });
                         });
}

void request_allowed(service_state& s, const std::string& agent_id, std::size_t max_tasks,
                     double wait_s, std::uint64_t connection_id, respond_fn done) {
    if (s.abandoned_polls.erase(connection_id) > 0) {
        done(empty_task_list());  // its client left meanwhile: nothing is claimed for it
        return;
    }
    auto slot = std::make_shared<respond_fn>(std::move(done));
    const auto wait = std::chrono::milliseconds(static_cast<std::int64_t>(wait_s * 1000));
    const auto id =
        s.engine.request_tasks(agent_id, max_tasks, wait, service_state::now(),
                               [slot](store::result<std::span<const store::task* const>> r) {
                                   if (!*slot) {
                                       return;
                                   }
                                   auto reply = std::move(*slot);
                                   *slot = nullptr;
                                   if (!r) {
                                       reply(error_from(r.err()));
                                       return;
                                   }
                                   std::string out = R"({"tasks":[)";
                                   bool first = true;
                                   for (const auto* task : *r) {
                                       if (!first) {
                                           out.push_back(',');
                                       }
                                       first = false;
                                       append_task_json(out, *task);
                                   }
                                   out += "]}";
                                   reply(json_response(200, std::move(out)));
                               });
    if (*slot) {
        s.long_polls[connection_id] = service_state::long_poll{id, std::move(slot)};
    }
}

/// start / progress / complete / fail by the agent holding the task's lease.
void holder_operation(service_state& s, route_id id, std::string task_id, http_request&& request,
                      respond_fn done) {
    auto body = parse_object(request.body, true);
    if (!body) {
        done(error_from(body.err()));
        return;
    }
    static constexpr std::string_view k_progress[] = {"progress", "message"};
    static constexpr std::string_view k_complete[] = {"result"};
    static constexpr std::string_view k_fail[] = {"error", "retryable"};
    const std::span<const std::string_view> known =
        id == route_id::progress_task   ? std::span<const std::string_view>(k_progress)
        : id == route_id::complete_task ? std::span<const std::string_view>(k_complete)
        : id == route_id::fail_task     ? std::span<const std::string_view>(k_fail)
                                        : std::span<const std::string_view>();
    if (auto fields = refuse_unknown_fields(*body, known); !fields) {
        done(error_from(fields.err()));
        return;
    }
    s.authenticate_agent(
        request, {},
        [&s, id, task_id = std::move(task_id), body = std::move(*body),
         done = std::move(done)](store::result<std::string> who) mutable {
            if (!who) {
                done(error_from(who.err()));
                return;
            }
            const std::string& agent_id = *who;
            const store::lease_ref lease{task_id, agent_id};
            const auto now = service_state::now();
            s.engine.heard(agent_id, now);  // a REST agent reporting is not silent
            switch (id) {
                case route_id::start_task:
                    s.engine.start(lease, now, answer_task(std::move(done)));
                    return;
                case route_id::progress_task: {
                    auto report = decode_progress_report(body);
                    if (!report) {
                        done(error_from(report.err()));
                        return;
                    }
                    s.engine.progress(lease, report->progress, std::move(report->message), now,
                                      answer_task(std::move(done)));
                    return;
                }
                case route_id::complete_task: {
                    boost::json::value result;
                    if (auto* r = body.if_contains("result"); r != nullptr) {
                        result = std::move(*r);
                    }
                    s.engine.complete(lease, std::move(result), now, answer_task(std::move(done)));
                    return;
                }
                case route_id::fail_task: {
                    auto report = decode_fail_report(body);
                    if (!report) {
                        done(error_from(report.err()));
                        return;
                    }
                    s.engine.fail(lease, std::move(report->error), report->retryable, now,
                                  answer_task(std::move(done)));
                    return;
                }
                default:
                    done(error_response(500, "internal", "internal error"));
                    return;
            }
        });
}

}  // namespace

void handle_task_route(service_state& s, const route_match& match, http_request&& request,
                       respond_fn done) {
    switch (match.id) {
        case route_id::submit_task:
        case route_id::submit_batch: {
            if (auto refused = s.require(request, token_kind::submit)) {
                done(std::move(*refused));
                return;
            }
            const auto token = bearer_token(request.authorization);
            const std::string key =
                token.empty() ? "ip:" + s.client_address(request) : "token:" + std::string(token);
            s.limit(limit_kind::submit, "submit", key,
                    [&s, batch = match.id == route_id::submit_batch, request = std::move(request),
                     done = std::move(done)](limit_answer a) mutable {
                        if (a.refused) {
                            done(std::move(*a.refused));
                            return;
                        }
                        // The limiter's headers ride on the answer, whatever it is.
                        auto with_headers = [headers = std::move(a.headers),
                                             done = std::move(done)](http_response&& r) mutable {
                            for (auto& h : headers) {
                                r.headers.push_back(std::move(h));
                            }
                            done(std::move(r));
                        };
                        if (batch) {
                            submit_batch(s, std::move(request), std::move(with_headers));
                        } else {
                            submit_one(s, std::move(request), std::move(with_headers));
                        }
                    });
            return;
        }
        case route_id::get_task:
        case route_id::list_tasks:
        case route_id::cancel_task:
        case route_id::retry_task: {
            if (auto refused = s.require(request, token_kind::submit)) {
                done(std::move(*refused));
                return;
            }
            if (match.id == route_id::get_task) {
                s.engine.get_task(match.param, answer_task(std::move(done)));
            } else if (match.id == route_id::cancel_task || match.id == route_id::retry_task) {
                // No body, or an empty object: anything else is a client's mistake to report.
                auto body = parse_object(request.body, true);
                if (!body) {
                    done(error_from(body.err()));
                    return;
                }
                if (auto fields = refuse_unknown_fields(*body, {}); !fields) {
                    done(error_from(fields.err()));
                    return;
                }
                if (match.id == route_id::cancel_task) {
                    s.engine.cancel(match.param, service_state::now(),
                                    answer_task(std::move(done)));
                } else {
                    s.engine.retry(match.param, service_state::now(),
                                   answer_task(std::move(done)));
                }
            } else {
                list_tasks(s, request, std::move(done));
            }
            return;
        }
        case route_id::request_tasks:
            request_tasks(s, std::move(request), std::move(done));
            return;
        default:
            holder_operation(s, match.id, std::string(match.param), std::move(request),
                             std::move(done));
            return;
    }
}

}  // namespace pm_agent::api
