#include "pm_agent/core/dispatcher.hpp"

#include <gtest/gtest.h>

namespace pm_agent::core {

namespace {

using names = std::vector<std::string>;

int owner_of(dispatcher::entry* e) {
    return e == nullptr ? -1 : *static_cast<int*>(e->owner());
}

}  // namespace

TEST(core_dispatcher, PicksOnlyActiveConsumersWithTheQueueAndCapabilities) {
    dispatcher d;
    int one = 1;
    int two = 2;
    dispatcher::entry plain(&one);
    dispatcher::entry gpu(&two);
    d.add(plain, names{"q"}, names{});
    d.add(gpu, names{"q", "r"}, names{"gpu", "ssd"});
    EXPECT_EQ(d.pick("q", names{}), nullptr);  // nobody active yet
    d.set_active(plain, true);
    d.set_active(gpu, true);
    EXPECT_EQ(owner_of(d.pick("q", names{"gpu"})), 2);
    EXPECT_EQ(owner_of(d.pick("r", names{})), 2);
    EXPECT_EQ(d.pick("r", names{"tpu"}), nullptr);
    EXPECT_EQ(d.pick("elsewhere", names{}), nullptr);
    d.set_active(gpu, false);
    EXPECT_EQ(d.pick("q", names{"gpu"}), nullptr);
    EXPECT_EQ(owner_of(d.pick("q", names{})), 1);
    d.remove(gpu);
    d.remove(plain);
    EXPECT_EQ(d.pick("q", names{}), nullptr);
}

TEST(core_dispatcher, ReactivatedConsumersQueueBehindTheOthers) {
    dispatcher d;
    int ids[3] = {0, 1, 2};
    dispatcher::entry a(&ids[0]);
    dispatcher::entry b(&ids[1]);
    dispatcher::entry c(&ids[2]);
    for (dispatcher::entry* e : {&a, &b, &c}) {
        d.add(*e, names{"q"}, names{});
        d.set_active(*e, true);
    }
    EXPECT_EQ(owner_of(d.pick("q", names{})), 0);
    d.set_active(a, false);
    d.set_active(a, true);
    EXPECT_EQ(owner_of(d.pick("q", names{})), 1);
    d.set_active(b, false);
    d.set_active(b, true);
    EXPECT_EQ(owner_of(d.pick("q", names{})), 2);
    d.remove(c);  // removing an active entry unlinks it
    EXPECT_EQ(owner_of(d.pick("q", names{})), 0);
    d.remove(a);
    d.remove(b);
}

TEST(core_dispatcher, PrefersTheBestFittingCapabilitySet) {
    dispatcher d;
    int ids[3] = {0, 1, 2};
    dispatcher::entry rich(&ids[0]);
    dispatcher::entry gpu(&ids[1]);
    dispatcher::entry plain(&ids[2]);
    d.add(rich, names{"q"}, names{"gpu", "ssd", "tpu"});
    d.add(gpu, names{"q"}, names{"gpu"});
    d.add(plain, names{"q"}, names{});
    for (dispatcher::entry* e : {&rich, &gpu, &plain}) {
        d.set_active(*e, true);
    }
    EXPECT_EQ(owner_of(d.pick("q", names{})), 2);
    EXPECT_EQ(owner_of(d.pick("q", names{"gpu"})), 1);
    EXPECT_EQ(owner_of(d.pick("q", names{"ssd"})), 0);
    d.set_active(plain, false);
    EXPECT_EQ(owner_of(d.pick("q", names{})), 1);
    for (dispatcher::entry* e : {&rich, &gpu, &plain}) {
        d.remove(*e);
    }
}

}  // namespace pm_agent::core
