// IDN's one error vocabulary: a Status (a code plus a message a person can act on) and
// Result<T> (a value or a Status). No exception crosses a layer boundary; library errors
// (OpenSSL, Asio, LibTorch) are mapped to a Status at the edge where they arise.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace idn {

enum class Code {
  kOk = 0,
  kInvalidArgument,  // the caller passed something malformed or out of range
  kNotFound,         // a file, key, peer or record that does not exist
  kCorruption,       // stored or received data fails its own checks (hash, length, format)
  kIOError,          // the operating system refused a read/write/socket operation
  kUnsupported,      // well-formed but not something this version handles
  kPeerMisbehaved,   // a remote peer broke the protocol or lied
  kTimeout,          // a deadline passed
  kLimitExceeded,    // a configured limit (size, count, rate) would be crossed
  kUnavailable,      // a resource is temporarily busy or gone (peer offline, queue full)
  kCancelled,        // the caller or the peer cancelled the work
  kInternal,         // a bug: an invariant of ours did not hold
};

std::string_view code_name(Code c);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }
  static Status invalid_argument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status not_found(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status corruption(std::string m) { return {Code::kCorruption, std::move(m)}; }
  static Status io_error(std::string m) { return {Code::kIOError, std::move(m)}; }
  static Status unsupported(std::string m) { return {Code::kUnsupported, std::move(m)}; }
  static Status peer_misbehaved(std::string m) { return {Code::kPeerMisbehaved, std::move(m)}; }
  static Status timeout(std::string m) { return {Code::kTimeout, std::move(m)}; }
  static Status limit_exceeded(std::string m) { return {Code::kLimitExceeded, std::move(m)}; }
  static Status unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
  static Status cancelled(std::string m) { return {Code::kCancelled, std::move(m)}; }
  static Status internal(std::string m) { return {Code::kInternal, std::move(m)}; }

  bool is_ok() const { return code_ == Code::kOk; }
  explicit operator bool() const { return is_ok(); }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "Corruption: weights.safetensors: header length 9999 exceeds file size 120"
  std::string to_string() const;
  // Returns a copy whose message is prefixed with `context: `.
  Status with_context(std::string_view context) const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// A value of type T, or the Status that explains why there is none.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Status status) : v_(std::move(status)) { assert(!std::get<Status>(v_).is_ok()); }

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T value_or(T fallback) const { return ok() ? value() : fallback; }

 private:
  std::variant<T, Status> v_;
};

}  // namespace idn

#define IDN_CONCAT_INNER(a, b) a##b
#define IDN_CONCAT(a, b) IDN_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function when `expr` (a Status) is not ok.
#define IDN_RETURN_IF_ERROR(expr)         \
  do {                                    \
    ::idn::Status _idn_st = (expr);       \
    if (!_idn_st.is_ok()) return _idn_st; \
  } while (0)

// `IDN_ASSIGN_OR_RETURN(auto x, f());` binds x to f()'s value or returns its Status.
#define IDN_ASSIGN_OR_RETURN(lhs, expr) \
  IDN_ASSIGN_OR_RETURN_IMPL(IDN_CONCAT(_idn_res_, __LINE__), lhs, expr)
#define IDN_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
