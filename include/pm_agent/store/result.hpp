#pragma once
/// Errors as values for the store and the engine: an API.md error code plus a human message.
/// The transport maps each code to its HTTP status; nothing on the data path throws.

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace pm_agent::store {

/// The API.md error codes the engine and the stores can produce.
enum class errc : std::uint8_t {
    bad_request,
    unauthorized,
    forbidden,
    not_found,
    conflict,
    queue_full,
    rate_limited,
    unavailable,
    internal,
};

/// The snake_case wire name of a code ("queue_full").
std::string_view to_string(errc code);

/// One failure: the code decides the HTTP status, the message is safe to show to the caller.
struct error {
    errc code = errc::internal;
    std::string message;
};

/// A value or an error. Cheap on success: the error's message is only built on failure.
template <class T>
class [[nodiscard]] result {
  public:
    result(T value)
        : v_(std::in_place_index<0>, std::move(value)) {}          // NOLINT: implicit on purpose
    result(error e) : v_(std::in_place_index<1>, std::move(e)) {}  // NOLINT
    result(errc code, std::string message)
        : v_(std::in_place_index<1>, error{code, std::move(message)}) {}

    /// True when the result holds a value.
    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }

    /// The value; only valid when ok().
    T& value() & { return *std::get_if<0>(&v_); }
    const T& value() const& { return *std::get_if<0>(&v_); }
    T&& value() && { return std::move(*std::get_if<0>(&v_)); }
    T* operator->() { return std::get_if<0>(&v_); }
    const T* operator->() const { return std::get_if<0>(&v_); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

    /// The error; only valid when !ok().
    const error& err() const& { return *std::get_if<1>(&v_); }
    error&& err() && { return std::move(*std::get_if<1>(&v_)); }

  private:
    std::variant<T, error> v_;
};

/// The result of an operation that only succeeds or fails.
template <>
class [[nodiscard]] result<void> {
  public:
    result() = default;
    result(error e) : err_(std::move(e)), failed_(true) {}  // NOLINT: implicit on purpose
    result(errc code, std::string message) : err_{code, std::move(message)}, failed_(true) {}

    bool ok() const { return !failed_; }
    explicit operator bool() const { return ok(); }
    const error& err() const& { return err_; }
    error&& err() && { return std::move(err_); }

  private:
    error err_;
    bool failed_ = false;
};

}  // namespace pm_agent::store
