// Multiformats unsigned varints (LEB128, at most 9 bytes / 63 bits, minimal encoding only) and
// the uvarint-length-prefixed frames that libp2p protocols and IDN messages travel in.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "core/bytes.h"
#include "core/status.h"

namespace idn::core {

// The spec caps varints at 9 bytes so that every value fits in 63 bits.
inline constexpr size_t kMaxUvarintBytes = 9;
inline constexpr uint64_t kMaxUvarintValue = (uint64_t{1} << 63) - 1;

// Number of bytes the minimal encoding of `value` takes (1..9; 10 for values the spec forbids).
size_t uvarint_size(uint64_t value);

// Appends the encoding of `value`. Precondition: value <= kMaxUvarintValue (asserted); callers
// holding an untrusted value use checked_encode_uvarint.
void append_uvarint(uint64_t value, Bytes& out);
Bytes encode_uvarint(uint64_t value);
Result<Bytes> checked_encode_uvarint(uint64_t value);

// Why a byte string is not a valid varint prefix. kTruncated alone means "wait for more bytes".
enum class UvarintError { kNone, kTruncated, kOverlong, kNonMinimal };

struct UvarintParse {
  UvarintError error = UvarintError::kNone;
  uint64_t value = 0;
  size_t size = 0;  // bytes consumed when error == kNone
};

// Reads one varint from the front of `in` without allocating; never reads past in.size().
UvarintParse parse_uvarint(ByteView in);

struct Uvarint {
  uint64_t value;
  size_t size;  // bytes consumed
};

// Reads one varint from the front of `in`. Errors: Corruption (truncated, more than 9 bytes,
// or a non-minimal encoding such as 0x80 0x00, which would give one value two encodings).
Result<Uvarint> decode_uvarint(ByteView in);

// Reads a varint that must span all of `in`.
Result<uint64_t> decode_uvarint_exact(ByteView in);

// uvarint(len) || payload: the framing of multistream-select and of every IDN protobuf message.
Bytes encode_length_prefixed(ByteView payload);
void append_length_prefixed(ByteView payload, Bytes& out);

// Decodes one frame from the front of `in`; `consumed` is set to header + payload size.
// Errors: Corruption (bad header or truncated), LimitExceeded (declared length > max_frame_size).
Result<Bytes> decode_length_prefixed(ByteView in, size_t max_frame_size,
                                     size_t* consumed = nullptr);

// Incremental frame decoder for a byte stream: push() whatever arrived, pop() complete frames.
// A frame header declaring more than max_frame_size bytes is refused as soon as the header is
// seen (before buffering the payload), so a peer cannot make us allocate unbounded memory.
// After an error the decoder stays failed; the connection should be closed.
// Not thread-safe; one decoder per stream.
class FrameDecoder {
 public:
  explicit FrameDecoder(size_t max_frame_size) : max_frame_size_(max_frame_size) {}

  // Buffers `data`. Returns the (sticky) error when the stream is malformed.
  Status push(ByteView data);
  // The next complete frame, or nullopt when more bytes are needed (or the decoder failed).
  std::optional<Bytes> pop();

  const Status& status() const { return status_; }
  bool failed() const { return !status_.is_ok(); }
  // Bytes received but not yet returned by pop(): a partial frame, or frames waiting to be popped.
  size_t buffered() const { return buf_.size() - pos_; }
  size_t max_frame_size() const { return max_frame_size_; }

 private:
  size_t max_frame_size_;
  Bytes buf_;
  size_t pos_ = 0;   // start of the first frame not yet popped
  size_t scan_ = 0;  // start of the first frame not yet known to be complete and valid
  Status status_;
};

}  // namespace idn::core
