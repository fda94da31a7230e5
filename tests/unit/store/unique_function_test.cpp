#include "pm_agent/store/unique_function.hpp"

#include <gtest/gtest.h>

#include <array>
#include <memory>

namespace pm_agent::store {

TEST(store_unique_function, HoldsMoveOnlyCallablesInlineAndOnTheHeap) {
    auto small = std::make_unique<int>(5);
    unique_function<int(int)> f = [p = std::move(small)](int x) { return *p + x; };
    EXPECT_EQ(f(1), 6);
    std::array<long, 16> big{};
    big[15] = 7;
    unique_function<int(int)> g = [big, p = std::make_unique<int>(1)](int x) {
        return static_cast<int>(big[15]) + *p + x;
    };
    EXPECT_EQ(g(2), 10);
    unique_function<int(int)> moved = std::move(g);
    EXPECT_FALSE(static_cast<bool>(g));  // NOLINT(bugprone-use-after-move): checking the state
    EXPECT_EQ(moved(0), 8);
    f = std::move(moved);
    EXPECT_EQ(f(0), 8);
}

TEST(store_unique_function, DestroysWhatItOwns) {
    auto counter = std::make_shared<int>(0);
    {
        unique_function<void()> f = [counter] {};
        EXPECT_EQ(counter.use_count(), 2);
        unique_function<void()> g = std::move(f);
        EXPECT_EQ(counter.use_count(), 2);
    }
    EXPECT_EQ(counter.use_count(), 1);
}

}  // namespace pm_agent::store
