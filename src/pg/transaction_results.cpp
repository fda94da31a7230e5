// Matching libpq's pipeline results to the statements of one transaction.

#include "pg/transaction_results.hpp"

#include <string_view>
#include <utility>

namespace pm_agent::pg {

namespace {

// SQLSTATEs of "prepared statement does not exist" and "prepared statement already exists".
constexpr std::string_view k_invalid_statement_name = "26000";
constexpr std::string_view k_duplicate_statement = "42P05";

std::string error_field(const PGresult* result, int field) {
    const char* value = PQresultErrorField(result, field);
    return value != nullptr ? std::string(value) : std::string();
}

}  // namespace

void transaction_results::reset(std::size_t statements) {
    items_.clear();
    position_ = 0;
    got_result_ = false;
    rows_.clear();
    rows_.resize(statements);
    error_.reset();
    prepared_.clear();
    session_diverged_ = false;
    protocol_error_ = false;
}

void transaction_results::expect_set_config() {
    items_.push_back({item_kind::set_config, 0, {}});
}

void transaction_results::expect_prepare(std::size_t statement, std::string name) {
    items_.push_back({item_kind::prepare, statement, std::move(name)});
}

void transaction_results::expect_query(std::size_t statement) {
    items_.push_back({item_kind::query, statement, {}});
}

void transaction_results::expect_sync() {
    items_.push_back({item_kind::sync, 0, {}});
}

void transaction_results::fail(std::size_t statement, const PGresult* result) {
    if (error_) {
        return;  // the first error is the cause; anything after it is a consequence
    }
    failure error;
    error.kind = failure_kind::statement;
    error.statement_index = statement;
    if (result != nullptr) {
        error.sqlstate = error_field(result, PG_DIAG_SQLSTATE);
        error.message = error_field(result, PG_DIAG_MESSAGE_PRIMARY);
        if (error.message.empty()) {
            error.message = PQresultErrorMessage(result);
        }
        if (PQresultStatus(result) != PGRES_FATAL_ERROR && error.message.empty()) {
            error.message = std::string("unexpected result ") + PQresStatus(PQresultStatus(result));
        }
    }
    if (error.sqlstate == k_invalid_statement_name || error.sqlstate == k_duplicate_statement) {
        session_diverged_ = true;
    }
    error_ = std::move(error);
}

bool transaction_results::feed(result_handle result) {
    if (position_ >= items_.size()) {
        protocol_error_ = true;
        return true;
    }
    const item& current = items_[position_];
    if (!result) {
        // The end of one query's results; a Sync is never followed by one.
        if (current.kind == item_kind::sync) {
            protocol_error_ = true;
            return true;
        }
        ++position_;
        got_result_ = false;
        return false;
    }

    const ExecStatusType status = PQresultStatus(result.get());
    if (status == PGRES_PIPELINE_SYNC || current.kind == item_kind::sync) {
        if (status != PGRES_PIPELINE_SYNC || current.kind != item_kind::sync) {
            protocol_error_ = true;
        }
        ++position_;
        return true;
    }
    if (got_result_) {
        // One statement of the extended protocol gives one result; a second one means the
        // stream is not what was sent.
        protocol_error_ = true;
        return false;
    }
    got_result_ = true;
    if (status == PGRES_PIPELINE_ABORTED) {
        return false;  // skipped after an earlier error, which error_ already holds
    }

    const bool ok =
        status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY;
    switch (current.kind) {
        case item_kind::set_config:
            if (!ok) {
                fail(0, result.get());
            }
            break;
        case item_kind::prepare:
            if (ok) {
                prepared_.push_back(current.name);
            } else {
                fail(current.statement, result.get());
            }
            break;
        case item_kind::query:
            if (ok) {
                rows_[current.statement] = rows(result.release());
            } else {
                fail(current.statement, result.get());
            }
            break;
        case item_kind::sync:
            break;  // handled above
    }
    return false;
}

outcome transaction_results::take() {
    outcome answer;
    if (error_) {
        answer.error = std::move(error_);
        error_.reset();
    } else {
        answer.results = std::move(rows_);
    }
    rows_.clear();
    return answer;
}

}  // namespace pm_agent::pg
