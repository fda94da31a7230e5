// Agent records: registration, liveness, deregistration and listing.
#include "memory_store.hpp"

namespace pm_agent::store {

std::string_view token_key(const agent& a) {
    return std::string_view(reinterpret_cast<const char*>(a.token_hash.data()),
                            a.token_hash.size());
}

void memory_store::register_agent(new_agent spec, time_point now, callback<const agent*> done) {
    if (agents_by_id_.contains(spec.id)) {
        return done(error{errc::conflict, "agent id already registered"});
    }
    const std::uint64_t seq = next_agent_seq_++;
    agent_rec& rec = agents_.emplace_hint(agents_.end(), seq, agent_rec{})->second;
    agent& a = rec.a;
    a.id = std::move(spec.id);
    a.name = std::move(spec.name);
    a.queues = std::move(spec.queues);
    a.capabilities = std::move(spec.capabilities);
    a.labels = std::move(spec.labels);
    a.max_concurrency = spec.max_concurrency;
    a.status = agent_status::online;
    a.last_heartbeat = now;
    a.registered_at = now;
    a.worker = std::move(spec.worker);
    a.token_hash = spec.token_hash;
    a.seq = seq;
    rec.queues.reserve(a.queues.size());
    for (const std::string& name : a.queues) {
        queue_state& q = pending_.queue(name);
        ++q.agent_refs;
        rec.queues.push_back(&q);
    }
    rec.heartbeat_deadline = now + agents_cfg_.heartbeat_timeout;
    heartbeat_deadlines_.emplace(rec.heartbeat_deadline, seq);
    ++agent_counts_[static_cast<std::size_t>(agent_status::online)];
    agents_by_id_.emplace(std::string_view(a.id), &rec);
    agents_by_token_.emplace(token_key(a), &rec);
    done(&a);
}

void memory_store::get_agent(std::string_view agent_id, callback<const agent*> done) {
    agent_rec* rec = find_agent(agent_id);
    if (rec == nullptr) {
        return done(error{errc::not_found, "no such agent"});
    }
    done(&rec->a);
}

void memory_store::find_agent_by_token(const std::array<unsigned char, 32>& token_hash,
                                       callback<const agent*> done) {
    auto it = agents_by_token_.find(
        std::string_view(reinterpret_cast<const char*>(token_hash.data()), token_hash.size()));
    if (it == agents_by_token_.end()) {
        return done(error{errc::not_found, "no such agent"});
    }
    done(&it->second->a);
}

void memory_store::heartbeat(std::string_view agent_id, std::optional<agent_status> status,
                             time_point now, callback<heartbeat_outcome> done) {
    agent_rec* rec = find_agent(agent_id);
    if (rec == nullptr) {
        return done(error{errc::not_found, "no such agent"});
    }
    if (status == agent_status::offline) {
        return done(error{errc::bad_request, "status: must be online or draining"});
    }
    heartbeat_outcome out;
    out.came_online = hear(*rec, status, now);
    out.record = &rec->a;
    out.cancel = std::move(rec->notices);
    rec->notices.clear();
    done(std::move(out));
}

void memory_store::renew_liveness(std::string_view agent_id, time_point now,
                                  callback<const agent*> done) {
    agent_rec* rec = find_agent(agent_id);
    if (rec == nullptr) {
        return done(error{errc::not_found, "no such agent"});
    }
    hear(*rec, std::nullopt, now);
    done(&rec->a);
}

bool memory_store::hear(agent_rec& rec, std::optional<agent_status> status, time_point now) {
    const bool was_offline = rec.a.status == agent_status::offline;
    const time_point deadline = now + agents_cfg_.heartbeat_timeout;
    if (was_offline) {
        heartbeat_deadlines_.emplace(deadline, rec.a.seq);
    } else {
        auto node = heartbeat_deadlines_.extract({rec.heartbeat_deadline, rec.a.seq});
        node.value().first = deadline;
        heartbeat_deadlines_.insert(std::move(node));
    }
    rec.heartbeat_deadline = deadline;
    rec.a.last_heartbeat = now;
    if (status) {
        set_agent_status(rec, *status);
    } else if (was_offline) {
        set_agent_status(rec, agent_status::online);
    }
    renew_leases(rec, now);
    return was_offline;
}

std::vector<released_task> memory_store::release_all(agent_rec& rec, release_reason why,
                                                     time_point now) {
    std::vector<released_task> released;
    released.reserve(rec.held.size());
    while (!rec.held.empty()) {
        released.push_back(release(*rec.held.back(), why, now));
    }
    return released;
}

void memory_store::deregister_agent(std::string_view agent_id, time_point now,
                                    callback<std::vector<released_task>> done) {
    agent_rec* rec = find_agent(agent_id);
    if (rec == nullptr) {
        return done(error{errc::not_found, "no such agent"});
    }
    auto released = release_all(*rec, release_reason::deregistered, now);
    erase_agent(*rec);
    done(std::move(released));
}

void memory_store::release_agent_tasks(std::string_view agent_id, time_point now,
                                       callback<std::vector<released_task>> done) {
    agent_rec* rec = find_agent(agent_id);
    if (rec == nullptr) {
        return done(error{errc::not_found, "no such agent"});
    }
    done(release_all(*rec, release_reason::disconnected, now));
}

}  // namespace pm_agent::store
