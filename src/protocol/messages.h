// IDN's own wire messages (dissertation §7.5.3) as plain C++ values, and their protobuf
// encoding (proto/idn_swap.proto, proto/idn_infer.proto). Layers above protocol/ build and
// read these types; only protocol/*.cpp sees the generated protobuf classes. decode_*
// validates everything a peer could get wrong (empty envelope, unknown enum value, tensor
// whose bytes do not match its shape, oversized lists) and reports it as PeerMisbehaved.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/bytes.h"
#include "core/bytes_list.h"
#include "core/status.h"
#include "core/tensor.h"

namespace idn::protocol {

// libp2p protocol IDs, negotiated by multistream-select. A breaking change gets a new major.
inline constexpr std::string_view kSwapProtocolId = "/idn/swap/1.0.0";
inline constexpr std::string_view kInferProtocolId = "/idn/infer/1.0.0";

// ---- /idn/swap/1.0.0 ----

// The sender's view of the ledger shared with the receiver, in operations.
struct LedgerView {
  uint64_t debt = 0;    // operations the receiver performed for the sender
  uint64_t credit = 0;  // operations the sender performed for the receiver
  uint64_t sequence = 0;
  uint64_t updated_unix_ms = 0;
  bool operator==(const LedgerView&) const = default;
};

struct SwapOpen {
  LedgerView ledger;
  bool reply = false;  // answering an Open; never answered itself
  bool operator==(const SwapOpen&) const = default;
};

// Service IDs are multihash bytes (of the service descriptor). The lists are shared, not
// copied, between the messages and peers that carry them.
// counts[i]: the sender's requests for service_ids[i] within its need-idle window, 1..
// kMaxNeedCount; empty (as older peers send it) means 1 each.
inline constexpr uint32_t kMaxNeedCount = 1u << 20;
struct NeedList {
  BytesList service_ids;
  CountList counts = {};
  bool operator==(const NeedList&) const = default;
  // The count for service_ids[i] (1 when the sender sent none).
  uint32_t count(size_t i) const { return counts.empty() ? 1 : counts[i]; }
};

struct HaveList {
  BytesList service_ids;
  bool operator==(const HaveList&) const = default;
};

struct SwapClose {
  bool final = false;
  std::string reason;
  bool operator==(const SwapClose&) const = default;
};

// A signed snapshot of the shared ledger (swap/ledger.h: Checkpoint says what it proves).
// node1 < node2; debt1 is what node1 owes; sig1/sig2 empty until that member signed.
struct SwapCheckpoint {
  Bytes node1, node2;
  uint64_t debt1 = 0, debt2 = 0;
  uint64_t sequence = 0;
  uint64_t unix_ms = 0;
  Bytes sig1, sig2;
  bool operator==(const SwapCheckpoint&) const = default;
};

// SwapMessage (the variant of the messages above plus SwapEvidence) follows Receipt below.

// ---- /idn/infer/1.0.0 ----

// Append-only, values on the wire.
enum class ExitCriterion : uint8_t {
  kModelDefault = 0,  // the thresholds recorded in the model package
  kEntropy = 1,       // exit when normalised entropy < threshold
  kConfidence = 2,    // exit when top probability >= threshold
  kLastExit = 3,      // never exit early
};
std::string_view exit_criterion_name(ExitCriterion c);

struct ExitRule {
  ExitCriterion criterion = ExitCriterion::kModelDefault;
  float threshold = 0.0f;
  bool operator==(const ExitRule&) const = default;
};

struct InferRequest {
  uint64_t request_id = 0;
  Bytes service_id;
  core::Tensor input;  // model input, or the activation entering start_stage
  ExitRule exit_rule;
  uint32_t deadline_ms = 0;  // 0 = the server's default
  uint32_t start_stage = 0;
  std::optional<uint32_t> stop_after_stage;  // split execution: return this stage's output
  // Several inputs for one sample instead of `input` (then left default): inputs[i] is view
  // input_views[i]'s, views strictly increasing and < kMaxInputViews; the others are absent.
  // Bit-packed features travel as U8 [ceil(n / 8)] (proto/idn_infer.proto says how).
  std::vector<core::Tensor> inputs;
  std::vector<uint32_t> input_views;
  // A sample the server owns (a DDNN device's camera frame), for a request without inputs.
  std::optional<uint64_t> sample_ref;
  // A stream's first request: the requester may send more on this stream (keep-alive, see
  // proto/idn_infer.proto). A later request on such a stream may leave service_id empty and
  // deadline_ms 0, and leave out exit_rule (exit_rule_inherited): the stream's first request's.
  bool keep_open = false;
  // exit_rule is not on the wire (the decoder sets it when the field is absent; the encoder then
  // leaves it out). Outside a kept stream's later request an absent rule is the default one.
  bool exit_rule_inherited = false;
  // Whether `input` was sent (a default Tensor is not a valid value, so it means "none").
  bool has_input() const { return !(input == core::Tensor{}); }
  bool operator==(const InferRequest&) const = default;
};
// View indices are bits of a presence mask (DDNN has at most 64 devices).
inline constexpr uint32_t kMaxInputViews = 64;

// Append-only, values on the wire.
enum class InferError : uint8_t {
  kNone = 0,
  kInvalidRequest = 1,
  kUnknownService = 2,
  kBusy = 3,
  kRefused = 4,
  kDeadlineExceeded = 5,
  kCancelled = 6,
  kInternal = 7,
};
std::string_view infer_error_name(InferError e);

struct InferProgress {
  uint64_t request_id = 0;
  uint32_t exit_index = 0;
  core::Tensor output;
  float confidence = 0.0f;
  float entropy = 0.0f;
  uint64_t operations = 0;  // cumulative for this request
  bool final = false;
  InferError error = InferError::kNone;
  std::string error_message;
  uint32_t retry_after_ms = 0;  // with kBusy
  // A final answer on a keep_open stream: the server reads the next request on this stream.
  bool stream_open = false;

