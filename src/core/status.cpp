#include "core/status.h"

namespace idn {

std::string_view code_name(Code c) {
  switch (c) {
    case Code::kOk:
      return "OK";
    case Code::kInvalidArgument:
      return "Invalid argument";
    case Code::kNotFound:
      return "Not found";
    case Code::kCorruption:
      return "Corruption";
    case Code::kIOError:
      return "I/O error";
    case Code::kUnsupported:
      return "Unsupported";
    case Code::kPeerMisbehaved:
      return "Peer misbehaved";
    case Code::kTimeout:
      return "Timeout";
    case Code::kLimitExceeded:
      return "Limit exceeded";
    case Code::kUnavailable:
      return "Unavailable";
    case Code::kCancelled:
      return "Cancelled";
    case Code::kInternal:
      return "Internal error";
  }
  return "Unknown";
}

std::string Status::to_string() const {
  if (is_ok()) return "OK";
  std::string s(code_name(code_));
  s += ": ";
  s += message_;
  return s;
}

Status Status::with_context(std::string_view context) const {
  if (is_ok()) return *this;
  std::string m(context);
  m += ": ";
  m += message_;
  return {code_, std::move(m)};
}

}  // namespace idn
