// The memory store's pending index, below the contract: bucket bookkeeping.
#include "store/pending_index.hpp"

#include <gtest/gtest.h>

#include "store/memory_store.hpp"

namespace pm_agent::store {

TEST(store_pending_index, EmptyBucketsAreCollectedOnceTheyPileUp) {
    pending_index index;
    queue_state& q = index.queue("q");
    std::vector<std::unique_ptr<task_rec>> recs;
    for (int i = 0; i < 40; ++i) {
        auto rec = std::make_unique<task_rec>();
        rec->q = &q;
        rec->t.seq = static_cast<std::uint64_t>(i + 1);
        rec->t.required_capabilities = {"cap" + std::to_string(i)};
        index.insert(*rec);
        recs.push_back(std::move(rec));
    }
    EXPECT_EQ(q.buckets.size(), 40u);
    EXPECT_EQ(q.active.size(), 40u);
    std::vector<std::string> all;
    for (int i = 0; i < 40; ++i) {
        all.push_back("cap" + std::to_string(i));
    }
    normalize_names(all);
    queue_state* queues[] = {&q};
    for (int i = 0; i < 40; ++i) {
        task_rec* best = index.best(queues, all);
        ASSERT_NE(best, nullptr);
        EXPECT_EQ(best->t.seq, static_cast<std::uint64_t>(i + 1));  // FIFO across buckets
        index.erase(*best);
    }
    EXPECT_EQ(index.best(queues, all), nullptr);
    EXPECT_TRUE(q.active.empty());
    EXPECT_LE(q.buckets.size(), 33u);  // no more than 32 empty buckets are kept
    // A kept bucket and a collected one both work again.
    index.insert(*recs[39]);
    index.insert(*recs[0]);
    EXPECT_EQ(index.best(queues, all), recs[0].get());
}

TEST(store_pending_index, UnusedQueuesAreReleased) {
    pending_index index;
    queue_state& q = index.queue("gone");
    q.agent_refs = 1;
    index.release_queue_if_unused(q);
    EXPECT_NE(index.find_queue("gone"), nullptr);
    q.agent_refs = 0;
    index.release_queue_if_unused(q);
    EXPECT_EQ(index.find_queue("gone"), nullptr);
}

}  // namespace pm_agent::store
