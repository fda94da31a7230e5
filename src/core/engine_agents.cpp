// Agents: registration, authentication, heartbeats, deregistration and the WebSocket
// attach/detach/ready flow.
#include <algorithm>

#include "engine_state.hpp"
#include "pm_agent/core/token.hpp"

namespace pm_agent::core {

void engine::register_agent(agent_spec spec, time_point now, callback<registration> done) {
    impl& s = *impl_;
    auto checked = validate_agent(std::move(spec));
    if (!checked) {
        return done(std::move(checked).err());
    }
    checked->id = s.ids_.next_agent_id();
    std::string token = generate_token(s.rng_);
    checked->token_hash = hash_token(token);
    s.store_.register_agent(std::move(*checked), now,
                            [&s, token = std::move(token),
                             done = std::move(done)](store::result<const store::agent*> r) mutable {
                                if (!r) {
                                    return done(std::move(r).err());
                                }
                                s.refresh_deadline();
                                done(registration{*r, std::move(token)});
                            });
}

void engine::authenticate(std::string_view agent_id, std::string_view token,
                          callback<const store::agent*> done) {
    impl_->store_.get_agent(agent_id, [token = std::string(token), done = std::move(done)](
                                          store::result<const store::agent*> r) mutable {
        if (!r && r.err().code == store::errc::unavailable) {
            return done(std::move(r).err());
        }
        // Same answer for an unknown id and a wrong token: ids cannot be probed.
        if (!r || !token_matches(token, (*r)->token_hash)) {
            return done(store::error{store::errc::unauthorized, "unknown agent or bad token"});
        }
        done(*r);
    });
}

void engine::identify(std::string_view token, callback<const store::agent*> done) {
    impl_->store_.find_agent_by_token(
        hash_token(token), [done = std::move(done)](store::result<const store::agent*> r) mutable {
            if (!r && r.err().code != store::errc::unavailable) {
                return done(store::error{store::errc::unauthorized, "unknown agent token"});
            }
            done(std::move(r));
        });
}

void engine::heartbeat(std::string_view agent_id, std::optional<store::agent_status> status,
                       time_point now, callback<std::vector<std::string>> done) {
    impl& s = *impl_;
    s.store_.heartbeat(
        agent_id, status, now,
        [&s, now, done = std::move(done)](store::result<store::heartbeat_outcome> r) mutable {
            if (!r) {
                return done(std::move(r).err());
            }
            if (s.observer_ != nullptr) {
                s.observer_->on_heartbeat(*r->record, now);
            }
            const agent_sink* sink = nullptr;
            const std::string id = r->record->id;
            bool known = false;
            bool status_changed = false;
            bool was_available = false;
            if (agent_state* a = s.find_agent(id)) {
                known = true;
                sink = a->sink;
                status_changed = a->status != r->record->status;
                was_available = impl::available(*a);
                s.sync(*a, *r->record);
                s.clamp_credit(*a);
            }
            // Cancels of tasks taken from it on another worker, before any new task: their
            // slots come back as credit, as a local cancel's do (API.md: "its slot is free").
            const std::size_t freed = sink != nullptr ? s.push_notices(id, sink, r->cancel) : 0;
            agent_state* a = known ? s.find_agent(id) : nullptr;  // push_cancel may detach
            if (a != nullptr) {
                if (freed > 0 && a->sink != nullptr && a->sink == sink) {
                    a->credit = static_cast<std::uint32_t>(
                        std::min<std::uint64_t>(std::uint64_t{a->credit} + freed, a->room()));
                }
                if (status_changed || (!was_available && impl::available(*a))) {
                    // Back online or draining: (de)activates. Or a slot came free elsewhere (a
                    // task of it ended on another worker): it looks for work once, so that it
                    // is known to wait (hungry) if it finds none.
                    s.serve(*a, now);
                } else if (!a->claiming && !a->doomed) {
                    // Nothing new to claim for: work reaches it through offers and the poll.
                    // (A claim per heartbeat was a database round trip per idle agent.)
                    s.update_activity(*a);
                }
            }
            s.refresh_deadline();
            done(std::move(r->cancel));
        });
}

void engine::deregister(std::string_view agent_id, time_point now, callback<void> done) {
    impl& s = *impl_;
    s.store_.deregister_agent(agent_id, now,
                              [&s, now, id = std::string(agent_id), done = std::move(done)](
                                  store::result<std::vector<store::released_task>> r) mutable {
                                  if (!r) {
                                      return done(std::move(r).err());
                                  }
                                  agent_sink* sink = nullptr;
                                  std::vector<task_list_callback> ended;
                                  if (agent_state* a = s.find_agent(id)) {
                                      sink = a->sink;
                                      if (sink != nullptr) {
                                          --s.attached_;
                                          a->sink = nullptr;
                                      }
                                      s.end_waiters(*a, ended);
                                      a->status = store::agent_status::offline;
                                      s.destroy(*a);
                                  }
                                  s.absorb_released(now, *r);
                                  s.refresh_deadline();
                                  if (sink != nullptr) {
                                      sink->deregistered();
                                  }
                                  for (task_list_callback& cb : ended) {
                                      cb(std::span<const store::task* const>());
                                  }
                                  done(store::result<void>());
                              });
}

void engine::attach(std::string_view agent_id, agent_sink& sink, time_point now,
                    callback<const store::agent*> done) {
    impl& s = *impl_;
    std::string id(agent_id);
    s.attaching_[id] = &sink;
    s.store_.heartbeat(
        agent_id, std::nullopt, now,
        [&s, now, sink = &sink, id = std::move(id),
         done = std::move(done)](store::result<store::heartbeat_outcome> r) mutable {
            auto pending = s.attaching_.find(id);
            if (pending == s.attaching_.end() || pending->second != sink) {
                return done(store::error{store::errc::unavailable,
                                         "the connection closed before it was attached"});
            }
            s.attaching_.erase(pending);
            if (!r) {
                return done(std::move(r).err());
            }
            agent_state& a = s.ensure_agent(*r->record);
            agent_sink* const stale = a.sink;  // the agent's older connection, if still open
            if (a.sink == nullptr) {
                ++s.attached_;
                s.store_.set_attached(id, true);
            }
            a.sink = sink;
            a.attached_at = now;
            a.pushed_cancels.clear();  // pushed to an earlier connection
            a.credit = 0;              // API.md: 0 credit after `registered`
            if (s.observer_ != nullptr) {
                s.observer_->on_heartbeat(*r->record, now);
                s.observer_->on_attached(id, now);
            }
            s.serve(a, now);  // its long polls, if any
            s.refresh_deadline();
            done(r->record);
            // Cancels it missed while disconnected, after `registered`.
            s.push_notices(id, sink, r->cancel);
            if (r->record->running > 0) {
                s.repush_unstarted(id, sink, now, r->record->running);
            }
            if (stale != nullptr) {
                stale->replaced();
            }
        });
}

void engine::impl::repush_unstarted(const std::string& agent_id, agent_sink* sink,
                                    time_point attached_at, std::uint32_t held) {
    store::task_filter filter;
    filter.agent_id = agent_id;
    filter.status = store::task_status::assigned;
    filter.limit = std::clamp<std::size_t>(held, 1, 1000);
    store_.list_tasks(std::move(filter), [this, agent_id, sink,
                                          attached_at](store::result<store::task_page> r) {
        if (!r) {
            return;  // the lease still ends if nobody works on it; only later
        }
        for (const store::task& t : r->items) {
            const agent_state* a = find_agent(agent_id);
            if (a == nullptr || a->sink != sink) {
                return;  // detached meanwhile (push_task may detach a slow reader)
            }
            // Assigned since the attach: pushed on this connection already.
            if (t.status == store::task_status::assigned && t.agent_id == agent_id &&
                t.updated_at < attached_at) {
                ++counters_.repushed;
                sink->push_task(t);
            }
        }
    });
}

void engine::detach(std::string_view agent_id, const agent_sink& sink) {
    impl& s = *impl_;
    if (auto it = s.attaching_.find(std::string(agent_id));
        it != s.attaching_.end() && it->second == &sink) {
        s.attaching_.erase(it);
    }
    agent_state* a = s.find_agent(agent_id);
    if (a == nullptr || a->sink != &sink) {
        return;
    }
    a->sink = nullptr;
    a->credit = 0;
    --s.attached_;
    s.store_.set_attached(agent_id, false);
    s.update_activity(*a);
    s.maybe_forget(*a);
}

bool engine::impl::liveness_due(std::string_view agent_id, time_point now) {
    auto [it, fresh] = heard_at_.try_emplace(std::string(agent_id), now);
    if (!fresh && now - it->second < k_liveness_interval) {
        return false;
    }
    it->second = now;
    if (heard_at_.size() > heard_prune_at_) {
        std::erase_if(heard_at_,
                      [now](const auto& e) { return now - e.second >= k_liveness_interval; });
        heard_prune_at_ = std::max<std::size_t>(1024, 2 * heard_at_.size());
    }
    return true;
}

void engine::impl::apply_heard(const store::agent& record, time_point now) {
    if (observer_ != nullptr) {
        observer_->on_heartbeat(record, now);  // its presence, as a heartbeat's
    }
    agent_state* a = find_agent(record.id);
    if (a == nullptr) {
        return;
    }
    const bool status_changed = a->status != record.status;
    sync(*a, record);
    clamp_credit(*a);
    if (status_changed) {
        serve(*a, now);  // back online: its polls may take work again
        refresh_deadline();
    }
}

void engine::impl::hear(std::string_view agent_id, time_point now) {
    if (!liveness_due(agent_id, now)) {
        return;
    }
    store_.renew_liveness(agent_id, now, [this, now](store::result<const store::agent*> r) {
        if (r) {
            apply_heard(**r, now);
        }
    });
}

void engine::heard(std::string_view agent_id, time_point now) {
    impl_->hear(agent_id, now);
}

void engine::replaced_elsewhere(std::string_view agent_id, time_point attached_at) {
    impl& s = *impl_;
    agent_state* a = s.find_agent(agent_id);
    // One that attached here since is the newer connection (messages take a while to come).
    if (a == nullptr || a->sink == nullptr || a->attached_at >= attached_at) {
        return;
    }
    agent_sink* const stale = a->sink;
    detach(agent_id, *stale);  // may forget `a`
    stale->replaced();
}

void engine::detach_too_slow(std::string_view agent_id, const agent_sink& sink, time_point now) {
    impl& s = *impl_;
    agent_state* a = s.find_agent(agent_id);
    if (a == nullptr || a->sink != &sink) {
        return detach(agent_id, sink);
    }
    detach(agent_id, sink);
    s.store_.release_agent_tasks(agent_id, now,
                                 [&s, now](store::result<std::vector<store::released_task>> r) {
                                     if (r) {
                                         s.absorb_released(now, *r);
                                         s.refresh_deadline();
                                     }
                                 });
}

bool engine::ready(std::string_view agent_id, std::uint32_t slots, time_point now) {
    impl& s = *impl_;
    agent_state* a = s.find_agent(agent_id);
    if (a == nullptr || a->sink == nullptr) {
        return false;
    }
    a->credit = static_cast<std::uint32_t>(
        std::min<std::uint64_t>(std::uint64_t{a->credit} + slots, a->room()));
    s.refill(*a, now);
    s.refresh_deadline();
    return true;
}

}  // namespace pm_agent::core
