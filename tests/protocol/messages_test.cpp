#include "protocol/messages.h"

#include <gtest/gtest.h>

#include "proto/idn_infer.pb.h"
#include "proto/idn_swap.pb.h"

namespace idn::protocol {
namespace {

Bytes id(uint8_t tag) {
  return Bytes{0x12, 0x20, tag, 1, 2, 3};
}

core::Tensor sample_tensor() {
  float v[] = {0.5f, -1.0f, 2.0f, 3.25f, 0.0f, 1.0f};
  return core::Tensor::f32({1, 2, 3}, v);
}

InferRequest sample_request() {
  InferRequest r;
  r.request_id = 0xFFFF'FFFF'FFFF'FFF0ull;
  r.service_id = id(7);
  r.input = sample_tensor();
  r.exit_rule = {ExitCriterion::kEntropy, 0.25f};
  r.deadline_ms = 1500;
  r.start_stage = 1;
  r.stop_after_stage = 2;
  return r;
}

template <class M, class F>
void expect_round_trip(const M& m, F decode) {
  Bytes wire = encode(m);
  auto back = decode(ByteView(wire), DecodeLimits{});
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, m);
}

TEST(Messages, EverySwapMessageRoundTrips) {
  expect_round_trip(SwapMessage{SwapOpen{{10, 20, 3, 1700000000000}, true}}, decode_swap);
  expect_round_trip(SwapMessage{SwapOpen{}}, decode_swap);
  expect_round_trip(SwapMessage{NeedList{{id(1), id(2)}}}, decode_swap);
  expect_round_trip(SwapMessage{NeedList{}}, decode_swap);
  expect_round_trip(SwapMessage{NeedList{{id(1), id(2)}, {7, kMaxNeedCount}}}, decode_swap);
  expect_round_trip(SwapMessage{HaveList{{id(3)}}}, decode_swap);
  expect_round_trip(SwapMessage{SwapClose{true, "shutting down"}}, decode_swap);
  expect_round_trip(SwapMessage{SwapClose{false, ""}}, decode_swap);
  SwapCheckpoint c{id(1), id(2), 1000, 20, 7, 1700000000000, Bytes(64, 0xAA), Bytes(64, 0xBB)};
  expect_round_trip(SwapMessage{c}, decode_swap);
  SwapCheckpoint half = c;
  half.sig2.clear();  // a proposal, signed by one side
  expect_round_trip(SwapMessage{half}, decode_swap);
  Receipt r{42, id(9), 5000, id(1), id(2), 1700000000001, {}};
  expect_round_trip(SwapMessage{SwapEvidence{c, {{r, 8}, {r, 9}}}}, decode_swap);
  expect_round_trip(SwapMessage{SwapEvidence{std::nullopt, {{r, 1}}}}, decode_swap);
  expect_round_trip(SwapMessage{SwapEvidence{}}, decode_swap);
  Receipt other{43, id(9), 7000, id(1), id(2), 1700000000002, {}};
  expect_round_trip(SwapMessage{SwapReceipts{{r, other}}}, decode_swap);
  expect_round_trip(SwapMessage{SwapReceipts{}}, decode_swap);
  expect_round_trip(SwapMessage{SwapInitRequest{id(4), 77}}, decode_swap);
  expect_round_trip(SwapMessage{SwapInitResult{77, true, ""}}, decode_swap);
  expect_round_trip(SwapMessage{SwapInitResult{78, false, "at capacity"}}, decode_swap);
  // initModel from a descriptor: the ID may be left out; the answer names the service.
  expect_round_trip(SwapMessage{SwapInitRequest{{}, 79, R"({"name": "x"})"}}, decode_swap);
  expect_round_trip(SwapMessage{SwapInitRequest{id(4), 80, "{}"}}, decode_swap);
  expect_round_trip(SwapMessage{SwapInitResult{79, true, "", id(4)}}, decode_swap);
}

TEST(Messages, InitRequestsAndResultsAreChecked) {
  // A service ID is a multihash of bounded size, and present.
  EXPECT_EQ(decode_swap(encode(SwapMessage{SwapInitRequest{Bytes(200, 1), 1}})).status().code(),
            Code::kPeerMisbehaved);
  EXPECT_EQ(decode_swap(encode(SwapMessage{SwapInitRequest{Bytes{}, 1}})).status().code(),
            Code::kPeerMisbehaved);
  DecodeLimits limits;
  limits.max_text_bytes = 8;
  EXPECT_EQ(decode_swap(encode(SwapMessage{SwapInitResult{1, false, std::string(9, 'x')}}), limits)
                .status()
                .code(),
            Code::kPeerMisbehaved);
  EXPECT_EQ(message_name(SwapMessage{SwapInitResult{}}), "init_result");
  // A descriptor is bounded; the ID it comes with (or the answer's) is bounded too.
  limits.max_descriptor_bytes = 16;
  auto big = decode_swap(encode(SwapMessage{SwapInitRequest{{}, 1, std::string(17, ' ')}}), limits);
  EXPECT_EQ(big.status().code(), Code::kPeerMisbehaved);
  EXPECT_NE(big.status().message().find("init_request.descriptor"), std::string::npos);
  EXPECT_TRUE(
      decode_swap(encode(SwapMessage{SwapInitRequest{{}, 1, std::string(16, ' ')}}), limits).ok());
  EXPECT_EQ(
      decode_swap(encode(SwapMessage{SwapInitRequest{Bytes(200, 1), 1, "{}"}})).status().code(),
      Code::kPeerMisbehaved);
  EXPECT_EQ(
      decode_swap(encode(SwapMessage{SwapInitResult{1, true, "", Bytes(200, 1)}})).status().code(),
      Code::kPeerMisbehaved);
}

TEST(Messages, EvidenceAndCheckpointsAreBounded) {
  Receipt r{42, id(9), 5000, id(1), id(2), 1700000000001, {}};
  SwapEvidence e;
  for (uint64_t i = 0; i < 11; ++i) e.receipts.push_back({r, i});
  DecodeLimits limits;
  limits.max_evidence_receipts = 10;
  EXPECT_EQ(decode_swap(encode(SwapMessage{e}), limits).status().code(), Code::kPeerMisbehaved);
  limits.max_evidence_receipts = 11;
  EXPECT_TRUE(decode_swap(encode(SwapMessage{e}), limits).ok());

  SwapReceipts batch;
  for (uint64_t i = 0; i < 11; ++i) {
    batch.receipts.push_back(r);
    batch.receipts.back().request_id = i;
  }
  limits.max_batch_receipts = 10;
  EXPECT_EQ(decode_swap(encode(SwapMessage{batch}), limits).status().code(), Code::kPeerMisbehaved);
  limits.max_batch_receipts = 11;
  EXPECT_TRUE(decode_swap(encode(SwapMessage{batch}), limits).ok());
  batch.receipts[3].server = Bytes(200, 7);  // every receipt in a batch is checked
  EXPECT_EQ(decode_swap(encode(SwapMessage{batch}), limits).status().code(), Code::kPeerMisbehaved);

  SwapCheckpoint c{id(1), id(2), 1, 2, 3, 4, Bytes(200, 1), {}};
  EXPECT_EQ(decode_swap(encode(SwapMessage{c})).status().code(), Code::kPeerMisbehaved);
  c.sig1 = Bytes(64, 1);
  c.node2.clear();  // a checkpoint names both members
  EXPECT_EQ(decode_swap(encode(SwapMessage{c})).status().code(), Code::kPeerMisbehaved);
}

TEST(Messages, EveryInferMessageRoundTrips) {
  expect_round_trip(InferClientMessage{sample_request()}, decode_infer_client);
  InferRequest plain = sample_request();
  plain.stop_after_stage.reset();
  plain.start_stage = 0;
  expect_round_trip(InferClientMessage{plain}, decode_infer_client);
  expect_round_trip(InferClientMessage{InferCancel{42}}, decode_infer_client);
  Receipt rc{42, id(7), 123456789, id(8), id(9), 1700000000123, Bytes(64, 0xAB)};
  expect_round_trip(InferClientMessage{rc}, decode_infer_client);

  InferProgress p;
  p.request_id = 42;
  p.exit_index = 1;
  p.output = sample_tensor();
  p.confidence = 0.9f;
  p.entropy = 0.1f;
  p.operations = 1'000'000;
  p.final = true;
  expect_round_trip(InferServerMessage{p}, decode_infer_server);

  InferProgress busy;
  busy.request_id = 43;
  busy.final = true;
  busy.error = InferError::kBusy;
  busy.error_message = "queue full";
  busy.retry_after_ms = 250;
  expect_round_trip(InferServerMessage{busy}, decode_infer_server);
  EXPECT_TRUE(busy.busy());
}

// A DDNN cloud request: the present devices' bit-packed features, with the views they came from.
InferRequest multi_input_request() {
  InferRequest r;
  r.request_id = 9;
  r.service_id = id(5);
  core::Tensor bits;
  bits.dtype = core::DType::kU8;
  bits.shape = {3};
  bits.bytes = {0xA5, 0x0F, 0x01};
  for (int i = 0; i < 2; ++i) r.inputs.push_back(bits);
  r.input_views = {1, 4};
  r.sample_ref = 17;
  return r;
}

TEST(Messages, SeveralInputsAndASampleReferenceRoundTrip) {
  expect_round_trip(InferClientMessage{multi_input_request()}, decode_infer_client);
  InferRequest device;  // a device peer owns its camera: the request names the frame only
  device.request_id = 3;
  device.service_id = id(6);
  device.sample_ref = 0;
  device.stop_after_stage = 0;
  EXPECT_FALSE(device.has_input());
  expect_round_trip(InferClientMessage{device}, decode_infer_client);
}

TEST(Messages, MultiInputRequestsThatLieAreRejected) {
  auto rejected = [](const InferRequest& r, const DecodeLimits& limits = {}) {
    auto d = decode_infer_client(encode(InferClientMessage{r}), limits);
    return !d.ok() && d.status().code() == Code::kPeerMisbehaved;
  };
  InferRequest r = multi_input_request();
  r.input_views = {1};  // fewer views than inputs
  EXPECT_TRUE(rejected(r));
  r.input_views = {4, 1};  // not increasing
  EXPECT_TRUE(rejected(r));
  r.input_views = {2, 2};
  EXPECT_TRUE(rejected(r));
  r.input_views = {1, 64};  // beyond a 64-bit presence mask
  EXPECT_TRUE(rejected(r));
  r = multi_input_request();
  r.input = sample_tensor();  // both input and inputs
  EXPECT_TRUE(rejected(r));
  r = multi_input_request();
  DecodeLimits two;
  two.max_inputs = 1;
  EXPECT_TRUE(rejected(r, two));
  r.inputs[1].bytes.pop_back();  // bytes that do not match the shape
  EXPECT_TRUE(rejected(r));
  InferRequest none;  // no input, no inputs, no sample
  none.service_id = id(1);
  EXPECT_TRUE(rejected(none));
}

// An old peer's request (fields 1-7, before inputs / input_views / sample_ref existed) decodes
// with the new fields empty, and a request that uses none of them encodes to exactly the bytes
// an old peer sends, so old peers keep working both ways.
TEST(Messages, OldFormatRequestsDecodeAndEncodeUnchanged) {
  v1::InferClientMessage pb;
  auto* req = pb.mutable_request();
  req->set_request_id(0xFFFF'FFFF'FFFF'FFF0ull);
  req->set_service_id(std::string("\x12\x20\x07\x01\x02\x03", 6));
  req->mutable_input()->set_dtype(v1::DTYPE_F32);
  for (int64_t d : {1, 2, 3}) req->mutable_input()->add_shape(d);
  const core::Tensor t = sample_tensor();
  req->mutable_input()->set_data(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
  req->mutable_exit_rule()->set_criterion(v1::EXIT_CRITERION_ENTROPY);
  req->mutable_exit_rule()->set_threshold(0.25f);
  req->set_deadline_ms(1500);
  req->set_start_stage(1);
  req->set_stop_after_stage(2);
  const std::string old_wire = pb.SerializeAsString();
  auto back = decode_infer_client(as_bytes(old_wire));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  const auto& r = std::get<InferRequest>(*back);
  EXPECT_EQ(r, sample_request());
  EXPECT_TRUE(r.inputs.empty());
  EXPECT_TRUE(r.input_views.empty());
  EXPECT_FALSE(r.sample_ref);
  const Bytes ours = encode(InferClientMessage{sample_request()});
  EXPECT_EQ(std::string(ours.begin(), ours.end()), old_wire);
}

TEST(Messages, AllDTypesSurvive) {
  for (int d = 0; d <= static_cast<int>(core::DType::kBool); ++d) {
    InferRequest r = sample_request();
    r.input = core::Tensor::zeros(static_cast<core::DType>(d), {2, 3});
    expect_round_trip(InferClientMessage{r}, decode_infer_client);
  }
}

TEST(Messages, EmptyEnvelopeIsPeerMisbehaviour) {
  Bytes empty;
  EXPECT_EQ(decode_swap(empty).status().code(), Code::kPeerMisbehaved);
  EXPECT_EQ(decode_infer_client(empty).status().code(), Code::kPeerMisbehaved);
  EXPECT_EQ(decode_infer_server(empty).status().code(), Code::kPeerMisbehaved);
}

TEST(Messages, GarbageIsRejectedNotCrashed) {
  Bytes junk = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01};
  EXPECT_FALSE(decode_swap(junk).ok());
  EXPECT_FALSE(decode_infer_client(junk).ok());
  EXPECT_FALSE(decode_infer_server(junk).ok());
  // Truncating a valid message at every length never crashes and never yields a bogus request.
  Bytes wire = encode(InferClientMessage{sample_request()});
  for (size_t n = 0; n < wire.size(); ++n) {
    auto r = decode_infer_client(ByteView(wire.data(), n));
    if (r.ok()) {
      EXPECT_NE(std::get_if<InferRequest>(&*r), nullptr);
    }
  }
}

TEST(Messages, TensorWhoseBytesDoNotMatchShapeIsRejected) {
  v1::InferClientMessage pb;
  auto* req = pb.mutable_request();
  req->set_service_id("svc");
  req->mutable_input()->set_dtype(v1::DTYPE_F32);
  req->mutable_input()->add_shape(4);
  req->mutable_input()->set_data(std::string(15, '\0'));  // 4 floats need 16
  std::string wire = pb.SerializeAsString();
  auto r = decode_infer_client(as_bytes(wire));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kPeerMisbehaved);
  EXPECT_NE(r.status().message().find("infer_request.input"), std::string::npos);
}

TEST(Messages, UnknownEnumValuesAreRejected) {
  v1::InferClientMessage pb;
  auto* req = pb.mutable_request();
  req->set_service_id("svc");
  req->mutable_input()->set_dtype(static_cast<v1::DType>(77));
  EXPECT_FALSE(decode_infer_client(as_bytes(pb.SerializeAsString())).ok());

  req->mutable_input()->set_dtype(v1::DTYPE_U8);
  req->mutable_input()->set_data(std::string(1, '\x07'));  // a U8 scalar
  req->mutable_exit_rule()->set_criterion(static_cast<v1::ExitCriterion>(9));
  EXPECT_FALSE(decode_infer_client(as_bytes(pb.SerializeAsString())).ok());

  req->mutable_exit_rule()->set_criterion(v1::EXIT_CRITERION_CONFIDENCE);
  EXPECT_TRUE(decode_infer_client(as_bytes(pb.SerializeAsString())).ok());

  v1::InferServerMessage sp;
  sp.mutable_progress()->set_error(static_cast<v1::InferError>(100));
  EXPECT_FALSE(decode_infer_server(as_bytes(sp.SerializeAsString())).ok());
}

TEST(Messages, KeepAliveFieldsRoundTripAndALaterRequestMayLeaveOutWhatItInherits) {
  InferRequest first = sample_request();
  first.keep_open = true;
  expect_round_trip(InferClientMessage{first}, decode_infer_client);
  // A later request on a kept stream: no service ID, no exit rule, no deadline on the wire.
  InferRequest later = sample_request();
  later.service_id.clear();
  later.exit_rule = {};
  later.exit_rule_inherited = true;
  later.deadline_ms = 0;
  expect_round_trip(InferClientMessage{later}, decode_infer_client);
  // Smaller by the service ID field, the exit rule field (2 + 7 bytes) and the deadline (3).
  InferRequest full = sample_request();
  EXPECT_EQ(encode(InferClientMessage{later}).size() + (2 + full.service_id.size()) + 9 + 3,
            encode(InferClientMessage{full}).size());
  // A request that carries its exit rule says so, even the default one.
  InferRequest defaulted = sample_request();
  defaulted.exit_rule = {};
  auto back = decode_infer_client(encode(InferClientMessage{defaulted}));
  ASSERT_TRUE(back.ok());
  EXPECT_FALSE(std::get<InferRequest>(*back).exit_rule_inherited);

  InferProgress p;
  p.request_id = 3;
  p.output = sample_tensor();
  p.final = true;
  p.stream_open = true;
  expect_round_trip(InferServerMessage{p}, decode_infer_server);
}

TEST(Messages, RequestWithoutInputIsRejected) {
  v1::InferClientMessage pb;
  pb.mutable_request()->set_service_id("svc");
  EXPECT_FALSE(decode_infer_client(as_bytes(pb.SerializeAsString())).ok());
}

TEST(Messages, ThresholdOutsideUnitIntervalAndInvertedStagesAreRejected) {
  InferRequest r = sample_request();
  r.exit_rule.threshold = 1.5f;
  EXPECT_FALSE(decode_infer_client(encode(InferClientMessage{r})).ok());
  r = sample_request();
  r.start_stage = 3;
  r.stop_after_stage = 1;
  EXPECT_FALSE(decode_infer_client(encode(InferClientMessage{r})).ok());
}

TEST(Messages, ListsLongerThanTheLimitAreRejected) {
  NeedList n;
  for (int i = 0; i < 11; ++i) n.service_ids.push_back(id(static_cast<uint8_t>(i)));
  DecodeLimits limits;
  limits.max_list_entries = 10;
  EXPECT_EQ(decode_swap(encode(SwapMessage{n}), limits).status().code(), Code::kPeerMisbehaved);
  limits.max_list_entries = 11;
  EXPECT_TRUE(decode_swap(encode(SwapMessage{n}), limits).ok());

  NeedList big_id{{Bytes(200, 1)}};
  EXPECT_FALSE(decode_swap(encode(SwapMessage{big_id})).ok());
}

TEST(Messages, NeedListCountsGoWithTheirServices) {
  // An older peer sends no counts: 1 each.
  auto old = decode_swap(encode(SwapMessage{NeedList{{id(1), id(2)}}}));
  ASSERT_TRUE(old.ok());
  const auto& n = std::get<NeedList>(*old);
  EXPECT_TRUE(n.counts.empty());
  EXPECT_EQ(n.count(0), 1u);
  EXPECT_EQ(n.count(1), 1u);
  auto with = decode_swap(encode(SwapMessage{NeedList{{id(1), id(2)}, {3, 40}}}));
  ASSERT_TRUE(with.ok());
  EXPECT_EQ(std::get<NeedList>(*with).count(1), 40u);

  // Counts that do not line up with the IDs, a zero, or more than kMaxNeedCount: refused.
  auto refused = [](std::vector<uint32_t> counts) {
    v1::SwapMessage pb;
    for (uint8_t t : {1, 2}) {
      Bytes b = id(t);
      pb.mutable_need_list()->add_service_ids(std::string(b.begin(), b.end()));
    }
    for (uint32_t c : counts) pb.mutable_need_list()->add_counts(c);
    const std::string wire = pb.SerializeAsString();
    auto r = decode_swap(ByteView(reinterpret_cast<const uint8_t*>(wire.data()), wire.size()));
    return r.ok() ? std::string() : r.status().message();
  };
  EXPECT_EQ(refused({1, 2}), "");
  EXPECT_NE(refused({1}).find("1 counts for 2 service IDs"), std::string::npos) << refused({1});
  EXPECT_NE(refused({1, 2, 3}).find("3 counts for 2"), std::string::npos);
  EXPECT_NE(refused({0, 2}).find("count 0 is outside"), std::string::npos);
  EXPECT_NE(refused({1, kMaxNeedCount + 1}).find("outside 1.."), std::string::npos);
}

TEST(Messages, ProgressWithoutOutputIsOnlyValidForErrors) {
  InferProgress p;
  p.request_id = 1;
  p.final = true;
  EXPECT_FALSE(decode_infer_server(encode(InferServerMessage{p})).ok());
}

TEST(Messages, ReceiptSigningBytesCoverEveryFieldButTheSignature) {
  Receipt a{42, id(7), 1000, id(8), id(9), 1700000000123, Bytes(64, 0xAB)};
  Bytes base = receipt_signing_bytes(a);
  Receipt b = a;
  b.signature = Bytes(64, 0xCD);
  EXPECT_EQ(receipt_signing_bytes(b), base);
  auto differs = [&](auto mutate) {
    Receipt c = a;
    mutate(c);
    return receipt_signing_bytes(c) != base;
  };
  EXPECT_TRUE(differs([](Receipt& c) { c.request_id++; }));
  EXPECT_TRUE(differs([](Receipt& c) { c.service_id.push_back(0); }));
  EXPECT_TRUE(differs([](Receipt& c) { c.operations++; }));
  EXPECT_TRUE(differs([](Receipt& c) { c.server = id(1); }));
  EXPECT_TRUE(differs([](Receipt& c) { c.signer = id(1); }));
  EXPECT_TRUE(differs([](Receipt& c) { c.unix_ms++; }));
  // Field boundaries are unambiguous: moving a byte from one id to the next changes the bytes.
  Receipt d = a;
  d.server = Bytes{1, 2};
  d.signer = Bytes{3};
  Receipt e = a;
  e.server = Bytes{1};
  e.signer = Bytes{2, 3};
  EXPECT_NE(receipt_signing_bytes(d), receipt_signing_bytes(e));
}

TEST(Messages, AnUnsignedReceiptRoundTripsButOtherIdsMayNotBeEmpty) {
  Receipt r{42, id(7), 1000, id(8), id(9), 1700000000123, {}};
  auto back = decode_infer_client(encode(InferClientMessage{r}));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(std::get<Receipt>(*back), r);
  Receipt no_server = r;
  no_server.server.clear();
  auto bad = decode_infer_client(encode(InferClientMessage{no_server}));
  EXPECT_EQ(bad.status().code(), Code::kPeerMisbehaved);
  Receipt big_signature = r;
  big_signature.signature = Bytes(200, 1);
  EXPECT_FALSE(decode_infer_client(encode(InferClientMessage{big_signature})).ok());
}

TEST(Messages, NamesAreStable) {
  EXPECT_EQ(message_name(SwapMessage{HaveList{}}), "have_list");
  EXPECT_EQ(message_name(SwapMessage{SwapCheckpoint{}}), "checkpoint");
  EXPECT_EQ(message_name(SwapMessage{SwapEvidence{}}), "evidence");
  EXPECT_EQ(message_name(InferClientMessage{InferCancel{}}), "cancel");
  EXPECT_EQ(message_name(InferServerMessage{InferProgress{}}), "infer_progress");
  EXPECT_EQ(infer_error_name(InferError::kBusy), "busy");
  EXPECT_EQ(exit_criterion_name(ExitCriterion::kConfidence), "confidence");
}

}  // namespace
}  // namespace idn::protocol
