// Runs the Store contract suite on the memory store.
#include "pm_agent/store/memory_store.hpp"
#include "store_contract.hpp"

namespace pm_agent::store::testing {

INSTANTIATE_TEST_SUITE_P(memory, store_contract,
                         ::testing::Values(store_factory{
                             "memory", &make_memory_store,
                             // Every memory store operation completes before it returns.
                             [](store&, const std::function<bool()>&) {}}),
                         factory_name);

}  // namespace pm_agent::store::testing
