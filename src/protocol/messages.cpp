// Conversion between protocol/messages.h values and the generated protobuf classes.
#include "protocol/messages.h"

#include <fmt/format.h>

#include <google/protobuf/stubs/logging.h>

#include <mutex>

#include "core/varint.h"
#include "proto/idn_infer.pb.h"
#include "proto/idn_swap.pb.h"

namespace idn::protocol {
namespace {

constexpr int kMaxDType = static_cast<int>(core::DType::kBool);

Status bad(std::string_view what) {
  return Status::peer_misbehaved(fmt::format("malformed IDN message: {}", what));
}

template <class Pb>
Status parse(Pb& pb, ByteView payload, std::string_view type) {
  // libprotobuf logs every parse problem (e.g. invalid UTF-8 in a string field) to stderr;
  // a peer could flood our log that way. The Status we return says what went wrong.
  static std::once_flag quiet;
  std::call_once(quiet, [] { google::protobuf::SetLogHandler(nullptr); });
  if (payload.size() > static_cast<size_t>(INT32_MAX) ||
      !pb.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return bad(fmt::format("{} ({} bytes) is not valid protobuf", type, payload.size()));
  }
  return Status::ok();
}

template <class Pb>
Bytes serialize(const Pb& pb) {
  Bytes out(pb.ByteSizeLong());
  pb.SerializeWithCachedSizesToArray(out.data());
  return out;
}

Bytes to_bytes_field(const std::string& s) {
  return Bytes(s.begin(), s.end());
}
std::string from_bytes(const Bytes& b) {
  return std::string(b.begin(), b.end());
}

Status check_id(const std::string& id, std::string_view field, const DecodeLimits& limits,
                bool allow_empty = false) {
  if (id.empty() && !allow_empty) return bad(fmt::format("{} is empty", field));
  if (id.size() > limits.max_id_bytes) {
    return bad(fmt::format("{} is {} bytes, limit {}", field, id.size(), limits.max_id_bytes));
  }
  return Status::ok();
}

Status check_text(const std::string& s, std::string_view field, const DecodeLimits& limits) {
  if (s.size() > limits.max_text_bytes) {
    return bad(fmt::format("{} is {} bytes, limit {}", field, s.size(), limits.max_text_bytes));
  }
  return Status::ok();
}

// ---- tensors ----

void tensor_to_pb(const core::Tensor& t, v1::Tensor* pb) {
  pb->set_dtype(static_cast<v1::DType>(t.dtype));
  for (int64_t d : t.shape) pb->add_shape(d);
  pb->set_data(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
}

Result<core::Tensor> tensor_from_pb(const v1::Tensor& pb, std::string_view field,
                                    const DecodeLimits& limits) {
  int dtype = pb.dtype();
  if (dtype < 0 || dtype > kMaxDType) return bad(fmt::format("{}: unknown dtype {}", field, dtype));
  if (static_cast<size_t>(pb.shape_size()) > limits.max_tensor_rank) {
    return bad(
        fmt::format("{}: rank {} exceeds {}", field, pb.shape_size(), limits.max_tensor_rank));
  }
  core::Tensor t;
  t.dtype = static_cast<core::DType>(dtype);
  t.shape.assign(pb.shape().begin(), pb.shape().end());
  t.bytes.assign(pb.data().begin(), pb.data().end());
  Status st = t.validate();
  if (!st.is_ok()) return bad(fmt::format("{}: {}", field, st.message()));
  return t;
}

// ---- swap ----

void ledger_to_pb(const LedgerView& l, v1::LedgerView* pb) {
  pb->set_debt(l.debt);
  pb->set_credit(l.credit);
  pb->set_sequence(l.sequence);
  pb->set_updated_unix_ms(l.updated_unix_ms);
}

template <class PbList>
void ids_to_pb(const std::vector<Bytes>& ids, PbList* pb) {
  for (const Bytes& id : ids) pb->add_service_ids(from_bytes(id));
}

template <class PbList>
Result<std::vector<Bytes>> ids_from_pb(const PbList& pb, std::string_view field,
                                       const DecodeLimits& limits) {
  if (static_cast<size_t>(pb.service_ids_size()) > limits.max_list_entries) {
    return bad(fmt::format("{} has {} entries, limit {}", field, pb.service_ids_size(),
                           limits.max_list_entries));
  }
  std::vector<Bytes> ids;
  ids.reserve(pb.service_ids_size());
  for (const std::string& id : pb.service_ids()) {
    IDN_RETURN_IF_ERROR(check_id(id, fmt::format("{} entry", field), limits));
    ids.push_back(to_bytes_field(id));
  }
  return ids;
}

// ---- infer ----

void request_to_pb(const InferRequest& r, v1::InferRequest* pb) {
  pb->set_request_id(r.request_id);
  pb->set_service_id(from_bytes(r.service_id));
  if (r.has_input()) tensor_to_pb(r.input, pb->mutable_input());
  if (!r.exit_rule_inherited) {
    pb->mutable_exit_rule()->set_criterion(static_cast<v1::ExitCriterion>(r.exit_rule.criterion));
    pb->mutable_exit_rule()->set_threshold(r.exit_rule.threshold);
  }
  pb->set_deadline_ms(r.deadline_ms);
  pb->set_start_stage(r.start_stage);
  if (r.stop_after_stage) pb->set_stop_after_stage(*r.stop_after_stage);
  for (const core::Tensor& t : r.inputs) tensor_to_pb(t, pb->add_inputs());
  for (uint32_t v : r.input_views) pb->add_input_views(v);
  if (r.sample_ref) pb->set_sample_ref(*r.sample_ref);
  pb->set_keep_open(r.keep_open);
}

Result<InferRequest> request_from_pb(const v1::InferRequest& pb, const DecodeLimits& limits) {
  InferRequest r;
  r.request_id = pb.request_id();
  // Empty: a later request on a keep-alive stream, which inherits the first one's.
  IDN_RETURN_IF_ERROR(check_id(pb.service_id(), "infer_request.service_id", limits, true));
  r.service_id = to_bytes_field(pb.service_id());
  if (static_cast<size_t>(pb.inputs_size()) > limits.max_inputs)
    return bad(
        fmt::format("infer_request has {} inputs, limit {}", pb.inputs_size(), limits.max_inputs));
  if (pb.input_views_size() != pb.inputs_size())
    return bad(fmt::format("infer_request has {} inputs but {} input views", pb.inputs_size(),
                           pb.input_views_size()));
  if (pb.has_input() && pb.inputs_size() > 0)
    return bad("infer_request carries both input and inputs");
  if (!pb.has_input() && pb.inputs_size() == 0 && !pb.has_sample_ref())
    return bad("infer_request has no input tensor (and names no sample)");
  if (pb.has_input()) {
    IDN_ASSIGN_OR_RETURN(r.input, tensor_from_pb(pb.input(), "infer_request.input", limits));
  }
  for (int i = 0; i < pb.inputs_size(); ++i) {
    const uint32_t v = pb.input_views(i);
    if (v >= kMaxInputViews || (i > 0 && v <= pb.input_views(i - 1)))
      return bad(
          fmt::format("infer_request.input_views[{}] = {}: views must increase strictly "
                      "and be below {}",
                      i, v, kMaxInputViews));
    IDN_ASSIGN_OR_RETURN(
        auto t, tensor_from_pb(pb.inputs(i), fmt::format("infer_request.inputs[{}]", i), limits));
    r.inputs.push_back(std::move(t));
    r.input_views.push_back(v);
  }
  if (pb.has_sample_ref()) r.sample_ref = pb.sample_ref();
  r.keep_open = pb.keep_open();
  r.exit_rule_inherited = !pb.has_exit_rule();
  int criterion = pb.exit_rule().criterion();
  if (criterion < 0 || criterion > static_cast<int>(ExitCriterion::kLastExit)) {
    return bad(fmt::format("infer_request.exit_rule: unknown criterion {}", criterion));
  }
  r.exit_rule.criterion = static_cast<ExitCriterion>(criterion);
  r.exit_rule.threshold = pb.exit_rule().threshold();
  if (!(r.exit_rule.threshold >= 0.0f && r.exit_rule.threshold <= 1.0f)) {
    return bad(fmt::format("infer_request.exit_rule.threshold {} is outside [0, 1]",
                           r.exit_rule.threshold));
  }
  r.deadline_ms = pb.deadline_ms();
  r.start_stage = pb.start_stage();
  if (pb.has_stop_after_stage()) {
    if (pb.stop_after_stage() < pb.start_stage()) {
      return bad(fmt::format("infer_request: stop_after_stage {} precedes start_stage {}",
                             pb.stop_after_stage(), pb.start_stage()));
    }
    r.stop_after_stage = pb.stop_after_stage();
  }
  return r;
}

void receipt_to_pb(const Receipt& r, v1::Receipt* pb) {
  pb->set_request_id(r.request_id);
  pb->set_service_id(from_bytes(r.service_id));
  pb->set_operations(r.operations);
  pb->set_server(from_bytes(r.server));
  pb->set_signer(from_bytes(r.signer));
  pb->set_unix_ms(r.unix_ms);
  pb->set_signature(from_bytes(r.signature));
}

Result<Receipt> receipt_from_pb(const v1::Receipt& pb, const DecodeLimits& limits) {
  Receipt r;
  r.request_id = pb.request_id();
  IDN_RETURN_IF_ERROR(check_id(pb.service_id(), "receipt.service_id", limits));
  IDN_RETURN_IF_ERROR(check_id(pb.server(), "receipt.server", limits));
  IDN_RETURN_IF_ERROR(check_id(pb.signer(), "receipt.signer", limits));
  // Ed25519 signatures are 64 bytes; allow other schemes but bound the size. Empty: unsigned,
  // as on the request's own stream, which Noise already authenticates.
  IDN_RETURN_IF_ERROR(check_id(pb.signature(), "receipt.signature", limits, true));
  r.service_id = to_bytes_field(pb.service_id());
  r.operations = pb.operations();
  r.server = to_bytes_field(pb.server());
  r.signer = to_bytes_field(pb.signer());
  r.unix_ms = pb.unix_ms();
  r.signature = to_bytes_field(pb.signature());
  return r;
}

void checkpoint_to_pb(const SwapCheckpoint& c, v1::Checkpoint* pb) {
  pb->set_node1(from_bytes(c.node1));
  pb->set_node2(from_bytes(c.node2));
  pb->set_debt1(c.debt1);
  pb->set_debt2(c.debt2);
  pb->set_sequence(c.sequence);
  pb->set_unix_ms(c.unix_ms);
  pb->set_sig1(from_bytes(c.sig1));
  pb->set_sig2(from_bytes(c.sig2));
}

Result<SwapCheckpoint> checkpoint_from_pb(const v1::Checkpoint& pb, const DecodeLimits& limits) {
  IDN_RETURN_IF_ERROR(check_id(pb.node1(), "checkpoint.node1", limits));
  IDN_RETURN_IF_ERROR(check_id(pb.node2(), "checkpoint.node2", limits));
  for (const auto* sig : {&pb.sig1(), &pb.sig2()}) {
    if (sig->size() > limits.max_signature_bytes) {
      return bad(fmt::format("checkpoint signature of {} bytes, limit {}", sig->size(),
                             limits.max_signature_bytes));
    }
  }
  SwapCheckpoint c;
  c.node1 = to_bytes_field(pb.node1());
  c.node2 = to_bytes_field(pb.node2());
  c.debt1 = pb.debt1();
  c.debt2 = pb.debt2();
  c.sequence = pb.sequence();
  c.unix_ms = pb.unix_ms();
  c.sig1 = to_bytes_field(pb.sig1());
  c.sig2 = to_bytes_field(pb.sig2());
  return c;
}

void evidence_to_pb(const SwapEvidence& e, v1::Evidence* pb) {
  if (e.checkpoint) checkpoint_to_pb(*e.checkpoint, pb->mutable_checkpoint());
  for (const auto& h : e.receipts) {
    auto* r = pb->add_receipts();
    receipt_to_pb(h.receipt, r->mutable_receipt());
    r->set_sequence(h.sequence);
  }
}

Result<SwapEvidence> evidence_from_pb(const v1::Evidence& pb, const DecodeLimits& limits) {
  if (static_cast<size_t>(pb.receipts_size()) > limits.max_evidence_receipts) {
    return bad(fmt::format("evidence carries {} receipts, limit {}", pb.receipts_size(),
                           limits.max_evidence_receipts));
  }
  SwapEvidence e;
  if (pb.has_checkpoint()) {
    IDN_ASSIGN_OR_RETURN(auto c, checkpoint_from_pb(pb.checkpoint(), limits));
    e.checkpoint = std::move(c);
  }
  e.receipts.reserve(pb.receipts_size());
  for (const auto& h : pb.receipts()) {
    if (!h.has_receipt()) return bad("evidence receipt entry without a receipt");
    IDN_ASSIGN_OR_RETURN(auto r, receipt_from_pb(h.receipt(), limits));
    e.receipts.push_back(SwapHeldReceipt{std::move(r), h.sequence()});
  }
  return e;
}

Result<SwapReceipts> receipts_from_pb(const v1::Receipts& pb, const DecodeLimits& limits) {
  if (static_cast<size_t>(pb.receipts_size()) > limits.max_batch_receipts) {
    return bad(fmt::format("receipt batch carries {} receipts, limit {}", pb.receipts_size(),
                           limits.max_batch_receipts));
  }
  SwapReceipts out;
  out.receipts.reserve(pb.receipts_size());
  for (const auto& r : pb.receipts()) {
    IDN_ASSIGN_OR_RETURN(auto receipt, receipt_from_pb(r, limits));
    out.receipts.push_back(std::move(receipt));
  }
  return out;
}

void progress_to_pb(const InferProgress& p, v1::InferProgress* pb) {
  pb->set_request_id(p.request_id);
  pb->set_exit_index(p.exit_index);
  // An error report carries no output; a default Tensor is not a valid value to send.
  bool no_output = p.error != InferError::kNone && p.output == core::Tensor{};
  if (!no_output) tensor_to_pb(p.output, pb->mutable_output());
  pb->set_confidence(p.confidence);
  pb->set_entropy(p.entropy);
  pb->set_operations(p.operations);
  pb->set_final(p.final);
  pb->set_error(static_cast<v1::InferError>(p.error));
  pb->set_error_message(p.error_message);
  pb->set_retry_after_ms(p.retry_after_ms);
  pb->set_stream_open(p.stream_open);
}

Result<InferProgress> progress_from_pb(const v1::InferProgress& pb, const DecodeLimits& limits) {
  InferProgress p;
  p.request_id = pb.request_id();
  p.exit_index = pb.exit_index();
  int error = pb.error();
  if (error < 0 || error > static_cast<int>(InferError::kInternal)) {
    return bad(fmt::format("infer_progress: unknown error code {}", error));
  }
  p.error = static_cast<InferError>(error);
  // An error report need not carry an output; a result must.
  if (pb.has_output()) {
    IDN_ASSIGN_OR_RETURN(p.output, tensor_from_pb(pb.output(), "infer_progress.output", limits));
  } else if (p.error == InferError::kNone) {
    return bad("infer_progress without error has no output tensor");
  }
  p.confidence = pb.confidence();
  p.entropy = pb.entropy();
  p.operations = pb.operations();
  p.final = pb.final();
  IDN_RETURN_IF_ERROR(check_text(pb.error_message(), "infer_progress.error_message", limits));
  p.error_message = pb.error_message();
  p.retry_after_ms = pb.retry_after_ms();
  p.stream_open = pb.stream_open();
  return p;
}

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

void append_field(ByteView b, Bytes& out) {
  core::append_length_prefixed(b, out);
}

// Fixed-width big-endian: every u64 value is representable (varints stop at 2^63 - 1).
void append_u64(uint64_t v, Bytes& out) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

}  // namespace

std::string_view exit_criterion_name(ExitCriterion c) {
  switch (c) {
    case ExitCriterion::kModelDefault:
      return "model_default";
    case ExitCriterion::kEntropy:
      return "entropy";
    case ExitCriterion::kConfidence:
      return "confidence";
    case ExitCriterion::kLastExit:
      return "last_exit";
  }
  return "unknown";
}

std::string_view infer_error_name(InferError e) {
  switch (e) {
    case InferError::kNone:
      return "none";
    case InferError::kInvalidRequest:
      return "invalid_request";
    case InferError::kUnknownService:
      return "unknown_service";
    case InferError::kBusy:
      return "busy";
    case InferError::kRefused:
      return "refused";
    case InferError::kDeadlineExceeded:
      return "deadline_exceeded";
    case InferError::kCancelled:
      return "cancelled";
    case InferError::kInternal:
      return "internal";
  }
  return "unknown";
}

Bytes receipt_signing_bytes(const Receipt& r) {
  static constexpr std::string_view kTag = "/idn/receipt/1.0.0";
  Bytes out;
  append_field(as_bytes(kTag), out);
  append_u64(r.request_id, out);
  append_field(r.service_id, out);
  append_u64(r.operations, out);
  append_field(r.server, out);
  append_field(r.signer, out);
  append_u64(r.unix_ms, out);
  return out;
}

Bytes encode(const SwapMessage& m) {
  v1::SwapMessage pb;
  std::visit(Overloaded{
                 [&](const SwapOpen& o) {
                   ledger_to_pb(o.ledger, pb.mutable_open()->mutable_ledger());
                   pb.mutable_open()->set_reply(o.reply);
                 },
                 [&](const NeedList& n) {
                   ids_to_pb(n.service_ids, pb.mutable_need_list());
                   for (uint32_t c : n.counts) pb.mutable_need_list()->add_counts(c);
                 },
                 [&](const HaveList& h) { ids_to_pb(h.service_ids, pb.mutable_have_list()); },
                 [&](const SwapClose& c) {
                   pb.mutable_close()->set_final(c.final);
                   pb.mutable_close()->set_reason(c.reason);
                 },
                 [&](const SwapCheckpoint& c) { checkpoint_to_pb(c, pb.mutable_checkpoint()); },
                 [&](const SwapEvidence& e) { evidence_to_pb(e, pb.mutable_evidence()); },
                 [&](const SwapReceipts& b) {
                   auto* out = pb.mutable_receipts();
                   for (const auto& r : b.receipts) receipt_to_pb(r, out->add_receipts());
                 },
                 [&](const SwapInitRequest& r) {
                   pb.mutable_init_request()->set_service_id(from_bytes(r.service_id));
                   pb.mutable_init_request()->set_request_id(r.request_id);
                   if (!r.descriptor.empty())
                     pb.mutable_init_request()->set_descriptor(r.descriptor);
                 },
                 [&](const SwapInitResult& r) {
                   pb.mutable_init_result()->set_request_id(r.request_id);
                   pb.mutable_init_result()->set_hosting(r.hosting);
                   pb.mutable_init_result()->set_reason(r.reason);
                   pb.mutable_init_result()->set_service_id(from_bytes(r.service_id));
                 },
             },
             m);
  return serialize(pb);
}

Bytes encode(const InferClientMessage& m) {
  v1::InferClientMessage pb;
  std::visit(Overloaded{
                 [&](const InferRequest& r) { request_to_pb(r, pb.mutable_request()); },
                 [&](const InferCancel& c) { pb.mutable_cancel()->set_request_id(c.request_id); },
                 [&](const Receipt& r) { receipt_to_pb(r, pb.mutable_receipt()); },
             },
             m);
  return serialize(pb);
}

Bytes encode(const InferServerMessage& m) {
  v1::InferServerMessage pb;
  progress_to_pb(std::get<InferProgress>(m), pb.mutable_progress());
  return serialize(pb);
}

Result<SwapMessage> decode_swap(ByteView payload, const DecodeLimits& limits) {
  v1::SwapMessage pb;
  IDN_RETURN_IF_ERROR(parse(pb, payload, "swap message"));
  switch (pb.body_case()) {
    case v1::SwapMessage::kOpen: {
      const auto& l = pb.open().ledger();
      return SwapMessage{
          SwapOpen{{l.debt(), l.credit(), l.sequence(), l.updated_unix_ms()}, pb.open().reply()}};
    }
    case v1::SwapMessage::kNeedList: {
      IDN_ASSIGN_OR_RETURN(auto ids, ids_from_pb(pb.need_list(), "need_list", limits));
      const auto& counts = pb.need_list().counts();
      if (!counts.empty() && static_cast<size_t>(counts.size()) != ids.size()) {
        return bad(
            fmt::format("need_list has {} counts for {} service IDs", counts.size(), ids.size()));
      }
      for (uint32_t c : counts) {
        if (c == 0 || c > kMaxNeedCount)
          return bad(fmt::format("need_list count {} is outside 1..{}", c, kMaxNeedCount));
      }
      return SwapMessage{
          NeedList{std::move(ids), std::vector<uint32_t>(counts.begin(), counts.end())}};
    }
    case v1::SwapMessage::kHaveList: {
      IDN_ASSIGN_OR_RETURN(auto ids, ids_from_pb(pb.have_list(), "have_list", limits));
      return SwapMessage{HaveList{std::move(ids)}};
    }
    case v1::SwapMessage::kClose:
      IDN_RETURN_IF_ERROR(check_text(pb.close().reason(), "close.reason", limits));
      return SwapMessage{SwapClose{pb.close().final(), pb.close().reason()}};
    case v1::SwapMessage::kCheckpoint: {
      IDN_ASSIGN_OR_RETURN(auto c, checkpoint_from_pb(pb.checkpoint(), limits));
      return SwapMessage{std::move(c)};
    }
    case v1::SwapMessage::kEvidence: {
      IDN_ASSIGN_OR_RETURN(auto e, evidence_from_pb(pb.evidence(), limits));
      return SwapMessage{std::move(e)};
    }
    case v1::SwapMessage::kReceipts: {
      IDN_ASSIGN_OR_RETURN(auto b, receipts_from_pb(pb.receipts(), limits));
      return SwapMessage{std::move(b)};
    }
    case v1::SwapMessage::kInitRequest: {
      const auto& r = pb.init_request();
      if (r.descriptor().size() > limits.max_descriptor_bytes) {
        return bad(fmt::format("init_request.descriptor is {} bytes, limit {}",
                               r.descriptor().size(), limits.max_descriptor_bytes));
      }
      // Without a descriptor the service ID is what names the service.
      IDN_RETURN_IF_ERROR(
          check_id(r.service_id(), "init_request.service_id", limits, !r.descriptor().empty()));
      return SwapMessage{
          SwapInitRequest{to_bytes_field(r.service_id()), r.request_id(), r.descriptor()}};
    }
    case v1::SwapMessage::kInitResult: {
      const auto& r = pb.init_result();
      IDN_RETURN_IF_ERROR(check_text(r.reason(), "init_result.reason", limits));
      IDN_RETURN_IF_ERROR(check_id(r.service_id(), "init_result.service_id", limits, true));
      return SwapMessage{
          SwapInitResult{r.request_id(), r.hosting(), r.reason(), to_bytes_field(r.service_id())}};
    }
    case v1::SwapMessage::BODY_NOT_SET:
      break;
  }
  return bad("swap message envelope is empty (unknown or missing body)");
}

Result<InferClientMessage> decode_infer_client(ByteView payload, const DecodeLimits& limits) {
  v1::InferClientMessage pb;
  IDN_RETURN_IF_ERROR(parse(pb, payload, "infer client message"));
  switch (pb.body_case()) {
    case v1::InferClientMessage::kRequest: {
      IDN_ASSIGN_OR_RETURN(auto r, request_from_pb(pb.request(), limits));
      return InferClientMessage{std::move(r)};
    }
    case v1::InferClientMessage::kCancel:
      return InferClientMessage{InferCancel{pb.cancel().request_id()}};
    case v1::InferClientMessage::kReceipt: {
      IDN_ASSIGN_OR_RETURN(auto r, receipt_from_pb(pb.receipt(), limits));
      return InferClientMessage{std::move(r)};
    }
    case v1::InferClientMessage::BODY_NOT_SET:
      break;
  }
  return bad("infer client envelope is empty (unknown or missing body)");
}

Result<InferServerMessage> decode_infer_server(ByteView payload, const DecodeLimits& limits) {
  v1::InferServerMessage pb;
  IDN_RETURN_IF_ERROR(parse(pb, payload, "infer server message"));
  if (pb.body_case() != v1::InferServerMessage::kProgress) {
    return bad("infer server envelope is empty (unknown or missing body)");
  }
  IDN_ASSIGN_OR_RETURN(auto p, progress_from_pb(pb.progress(), limits));
  return InferServerMessage{std::move(p)};
}

std::string_view message_name(const SwapMessage& m) {
  static constexpr std::string_view kNames[] = {"open",     "need_list",    "have_list",
                                                "close",    "checkpoint",   "evidence",
                                                "receipts", "init_request", "init_result"};
  return kNames[m.index()];
}

std::string_view message_name(const InferClientMessage& m) {
  static constexpr std::string_view kNames[] = {"infer_request", "cancel", "receipt"};
  return kNames[m.index()];
}

std::string_view message_name(const InferServerMessage& m) {
  return "infer_progress";
}

}  // namespace idn::protocol
