#include "core/varint.h"

#include <cassert>
#include <string>

namespace idn::core {

size_t uvarint_size(uint64_t value) {
  size_t n = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++n;
  }
  return n;
}

void append_uvarint(uint64_t value, Bytes& out) {
  assert(value <= kMaxUvarintValue);
  while (value >= 0x80) {
    out.push_back(static_cast<uint8_t>(value | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<uint8_t>(value));
}

Bytes encode_uvarint(uint64_t value) {
  Bytes out;
  append_uvarint(value, out);
  return out;
}

Result<Bytes> checked_encode_uvarint(uint64_t value) {
  if (value > kMaxUvarintValue) {
    return Status::invalid_argument("varint value " + std::to_string(value) +
                                    " exceeds the multiformats limit of 2^63-1");
  }
  return encode_uvarint(value);
}

UvarintParse parse_uvarint(ByteView in) {
  UvarintParse r;
  uint64_t value = 0;
  for (size_t i = 0; i < kMaxUvarintBytes; ++i) {
    if (i >= in.size()) {
      r.error = UvarintError::kTruncated;
      return r;
    }
    uint8_t b = in[i];
    value |= uint64_t{b & 0x7fu} << (7 * i);
    if ((b & 0x80) == 0) {
      // A zero final byte after at least one other byte means the same value has a shorter
      // encoding; accepting it would let one value travel under several byte strings.
      if (b == 0 && i > 0) {
        r.error = UvarintError::kNonMinimal;
        return r;
      }
      r.value = value;
      r.size = i + 1;
      return r;
    }
  }
  r.error = UvarintError::kOverlong;
  return r;
}

static Status uvarint_status(UvarintError e) {
  switch (e) {
    case UvarintError::kTruncated:
      return Status::corruption("varint is truncated (input ends before its last byte)");
    case UvarintError::kOverlong:
      return Status::corruption("varint is longer than the 9 bytes multiformats allows");
    case UvarintError::kNonMinimal:
      return Status::corruption("varint is not minimally encoded (trailing zero byte)");
    case UvarintError::kNone:
      break;
  }
  return Status::internal("uvarint_status called without an error");
}

Result<Uvarint> decode_uvarint(ByteView in) {
  UvarintParse p = parse_uvarint(in);
  if (p.error != UvarintError::kNone) return uvarint_status(p.error);
  return Uvarint{p.value, p.size};
}

Result<uint64_t> decode_uvarint_exact(ByteView in) {
  IDN_ASSIGN_OR_RETURN(Uvarint v, decode_uvarint(in));
  if (v.size != in.size()) {
    return Status::corruption("varint is followed by " + std::to_string(in.size() - v.size) +
                              " unexpected trailing bytes");
  }
  return v.value;
}

void append_length_prefixed(ByteView payload, Bytes& out) {
  out.reserve(out.size() + uvarint_size(payload.size()) + payload.size());
  append_uvarint(payload.size(), out);
  out.insert(out.end(), payload.begin(), payload.end());
}

Bytes encode_length_prefixed(ByteView payload) {
  Bytes out;
  append_length_prefixed(payload, out);
  return out;
}

static Status frame_too_large(uint64_t len, size_t max) {
  return Status::limit_exceeded("frame declares " + std::to_string(len) +
                                " bytes, more than the limit of " + std::to_string(max));
}

Result<Bytes> decode_length_prefixed(ByteView in, size_t max_frame_size, size_t* consumed) {
  IDN_ASSIGN_OR_RETURN(Uvarint len, decode_uvarint(in));
  if (len.value > max_frame_size) return frame_too_large(len.value, max_frame_size);
  if (len.value > in.size() - len.size) {
    return Status::corruption("frame declares " + std::to_string(len.value) + " bytes but only " +
                              std::to_string(in.size() - len.size) + " follow");
  }
  auto body = in.subspan(len.size, static_cast<size_t>(len.value));
  if (consumed) *consumed = len.size + body.size();
  return Bytes(body.begin(), body.end());
}

Status FrameDecoder::push(ByteView data) {
  if (failed()) return status_;
  buf_.insert(buf_.end(), data.begin(), data.end());
  while (scan_ < buf_.size()) {
    UvarintParse p = parse_uvarint(ByteView(buf_).subspan(scan_));
    if (p.error == UvarintError::kTruncated) break;
    if (p.error != UvarintError::kNone) {
      status_ = uvarint_status(p.error).with_context("frame header");
      return status_;
    }
    if (p.value > max_frame_size_) {
      status_ = frame_too_large(p.value, max_frame_size_);
      return status_;
    }
    if (p.value > buf_.size() - scan_ - p.size) break;  // payload still incomplete
    scan_ += p.size + static_cast<size_t>(p.value);
  }
  return status_;
}

std::optional<Bytes> FrameDecoder::pop() {
  if (failed() || pos_ >= scan_) return std::nullopt;
  UvarintParse p = parse_uvarint(ByteView(buf_).subspan(pos_));
  // push() validated every frame before scan_, so this header parses and the payload is there.
  size_t begin = pos_ + p.size;
  size_t end = begin + static_cast<size_t>(p.value);
  Bytes frame(buf_.begin() + begin, buf_.begin() + end);
  pos_ = end;
  // Drop consumed bytes once they dominate the buffer, keeping pops amortised O(frame size).
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = scan_ = 0;
  } else if (pos_ > 4096 && pos_ * 2 > buf_.size()) {
    buf_.erase(buf_.begin(), buf_.begin() + pos_);
    scan_ -= pos_;
    pos_ = 0;
  }
  return frame;
}

}  // namespace idn::core
