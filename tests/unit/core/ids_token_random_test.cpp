#include <gtest/gtest.h>

#include <set>

#include "pm_agent/core/ids.hpp"
#include "pm_agent/core/random.hpp"
#include "pm_agent/core/token.hpp"

namespace pm_agent::core {

TEST(core_id_generator, IdsAreShortDistinctAndPrefixed) {
    seeded_random rng(1);
    id_generator ids(rng);
    std::set<std::string> seen;
    for (int i = 0; i < 10000; ++i) {
        const std::string t = ids.next_task_id();
        ASSERT_EQ(t.size(), 15u);  // fits the small-string buffer
        ASSERT_EQ(t.substr(0, 2), "t_");
        ASSERT_TRUE(seen.insert(t).second);
    }
    EXPECT_EQ(ids.next_agent_id().substr(0, 2), "a_");
    seeded_random other_seed(2);
    id_generator other(other_seed);
    EXPECT_FALSE(seen.contains(other.next_task_id()));
}

TEST(core_token, TokensAreRandomAndMatchOnlyTheirHash) {
    crypto_random rng;
    const std::string a = generate_token(rng);
    const std::string b = generate_token(rng);
    EXPECT_EQ(a.size(), 43u);
    EXPECT_NE(a, b);
    EXPECT_EQ(
        a.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
        std::string::npos);
    const token_hash h = hash_token(a);
    EXPECT_TRUE(token_matches(a, h));
    EXPECT_FALSE(token_matches(b, h));
    // SHA-256("abc"), FIPS 180-2 test vector.
    const token_hash abc = hash_token("abc");
    EXPECT_EQ(abc[0], 0xba);
    EXPECT_EQ(abc[31], 0xad);
}

TEST(core_random_source, UnitIsInRangeAndSeededIsDeterministic) {
    seeded_random a(99);
    seeded_random b(99);
    for (int i = 0; i < 1000; ++i) {
        const double u = a.next_unit();
        ASSERT_GE(u, 0.0);
        ASSERT_LT(u, 1.0);
        ASSERT_EQ(u, b.next_unit());
    }
}

}  // namespace pm_agent::core
