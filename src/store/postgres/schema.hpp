#pragma once
// Private to src/store/postgres: the versioned schema migrations.

#include <span>
#include <string_view>

namespace pm_agent::store::postgres {

struct migration {
    int version;
    std::string_view name;
    std::string_view sql;
};

/// Every migration, in version order.
std::span<const migration> migrations();

}  // namespace pm_agent::store::postgres
