// pg::rows: a move-only view of one statement's PGresult, text format.

#include <libpq-fe.h>

#include <charconv>
#include <cstring>
#include <utility>

#include "pm_agent/pg/pool.hpp"

namespace pm_agent::pg {

rows::rows(pg_result* result) : result_(result) {}

rows::rows(rows&& other) noexcept : result_(std::exchange(other.result_, nullptr)) {}

rows& rows::operator=(rows&& other) noexcept {
    if (this != &other) {
        if (result_ != nullptr) {
            PQclear(result_);
        }
        result_ = std::exchange(other.result_, nullptr);
    }
    return *this;
}

rows::~rows() {
    if (result_ != nullptr) {
        PQclear(result_);
    }
}

std::size_t rows::size() const {
    if (result_ == nullptr) {
        return 0;
    }
    return static_cast<std::size_t>(PQntuples(result_));
}

int rows::columns() const {
    if (result_ == nullptr) {
        return 0;
    }
    return PQnfields(result_);
}

std::string_view rows::get(std::size_t row, int column) const {
    if (result_ == nullptr) {
        return {};
    }
    const int r = static_cast<int>(row);
    // PQgetvalue returns "" for NULL and for out-of-range positions, never a null pointer.
    const char* value = PQgetvalue(result_, r, column);
    return {value, static_cast<std::size_t>(PQgetlength(result_, r, column))};
}

bool rows::is_null(std::size_t row, int column) const {
    if (result_ == nullptr) {
        return true;
    }
    return PQgetisnull(result_, static_cast<int>(row), column) == 1;
}

std::uint64_t rows::affected() const {
    if (result_ == nullptr) {
        return 0;
    }
    const char* text = PQcmdTuples(result_);
    std::uint64_t value = 0;
    std::from_chars(text, text + std::strlen(text), value);  // "" (no count) leaves 0
    return value;
}

}  // namespace pm_agent::pg
