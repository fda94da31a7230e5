// Dispatch: the per-agent mirror, claiming for an available consumer and handing the claimed
// tasks to its WebSocket credit first, then to its long polls in arrival order.
#include <algorithm>

#include <boost/container/small_vector.hpp>

#include "engine_state.hpp"

namespace pm_agent::core {

namespace {

// Whether every counted task (by seq; 0: not known) is among those the claim took.
bool took_every(std::span<const std::uint64_t> counted, std::span<const store::task* const> taken) {
    boost::container::small_vector<std::uint64_t, 64> seqs;
    for (const store::task* t : taken) {
        seqs.push_back(t->seq);
    }
    std::sort(seqs.begin(), seqs.end());
    return std::all_of(counted.begin(), counted.end(), [&](std::uint64_t seq) {
        return seq != 0 && std::binary_search(seqs.begin(), seqs.end(), seq);
    });
}

}  // namespace

agent_state* engine::impl::find_agent(std::string_view id) {
    auto it = agents_.find(id);
    return it == agents_.end() ? nullptr : it->second.get();
}

agent_state& engine::impl::ensure_agent(const store::agent& rec) {
    if (agent_state* a = find_agent(rec.id)) {
        sync(*a, rec);
        clamp_credit(*a);
        return *a;
    }
    auto owned = std::make_unique<agent_state>();
    agent_state& a = *owned;
    a.id = rec.id;
    a.queues = rec.queues;
    a.capabilities = rec.capabilities;
    sync(a, rec);
    clamp_credit(a);
    dispatcher_.add(a.entry, a.queues, a.capabilities);
    agents_.emplace(std::string_view(a.id), std::move(owned));
    return a;
}

void engine::impl::sync(agent_state& a, const store::agent& rec) {
    a.max_concurrency = rec.max_concurrency;
    a.running = rec.running;
    a.status = rec.status;
}

void engine::impl::clamp_credit(agent_state& a) {
    a.credit = std::min(a.credit, a.room());
}

bool engine::impl::available(const agent_state& a) {
    return a.status == store::agent_status::online && !a.claiming && !a.doomed && a.room() > 0 &&
           (a.credit > 0 || a.waiting_demand > 0);
}

void engine::impl::update_activity(agent_state& a) {
    const bool available = impl::available(a);
    dispatcher_.set_active(a.entry, available);
    set_hungry(a, available && a.starved);
}

void engine::impl::set_hungry(agent_state& a, bool hungry) {
    if (a.hungry == hungry) {
        return;
    }
    a.hungry = hungry;
    for (const std::string& queue : a.queues) {
        if (hungry) {
            auto it = hungry_queues_.try_emplace(queue, 0).first;
            if (++it->second == 1 && observer_ != nullptr) {
                observer_->on_hungry(queue);
            }
        } else if (auto it = hungry_queues_.find(queue);
                   it != hungry_queues_.end() && --it->second == 0) {
            hungry_queues_.erase(it);
        }
    }
}

void engine::impl::maybe_forget(agent_state& a) {
    if (a.sink == nullptr && a.waiters.empty() && a.status == store::agent_status::offline) {
        destroy(a);
    }
}

void engine::impl::destroy(agent_state& a) {
    if (a.claiming) {
        // The claim's callback still refers to this state; it finishes the job.
        a.doomed = true;
        update_activity(a);
        return;
    }
    set_hungry(a, false);
    dispatcher_.remove(a.entry);
    agents_.erase(agents_.find(a.id));  // by iterator: the key is a view into `a`
}

void engine::impl::serve(agent_state& a, time_point now, std::optional<std::uint64_t> for_task) {
    if (a.claiming || a.doomed) {
        return;
    }
    const std::uint64_t demand = std::uint64_t{a.credit} + a.waiting_demand;
    const std::uint64_t n = a.status == store::agent_status::online
                                ? std::min<std::uint64_t>({a.room(), demand, store_.claim_limit()})
                                : 0;
    if (n == 0) {
        update_activity(a);
        return;
    }
    // Out of the index while claiming: a consumer is never picked twice for one claim.
    a.claiming = true;
    a.claim_epoch = missed_offers_;
    a.claim_spare = for_task ? n - 1 : n;
    a.claim_counted.clear();
    if (for_task) {
        a.claim_counted.push_back(*for_task);
    }
    // It will see every write answered by now: it may cover tasks written at this epoch.
    if (const std::uint64_t sees = store_.visible_epoch(); sees != covering_epoch_) {
        covering_.clear();
        covering_epoch_ = sees;
    }
    if (a.claim_spare > 0 && covering_.size() < k_max_covering) {
        covering_.push_back(&a);
    }
    update_activity(a);
    agent_state* const outer = claim_call_;
    claim_call_ = &a;
    store_.claim(a.id, n, now, [this, ap = &a, now, n](store::result<store::claim_outcome> r) {
        on_claimed(ap, now, n, std::move(r));
    });
    claim_call_ = outer;  // `a` itself may be gone by now
}

void engine::impl::refill(agent_state& a, time_point now) {
    if (a.starved && missed_offers_ == a.claim_epoch && !a.claiming) {
        // Its last claim took all it could see and every task written since went to another
        // consumer: nothing is pending for it. It waits in the index for the next offer (a
        // claim per completion came back empty whenever the consumers kept up).
        update_activity(a);
        return;
    }
    serve(a, now);
}

void engine::impl::on_claimed(agent_state* ap, time_point now, std::uint64_t asked,
                              store::result<store::claim_outcome> r) {
    agent_state& a = *ap;
    a.claiming = false;
    uncover(a);
    // Fewer tasks than asked for while its agent stayed online with room: the claim took
    // every task it could see.
    const bool saw_all = r && r->tasks.size() < asked &&
                         r->claimer->status == store::agent_status::online &&
                         r->claimer->running < r->claimer->max_concurrency;
    // Tasks counted on this claim that it may have left behind (it failed, its agent went, or
    // it came back full without them): every free consumer of their queues looks once more.
    // Answered inline, the store's view and the mirror agree: the task it was started for went
    // where dispatch sent it, and nothing else was counted on it.
    const bool answered_inline = claim_call_ == &a;
    std::vector<std::string> reoffer;
    if (!answered_inline && !a.claim_counted.empty() &&
        (!r || a.doomed || (!saw_all && !took_every(a.claim_counted, r->tasks)))) {
        reoffer = a.queues;
    }
    a.claim_counted.clear();
    if (a.doomed) {
        destroy(a);
        offer_left_behind(reoffer, now);
        return;
    }
    using answer = std::pair<task_list_callback, std::span<const store::task* const>>;
    boost::container::small_vector<answer, 2> answers;
    std::vector<task_list_callback> expired;
    if (!r) {
        // The store failed (unavailable): end the long polls now rather than at their deadline.
        // It saw nothing, so the next slot or credit back claims again.
        end_waiters(a, expired);
        a.starved = false;
        update_activity(a);
        offer_left_behind(reoffer, now);
        for (task_list_callback& cb : expired) {
            cb(r.err());
        }
        return;
    }
    // running now includes the claimed tasks, which the credit below pays for.
    sync(a, *r->claimer);
    const std::span<const store::task* const> tasks = r->tasks;
    if (!answered_inline && !tasks.empty()) {
        if (const std::uint64_t epoch = store_.visible_epoch(); epoch != claimed_epoch_) {
            claimed_seqs_.clear();
            claimed_epoch_ = epoch;
        }
        for (const store::task* t : tasks) {
            claimed_seqs_.insert(t->seq);
        }
    }
    agent_sink* const sink = a.sink;
    std::size_t i = 0;
    for (; i < tasks.size() && a.sink != nullptr && a.credit > 0; ++i) {
        --a.credit;
        a.sink->push_task(*tasks[i]);
    }
    // The transport may detach from inside push_task (a connection too slow to read); the
    // tasks not pushed then are no longer this claim's to hand out (detach_too_slow released
    // them, or they wait for the agent's silence to be noticed).
    const bool sink_lost = sink != nullptr && a.sink != sink;
    while (!sink_lost && i < tasks.size() && !a.waiters.empty()) {
        const std::size_t k =
            std::min<std::size_t>(waiters_.at(a.waiters.front()).max_tasks, tasks.size() - i);
        answers.emplace_back(remove_waiter(a.waiters.front()), tasks.subspan(i, k));
        i += k;
    }
    // With an asynchronous store the sink or the long polls may have gone while the claim was
    // in flight; tasks nobody received (i < size) come back when their lease expires.
    counters_.dispatched += i;
    if (observer_ != nullptr) {
        for (std::size_t j = 0; j < i; ++j) {
            observer_->on_dispatched(tasks[j]->ready_at);
        }
    }
    clamp_credit(a);
    expired = take_expired_waiters(a, now);
    const bool again = !sink_lost && missed_offers_ != a.claim_epoch && tasks.empty();
    // Nothing more was pending for it, so what credit is left waits.
    a.starved = saw_all && !again;
    update_activity(a);
    if (again) {
        serve(a, now);
    }
    offer_left_behind(reoffer, now);
    // User code runs last, when the engine's state is consistent again.
    for (answer& ans : answers) {
        ans.first(ans.second);
    }
    for (task_list_callback& cb : expired) {
        cb(std::span<const store::task* const>());
    }
}

agent_state* engine::impl::find_cover(std::string_view queue, std::span<const std::string> caps) {
    if (covering_epoch_ != store_.visible_epoch()) {
        covering_.clear();  // started before the write: their snapshots may miss it
        return nullptr;
    }
    for (auto it = covering_.rbegin(); it != covering_.rend(); ++it) {
        agent_state& c = **it;
        if (c.claim_spare > 0 && !c.doomed && c.status == store::agent_status::online &&
            std::find(c.queues.begin(), c.queues.end(), queue) != c.queues.end() &&
            store::is_subset(caps, c.capabilities)) {
            return &c;
        }
    }
    return nullptr;
}

void engine::impl::uncover(agent_state& a) {
    auto it = std::find(covering_.begin(), covering_.end(), &a);
    if (it != covering_.end()) {
        covering_.erase(it);
    }
}

void engine::impl::dispatch_pending(std::string_view queue, std::span<const std::string> caps,
                                    time_point now, std::uint64_t seq) {
    dispatcher::entry* e = dispatcher_.pick(queue, caps);
    auto* free = e == nullptr ? nullptr : static_cast<agent_state*>(e->owner());
    // A claim already under way that will see the task takes it, unless a free consumer fits
    // it better (fewer capabilities: agents with rare ones stay free for tasks needing them).
    if (agent_state* c = find_cover(queue, caps);
        c != nullptr && (free == nullptr || c->capabilities.size() <= free->capabilities.size())) {
        c->claim_counted.push_back(seq);
        if (--c->claim_spare == 0) {
            uncover(*c);
        }
        return;
    }
    if (free != nullptr) {
        serve(*free, now, seq);
    } else {
        ++missed_offers_;
        if (observer_ != nullptr) {
            observer_->on_unclaimed(queue);
        }
    }
}

void engine::impl::offer_submitted(const store::task& t, time_point now) {
    if (t.status != store::task_status::pending) {
        return;
    }
    if (claimed_epoch_ == store_.visible_epoch() && claimed_seqs_.contains(t.seq)) {
        return;
    }
    dispatch_pending(t.queue, t.required_capabilities, now, t.seq);
}

void engine::impl::offer_left_behind(const std::vector<std::string>& queues, time_point now) {
    for (const std::string& queue : queues) {
        if (offer_queue(queue, now) == 0 && observer_ != nullptr) {
            observer_->on_unclaimed(queue);  // other workers' consumers may take them
        }
    }
}

std::size_t engine::impl::offer_queue(std::string_view queue, time_point now) {
    ++missed_offers_;  // consumers claiming right now did not see these tasks
    // Stop when the rotation comes back to a consumer served in this round: with a store that
    // answers inline it is available again at once.
    boost::container::small_vector<dispatcher::entry*, 8> served;
    while (dispatcher::entry* e = dispatcher_.pick(queue, {})) {
        if (std::find(served.begin(), served.end(), e) != served.end()) {
            break;
        }
        served.push_back(e);
        serve(*static_cast<agent_state*>(e->owner()), now);
    }
    return served.size();
}

void engine::impl::release_slot(agent_state& a, std::string_view cancelled_task) {
    if (a.running > 0) {
        --a.running;
    }
    if (a.sink != nullptr) {
        // The slot comes back as credit (running + credit stays what the agent granted).
        a.credit = std::min(a.credit + 1, a.room());
        if (!cancelled_task.empty()) {
            constexpr std::size_t k_max_pushed_cancels = 256;
            if (a.pushed_cancels.size() >= k_max_pushed_cancels) {
                a.pushed_cancels.erase(a.pushed_cancels.begin());
            }
            a.pushed_cancels.emplace_back(cancelled_task);
            a.sink->push_cancel(cancelled_task);
        }
    }
}

std::size_t engine::impl::push_notices(std::string_view agent_id, const agent_sink* sink,
                                       const std::vector<std::string>& notices) {
    std::size_t pushed_here = 0;
    for (const std::string& task_id : notices) {
        // Looked up each time: the transport may detach from inside push_cancel.
        agent_state* a = find_agent(agent_id);
        if (a == nullptr || a->sink == nullptr || a->sink != sink) {
            break;
        }
        auto pushed = std::find(a->pushed_cancels.begin(), a->pushed_cancels.end(), task_id);
        if (pushed != a->pushed_cancels.end()) {
            a->pushed_cancels.erase(pushed);
            continue;
        }
        ++pushed_here;
        a->sink->push_cancel(task_id);
    }
    return pushed_here;
}

void engine::impl::notice_elsewhere(std::string_view agent_id) {
    const agent_state* a = find_agent(agent_id);
    if (observer_ != nullptr && !agent_id.empty() && (a == nullptr || a->sink == nullptr)) {
        observer_->on_notice_elsewhere(agent_id);
    }
}

}  // namespace pm_agent::core
