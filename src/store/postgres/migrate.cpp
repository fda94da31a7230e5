// `pm-agent-server migrate`: applies the schema migrations with blocking libpq. Only ever run
// from the command line or before a worker's loop starts, never on a running loop.
#include <libpq-fe.h>

#include <memory>
#include <string>

#include "pm_agent/store/postgres_store.hpp"
#include "store/postgres/schema.hpp"

namespace pm_agent::store {

namespace {

/// Any fixed number: every worker migrating at once takes this advisory lock in turn.
constexpr const char* k_lock_sql = "SELECT pg_advisory_xact_lock(7348201)";

struct conn_closer {
    void operator()(PGconn* c) const { PQfinish(c); }
};
struct result_clearer {
    void operator()(PGresult* r) const { PQclear(r); }
};
using conn_ptr = std::unique_ptr<PGconn, conn_closer>;
using result_ptr = std::unique_ptr<PGresult, result_clearer>;

/// Runs one command; "" or the server's message.
std::string exec(PGconn* c, const char* sql) {
    result_ptr r(PQexec(c, sql));
    const auto status = PQresultStatus(r.get());
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
        return "";
    }
    return PQresultErrorMessage(r.get());
}

conn_ptr connect(const std::string& url, std::string& error) {
    conn_ptr c(PQconnectdb(url.c_str()));
    if (!c || PQstatus(c.get()) != CONNECTION_OK) {
        error = c ? PQerrorMessage(c.get()) : "out of memory";
        return nullptr;
    }
    // Quiet NOTICEs such as "table already exists, skipping".
    PQsetNoticeProcessor(
        c.get(), [](void*, const char*) {}, nullptr);
    return c;
}

}  // namespace

std::string migrate_database(const std::string& url, std::vector<int>* applied) {
    std::string error;
    conn_ptr c = connect(url, error);
    if (!c) {
        return "cannot connect to the database: " + error;
    }
    // Under the lock too: two workers creating the table at once would collide.
    if (auto e = exec(c.get(),
                      "BEGIN; SELECT pg_advisory_xact_lock(7348201);"
                      " CREATE TABLE IF NOT EXISTS pm_schema_migrations ("
                      " version integer PRIMARY KEY, name text NOT NULL,"
                      " applied_at timestamptz NOT NULL DEFAULT now()); COMMIT");
        !e.empty()) {
        exec(c.get(), "ROLLBACK");
        return "creating pm_schema_migrations: " + e;
    }
    for (const auto& m : postgres::migrations()) {
        if (auto e = exec(c.get(), "BEGIN"); !e.empty()) {
            return e;
        }
        exec(c.get(), k_lock_sql);
        const std::string version = std::to_string(m.version);
        const char* params[] = {version.c_str()};
        result_ptr seen(PQexecParams(c.get(),
                                     "SELECT 1 FROM pm_schema_migrations WHERE version = $1", 1,
                                     nullptr, params, nullptr, nullptr, 0));
        if (PQresultStatus(seen.get()) != PGRES_TUPLES_OK) {
            std::string msg = PQresultErrorMessage(seen.get());
            exec(c.get(), "ROLLBACK");
            return msg;
        }
        if (PQntuples(seen.get()) > 0) {
            exec(c.get(), "COMMIT");
            continue;
        }
        const std::string sql(m.sql);
        if (auto e = exec(c.get(), sql.c_str()); !e.empty()) {
            exec(c.get(), "ROLLBACK");
            return "migration " + version + " (" + std::string(m.name) + "): " + e;
        }
        const std::string name(m.name);
        const char* record[] = {version.c_str(), name.c_str()};
        result_ptr done(PQexecParams(c.get(),
                                     "INSERT INTO pm_schema_migrations (version, name) "
                                     "VALUES ($1, $2)",
                                     2, nullptr, record, nullptr, nullptr, 0));
        if (PQresultStatus(done.get()) != PGRES_COMMAND_OK) {
            std::string msg = PQresultErrorMessage(done.get());
            exec(c.get(), "ROLLBACK");
            return msg;
        }
        if (auto e = exec(c.get(), "COMMIT"); !e.empty()) {
            return e;
        }
        if (applied != nullptr) {
            applied->push_back(m.version);
        }
    }
    return "";
}

std::string reset_database(const std::string& url) {
    std::string error;
    conn_ptr c = connect(url, error);
    if (!c) {
        return error;
    }
    return exec(
        c.get(),
        "DROP TABLE IF EXISTS pm_tasks, pm_agents, pm_agent_notices, pm_queues, pm_workers, "
        "pm_schema_migrations CASCADE;"
        "DROP FUNCTION IF EXISTS pm_ts(bigint), pm_us(timestamptz), pm_raise(text, text)");
}

}  // namespace pm_agent::store
