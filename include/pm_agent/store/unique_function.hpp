#pragma once
/// A move-only std::function replacement for completion callbacks. Callables up to
/// k_inline_size bytes live inside the object (no allocation); larger ones go to the heap.
/// Move-only so that a callback may own move-only state (a response writer, a unique_ptr).

#include <cstddef>
#include <functional>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

#include "pm_agent/store/result.hpp"

namespace pm_agent::store {

template <class Signature>
class unique_function;

/// See the file comment. Calling an empty unique_function is a programmer error.
template <class R, class... Args>
class unique_function<R(Args...)> {
  public:
    /// 48 bytes hold a lambda capturing `this`, a std::string and a pointer or two, which is
    /// what the engine's continuations capture on the hot path.
    static constexpr std::size_t k_inline_size = 48;

    unique_function() noexcept = default;
    unique_function(std::nullptr_t) noexcept {}  // NOLINT: implicit like std::function

    template <class F, class D = std::decay_t<F>,
              class = std::enable_if_t<!std::is_same_v<D, unique_function> &&
                                       std::is_invocable_r_v<R, D&, Args...>>>
    unique_function(F&& f) {  // NOLINT: implicit like std::function
        if constexpr (fits_inline<D>) {
            ::new (static_cast<void*>(buffer_)) D(std::forward<F>(f));
            ops_ = &inline_ops<D>;
        } else {
            ::new (static_cast<void*>(buffer_)) D*(new D(std::forward<F>(f)));
            ops_ = &heap_ops<D>;
        }
    }

    unique_function(unique_function&& other) noexcept : ops_(other.ops_) {
        if (ops_ != nullptr) {
            ops_->move(buffer_, other.buffer_);
            other.ops_ = nullptr;
        }
    }

    unique_function& operator=(unique_function&& other) noexcept {
        if (this != &other) {
            reset();
            if (other.ops_ != nullptr) {
                other.ops_->move(buffer_, other.buffer_);
                ops_ = other.ops_;
                other.ops_ = nullptr;
            }
        }
        return *this;
    }

    unique_function(const unique_function&) = delete;
    unique_function& operator=(const unique_function&) = delete;

    ~unique_function() { reset(); }

    /// True when it holds a callable.
    explicit operator bool() const noexcept { return ops_ != nullptr; }

    /// Calls it; it must hold a callable.
    R operator()(Args... args) { return ops_->invoke(buffer_, std::forward<Args>(args)...); }

  private:
    struct ops_table {
        R (*invoke)(void*, Args&&...);
        void (*move)(void* dst, void* src) noexcept;  // leaves src destroyed
        void (*destroy)(void*) noexcept;
    };

    template <class D>
    static constexpr bool fits_inline =
        sizeof(D) <= k_inline_size &&
        alignof(D) <= alignof(std::max_align_t) && std::is_nothrow_move_constructible_v<D>;

    template <class D>
    static constexpr ops_table inline_ops{
        [](void* p, Args&&... a) -> R {
            return std::invoke(*std::launder(static_cast<D*>(p)), std::forward<Args>(a)...);
        },
        [](void* dst, void* src) noexcept {
            D* s = std::launder(static_cast<D*>(src));
            ::new (dst) D(std::move(*s));
            s->~D();
        },
        [](void* p) noexcept { std::launder(static_cast<D*>(p))->~D(); },
    };

    template <class D>
    static constexpr ops_table heap_ops{
        [](void* p, Args&&... a) -> R {
            return std::invoke(**std::launder(static_cast<D**>(p)), std::forward<Args>(a)...);
        },
        [](void* dst, void* src) noexcept { ::new (dst) D*(*std::launder(static_cast<D**>(src))); },
        [](void* p) noexcept { delete *std::launder(static_cast<D**>(p)); },
    };

    void reset() noexcept {
        if (ops_ != nullptr) {
            ops_->destroy(buffer_);
            ops_ = nullptr;
        }
    }

    alignas(std::max_align_t) unsigned char buffer_[k_inline_size];
    const ops_table* ops_ = nullptr;
};

/// The completion of an asynchronous store or engine operation. It is called exactly once:
/// the memory store calls it before the operation returns, an asynchronous store later on the
/// same loop thread. Pointers and spans inside the result are only valid during the call.
template <class T>
using callback = unique_function<void(result<T>)>;

}  // namespace pm_agent::store