  bool busy() const { return error == InferError::kBusy; }
  bool operator==(const InferProgress&) const = default;
};

struct InferCancel {
  uint64_t request_id = 0;
  bool operator==(const InferCancel&) const = default;
};

// The requester's acknowledgement that `server` spent `operations` on a request whose answers
// it accepted. `signature` may be empty on the request's own stream (Noise authenticates it).
struct Receipt {
  uint64_t request_id = 0;
  Bytes service_id;
  uint64_t operations = 0;
  Bytes server;  // peer ID bytes of the peer credited
  Bytes signer;  // peer ID bytes of the requester (the signing key)
  uint64_t unix_ms = 0;
  Bytes signature;
  bool operator==(const Receipt&) const = default;
};

// ---- /idn/swap/1.0.0, continued: messages that carry receipts ----

// A receipt as one side holds it, with the ledger sequence it was folded in at.
struct SwapHeldReceipt {
  Receipt receipt;
  uint64_t sequence = 0;
  bool operator==(const SwapHeldReceipt&) const = default;
};

// The sender's last fully signed checkpoint (if any) and the receipts it holds after it: what
// it shows when the views exchanged in Open differ.
struct SwapEvidence {
  std::optional<SwapCheckpoint> checkpoint;
  std::vector<SwapHeldReceipt> receipts;
  bool operator==(const SwapEvidence&) const = default;
};

// Receipts the requester confirms, sent on the swap stream in a batch once its ledger holds
// them durably (one message per ledger commit instead of one frame per request).
struct SwapReceipts {
  std::vector<Receipt> receipts;
  bool operator==(const SwapReceipts&) const = default;
};

// Please host this service; answered by one SwapInitResult with the same request_id.
// `descriptor`: the service descriptor's JSON text (any formatting), for a service the receiver
// may not find in the network; service_id may then be empty, else both must name one service.
struct SwapInitRequest {
  Bytes service_id;
  uint64_t request_id = 0;
  std::string descriptor = {};
  bool operator==(const SwapInitRequest&) const = default;
};

struct SwapInitResult {
  uint64_t request_id = 0;
  bool hosting = false;
  std::string reason;     // why not
  Bytes service_id = {};  // the service answered for (empty from older peers)
  bool operator==(const SwapInitResult&) const = default;
};

using SwapMessage = std::variant<SwapOpen, NeedList, HaveList, SwapClose, SwapCheckpoint,
                                 SwapEvidence, SwapReceipts, SwapInitRequest, SwapInitResult>;

// The exact bytes a receipt's signature covers: a domain-separation tag, then every field
// but the signature in a fixed, length-prefixed layout. Independent of protobuf's encoding,
// so a re-encoded receipt still verifies.
Bytes receipt_signing_bytes(const Receipt& r);

// Requester -> server and server -> requester on an infer stream.
using InferClientMessage = std::variant<InferRequest, InferCancel, Receipt>;
using InferServerMessage = std::variant<InferProgress>;

// Bounds decode_* enforces (beyond the frame size limit of the stream).
struct DecodeLimits {
  // A multihash of a 64-byte digest plus its header fits in 80 bytes; 128 leaves room.
  size_t max_id_bytes = 128;
  // Need/have lists name services, not blocks; a node serving more than this is unusual.
  size_t max_list_entries = 4096;
  // Tensors are batches of small inputs/activations; 8 dims covers NCHW and more.
  size_t max_tensor_rank = 8;
  size_t max_text_bytes = 1024;  // close reasons, error messages
  // A service descriptor sent with an InitRequest (ise::kMaxDescriptorBytes).
  size_t max_descriptor_bytes = 64 * 1024;
  // Receipts one Evidence may carry (a checkpoint is signed every few dozen receipts).
  size_t max_evidence_receipts = 4096;
  // Receipts one Receipts batch may carry (a sender splits larger batches).
  size_t max_batch_receipts = 4096;
  size_t max_signature_bytes = 128;
  // Inputs one request may carry (one per view; views are < kMaxInputViews anyway).
  size_t max_inputs = kMaxInputViews;
};

Bytes encode(const SwapMessage& m);
Bytes encode(const InferClientMessage& m);
Bytes encode(const InferServerMessage& m);

Result<SwapMessage> decode_swap(ByteView payload, const DecodeLimits& limits = {});
Result<InferClientMessage> decode_infer_client(ByteView payload, const DecodeLimits& limits = {});
Result<InferServerMessage> decode_infer_server(ByteView payload, const DecodeLimits& limits = {});

// Short names for logs and metrics labels: "open", "need_list", "infer_request", ...
std::string_view message_name(const SwapMessage& m);
std::string_view message_name(const InferClientMessage& m);
std::string_view message_name(const InferServerMessage& m);

}  // namespace idn::protocol
