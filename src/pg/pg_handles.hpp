#pragma once
/// RAII owners for libpq's handles, so no early return leaks a connection or a result.

#include <libpq-fe.h>

#include <memory>

namespace pm_agent::pg {

struct conn_deleter {
    void operator()(PGconn* conn) const noexcept { PQfinish(conn); }
};
struct result_deleter {
    void operator()(PGresult* result) const noexcept { PQclear(result); }
};

/// A libpq connection closed (PQfinish) when dropped.
using conn_handle = std::unique_ptr<PGconn, conn_deleter>;
/// A libpq result freed (PQclear) when dropped.
using result_handle = std::unique_ptr<PGresult, result_deleter>;

}  // namespace pm_agent::pg
