#pragma once
// Recycles the nodes of a std::set/std::map so that the hot path (a task entering and leaving
// the pending index, a lease timeout armed and disarmed per assignment) allocates nothing in
// steady state: erase() extracts the node into a free list, insert() reuses one.

#include <cstddef>
#include <utility>
#include <vector>

namespace pm_agent::store {

template <class Container>
class node_pool {
  public:
    using iterator = typename Container::iterator;
    using node_type = typename Container::node_type;

    /// Keeps at most `max_free` spare nodes; beyond that erased nodes are freed.
    explicit node_pool(std::size_t max_free = 4096) : max_free_(max_free) {}

    /// Inserts a key that must not be present yet (set: the value; map: key and mapped value).
    template <class Key, class... Mapped>
    iterator insert(Container& c, Key&& key, Mapped&&... mapped) {
        if (free_.empty()) {
            if constexpr (sizeof...(Mapped) == 0) {
                return c.insert(std::forward<Key>(key)).first;
            } else {
                return c.try_emplace(std::forward<Key>(key), std::forward<Mapped>(mapped)...).first;
            }
        }
        node_type node = std::move(free_.back());
        free_.pop_back();
        if constexpr (sizeof...(Mapped) == 0) {
            node.value() = std::forward<Key>(key);
        } else {
            node.key() = std::forward<Key>(key);
            node.mapped() = typename Container::mapped_type(std::forward<Mapped>(mapped)...);
        }
        return c.insert(std::move(node)).position;
    }

    /// Removes the element at `it`, keeping its node for reuse.
    void erase(Container& c, iterator it) {
        if (free_.size() < max_free_) {
            free_.push_back(c.extract(it));
        } else {
            c.erase(it);
        }
    }

  private:
    std::vector<node_type> free_;
    std::size_t max_free_;
};

}  // namespace pm_agent::store
