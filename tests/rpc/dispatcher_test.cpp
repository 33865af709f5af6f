#include "rpc/dispatcher.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "core/varint.h"
#include "rpc/memory_stream.h"

namespace idn::rpc {
namespace {

using protocol::LedgerView;

namespace asio = p2p::asio;
using p2p::awaitable;
using testing::memory_stream_pair;

identity::PeerId peer_id(uint8_t seed) {
  Bytes s(32, seed);
  return identity::PeerId::from_public_key(identity::KeyPair::from_seed(s)->public_key());
}

core::Tensor tensor() {
  float v[] = {1, 2, 3};
  return core::Tensor::f32({3}, v);
}

// Runs `body` as a coroutine on a fresh io_context until everything finishes.
void run(asio::io_context& ioc, std::function<awaitable<void>()> body) {
  bool finished = false;
  asio::co_spawn(
      ioc,
      [&]() -> awaitable<void> {
        co_await body();
        finished = true;
      },
      asio::detached);
  ioc.run();
  ASSERT_TRUE(finished);
}

TEST(Dispatcher, SwapMessagesReachTheirHandlersAndRepliesComeBack) {
  asio::io_context ioc;
  Dispatcher d(ioc.get_executor());
  std::vector<std::string> seen;
  identity::PeerId alice = peer_id(1);
  d.on_open([&](SwapContext& ctx, const SwapOpen& o) -> awaitable<Status> {
    EXPECT_EQ(ctx.peer(), alice);
    seen.push_back("open");
    SwapMessage reply{SwapOpen{{o.ledger.credit, o.ledger.debt, 1, 2}, true}};
    co_return co_await ctx.reply(reply);
  });
  d.on_need_list([&](SwapContext&, const NeedList& n) -> awaitable<Status> {
    seen.push_back("need:" + std::to_string(n.service_ids.size()));
    co_return Status::ok();
  });
  d.on_have_list([&](SwapContext&, const HaveList& h) -> awaitable<Status> {
    seen.push_back("have:" + std::to_string(h.service_ids.size()));
    co_return Status::ok();
  });
  d.on_close([&](SwapContext&, const SwapClose& c) -> awaitable<Status> {
    seen.push_back(c.final ? "close:final" : "close");
    co_return Status::ok();
  });
  run(ioc, [&]() -> awaitable<void> {
    auto pipe = memory_stream_pair(ioc.get_executor());
    auto client = pipe.first;
    auto server = pipe.second;
    asio::co_spawn(ioc, d.serve_swap(server, alice), asio::detached);
    SwapStream s(client, swap_io_limits());
    SwapMessage open{SwapOpen{{5, 7, 0, 0}, false}};
    EXPECT_TRUE((co_await s.send(open)).is_ok());
    auto reply = co_await s.receive();
    EXPECT_TRUE(reply.ok());
    if (reply.ok()) {
      auto* o = std::get_if<SwapOpen>(&*reply);
      EXPECT_NE(o, nullptr);
      if (o) {
        EXPECT_TRUE(o->reply);
        EXPECT_EQ(o->ledger.debt, 7u);
        EXPECT_EQ(o->ledger.credit, 5u);
      }
    }
    // GCC 12 rejects or miscompiles temporaries inside a co_await expression: name them.
    NeedList need{{Bytes{1, 2}, Bytes{3}}};
    HaveList have{{Bytes{4}}};
    SwapMessage m1{need}, m2{have}, m3{SwapClose{true, "bye"}};
    co_await s.send(m1);
    co_await s.send(m2);
    co_await s.send(m3);
    co_await s.close_write();
    auto end = co_await s.receive();
    EXPECT_EQ(end.status().code(), Code::kNotFound);  // the server closed its side cleanly
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"open", "need:2", "have:1", "close:final"}));
  EXPECT_EQ(d.stats().swap_messages, 4u);
  EXPECT_EQ(d.stats().stream_errors, 0u);
}

TEST(Dispatcher, MalformedSwapMessageResetsTheStreamAndIsReported) {
  asio::io_context ioc;
  Dispatcher d(ioc.get_executor());
  Status reported;
  d.on_error([&](const identity::PeerId&, std::string_view proto, const Status& st) {
    EXPECT_EQ(proto, kSwapProtocolId);
    reported = st;
  });
  run(ioc, [&]() -> awaitable<void> {
    auto pipe = memory_stream_pair(ioc.get_executor());
    auto client = pipe.first;
    auto server = pipe.second;
    asio::co_spawn(ioc, d.serve_swap(server, peer_id(2)), asio::detached);
    Bytes empty_envelope;
    co_await p2p::write_length_prefixed(*client, empty_envelope);
    auto r = co_await read_swap_message(*client, swap_io_limits());
    EXPECT_FALSE(r.ok());
  });
  EXPECT_EQ(reported.code(), Code::kPeerMisbehaved);
  EXPECT_EQ(d.stats().stream_errors, 1u);
}

TEST(Dispatcher, OversizedFrameIsRefusedBeforeBuffering) {
  asio::io_context ioc;
  IoLimits small{64, {}};
  Dispatcher d(ioc.get_executor(), small, small);
  Status reported;
  d.on_error([&](const identity::PeerId&, std::string_view, const Status& st) { reported = st; });
  run(ioc, [&]() -> awaitable<void> {
    auto pipe = memory_stream_pair(ioc.get_executor());
    auto client = pipe.first;
    auto server = pipe.second;
    asio::co_spawn(ioc, d.serve_infer(server, peer_id(2)), asio::detached);
    // Only the header of a 1 MiB frame: the server must refuse without waiting for the body.
    Bytes header = core::encode_uvarint(1 << 20);
    co_await client->write(header);
    auto r = co_await read_infer_server_message(*client, infer_io_limits());
    EXPECT_FALSE(r.ok());
  });
  EXPECT_EQ(reported.code(), Code::kLimitExceeded);
}

TEST(Dispatcher, WritingAMessageOverTheLimitFailsLocally) {
  asio::io_context ioc;
  run(ioc, [&]() -> awaitable<void> {
    auto pipe = memory_stream_pair(ioc.get_executor());
    auto client = pipe.first;
    auto server = pipe.second;
    NeedList big;
    for (int i = 0; i < 100; ++i) big.service_ids.push_back(Bytes(32, 1));
    SwapMessage m{big};
    Status st = co_await write_message(*client, m, 100);
    EXPECT_EQ(st.code(), Code::kLimitExceeded);
  });
}

TEST(Dispatcher, InferRequestStreamsProgressThenFinalAndAcceptsAReceipt) {
  asio::io_context ioc;
  Dispatcher d(ioc.get_executor());
  identity::PeerId bob = peer_id(3);
  std::optional<Receipt> got_receipt;
  d.on_infer_request([&](InferContext& ctx) -> awaitable<void> {
    EXPECT_EQ(ctx.peer(), bob);
    EXPECT_EQ(ctx.request().service_id, (Bytes{9, 9}));
    for (uint32_t exit = 0; exit < 3; ++exit) {
      InferProgress p;
      p.exit_index = exit;
      p.output = ctx.request().input;
      p.confidence = 0.5f + 0.2f * exit;
      p.operations = 100 * (exit + 1);
      p.final = exit == 2;
      Status st = co_await ctx.send(p);
      EXPECT_TRUE(st.is_ok());
    }
    InferProgress late;
    Status after_final = co_await ctx.send(late);
    EXPECT_FALSE(after_final.is_ok());  // nothing after final
  });
  d.on_receipt([&](const identity::PeerId& from, const Receipt& r) -> awaitable<Status> {
    EXPECT_EQ(from, bob);
    got_receipt = r;
    co_return Status::ok();
  });
  std::vector<InferProgress> progress;
  run(ioc, [&]() -> awaitable<void> {
    auto pipe = memory_stream_pair(ioc.get_executor());
    auto client = pipe.first;
    auto server = pipe.second;
    asio::co_spawn(ioc, d.serve_infer(server, bob), asio::detached);
    InferClientStream s(client, infer_io_limits());
    InferRequest req;
    req.request_id = 77;
    req.service_id = {9, 9};
    req.input = tensor();
    InferClientMessage rm{req};
    co_await s.send(rm);
    for (;;) {
      auto m = co_await s.receive();
      if (!m.ok()) break;
      progress.push_back(std::get<InferProgress>(*m));
      if (progress.back().final) break;
    }
    // The server ends its side right after the final answer, while ours is still open (its
    // FIN travels with the answer instead of waiting for ours)...
    auto end = co_await s.receive();
    EXPECT_EQ(end.status().code(), Code::kNotFound);
    // ...and still reads what we send: a receipt.
    Receipt r{77, Bytes{9, 9}, 300, Bytes{1}, Bytes{2}, 1, Bytes(64, 5)};
    InferClientMessage receipt{r};
    co_await s.send(receipt);
    co_await s.close_write();
  });
  ASSERT_EQ(progress.size(), 3u);
  for (const auto& p : progress) EXPECT_EQ(p.request_id, 77u);  // stamped by the context
  EXPECT_TRUE(progress[2].final);
  EXPECT_EQ(progress[2].operations, 300u);
  ASSERT_TRUE(got_receipt.has_value());
  EXPECT_EQ(got_receipt->operations, 300u);
  EXPECT_EQ(d.stats().infer_requests, 1u);
  EXPECT_EQ(d.stats().receipts, 1u);
}

TEST(Dispatcher, CancelReachesARunningHandler) {
  asio::io_context ioc;
  Dispatcher d(ioc.get_executor());
  bool saw_cancel = false;
  d.on_infer_request([&](InferContext& ctx) -> awaitable<void> {
    InferProgress first;
    first.output = ctx.request().input;
    co_await ctx.send(first);
    // Waits for the requester's Cancel (no timer involved: the deadline is far away).
    auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
    saw_cancel = co_await ctx.wait_cancelled(deadline);
  });
  InferProgress last;
  run(ioc, [&]() -> awaitable<void> {
    auto pipe = memory_stream_pair(ioc.get_executor());
    auto client = pipe.first;
    auto server = pipe.second;
    asio::co_spawn(ioc, d.serve_infer(server, peer_id(4)), asio::detached);
    InferClientStream s(client, infer_io_limits());
    InferRequest req;
    req.request_id = 5;
    req.service_id = {1};
    req.input = tensor();
    InferClientMessage rm{req};
    co_await s.send(rm);
    auto first = co_await s.receive();
    EXPECT_TRUE(first.ok());
    InferClientMessage cancel{InferCancel{5}};
    co_await s.send(cancel);
    auto fin = co_await s.receive();
    EXPECT_TRUE(fin.ok());
    if (fin.ok()) last = std::get<InferProgress>(*fin);
    co_await s.close_write();
  });
  EXPECT_TRUE(saw_cancel);
  // The handler sent no final itself: the dispatcher closes the request as cancelled.
  EXPECT_TRUE(last.final);
  EXPECT_EQ(last.error, InferError::kCancelled);
}

TEST(Dispatcher, RequestWithoutAServiceGetsUnknownServiceAndSecondRequestIsAViolation) {
  asio::io_context ioc;
  Dispatcher d(ioc.get_executor());
  Status reported;
  d.on_error([&](const identity::PeerId&, std::string_view, const Status& st) { reported = st; });
  run(ioc, [&]() -> awaitable<void> {
    auto pipe = memory_stream_pair(ioc.get_executor());
    auto client = pipe.first;
    auto server = pipe.second;
    asio::co_spawn(ioc, d.serve_infer(server, peer_id(5)), asio::detached);
    InferClientStream s(client, infer_io_limits());
    InferRequest req;
    req.request_id = 1;
    req.service_id = {1};
    req.input = tensor();
    InferClientMessage rm{req};
    co_await s.send(rm);
    auto r = co_await s.receive();
    EXPECT_TRUE(r.ok());
    if (r.ok()) {
      EXPECT_EQ(std::get<InferProgress>(*r).error, InferError::kUnknownService);
      EXPECT_TRUE(std::get<InferProgress>(*r).final);
    }
    co_await s.send(rm);
    auto after = co_await s.receive();
    EXPECT_FALSE(after.ok());
  });
  EXPECT_EQ(reported.code(), Code::kPeerMisbehaved);
}

// ---- keep-alive infer streams ----

InferRequest keep_alive_request(uint64_t id) {
  InferRequest r;
  r.request_id = id;
  r.service_id = {9, 9};
  r.input = tensor();
  r.exit_rule = {protocol::ExitCriterion::kConfidence, 0.75f};
  r.deadline_ms = 700;
  r.keep_open = true;
  return r;
}

// A later request on a kept stream that leaves out everything it may inherit.
InferRequest follow_up(uint64_t id) {
  InferRequest r;
  r.request_id = id;
  r.input = tensor();
  r.exit_rule_inherited = true;
  return r;
}

// Sends `req` and reads up to its final answer (nullopt if the stream ended first).
awaitable<std::optional<InferProgress>> ask(InferClientStream& s, const InferRequest& req) {
  InferClientMessage m{req};
  Status st = co_await s.send(m);
  if (!st.is_ok()) co_return std::nullopt;
  for (;;) {
    auto r = co_await s.receive();
    if (!r.ok()) co_return std::nullopt;
    auto p = std::get<InferProgress>(*r);
    if (p.final) co_return p;
  }
}

// Answers every request at once with its input, final.
void answer_at_once(Dispatcher& d, std::vector<InferRequest>& seen) {
  d.on_infer_request([&](InferContext& ctx) -> awaitable<void> {
    seen.push_back(ctx.request());
    InferProgress p;
    p.output = ctx.request().input;
    p.operations = 10;
    p.final = true;
    co_await ctx.send(p);
  });
}

TEST(Dispatcher, KeepAliveStreamServesRequestsInOrderWithInheritedFields) {
  asio::io_context ioc;
  Dispatcher d(ioc.get_executor());
  std::vector<InferRequest> seen;
  answer_at_once(d, seen);
  std::vector<InferProgress> finals;
  Status end;
  run(ioc, [&]() -> awaitable<void> {
    auto pipe = memory_stream_pair(ioc.get_executor());
    asio::co_spawn(ioc, d.serve_infer(pipe.second, peer_id(6)), asio::detached);
    InferClientStream s(pipe.first, infer_io_limits());
    InferRequest second = follow_up(2), third = follow_up(3);
    third.deadline_ms = 90;  // its own, not the first request's
    third.exit_rule_inherited = false;
    third.exit_rule = {protocol::ExitCriterion::kEntropy, 0.25f};
    for (const InferRequest& r : {keep_alive_request(1), second, third}) {
      auto p = co_await ask(s, r);
      EXPECT_TRUE(p.has_value());
      if (p) finals.push_back(*p);
    }
    co_await s.close_write();
    auto e = co_await s.receive();
    end = e.status();
  });
  ASSERT_EQ(finals.size(), 3u);
  for (uint64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(finals[i].request_id, i + 1);
    EXPECT_TRUE(finals[i].stream_open);
  }
  EXPECT_EQ(end.code(), Code::kNotFound);  // our close ended the stream cleanly
  ASSERT_EQ(seen.size(), 3u);
  // Handlers see complete requests: what a later one left out is the first one's.
  for (const auto& r : seen) EXPECT_EQ(r.service_id, (Bytes{9, 9}));
  EXPECT_EQ(seen[1].exit_rule, (protocol::ExitRule{protocol::ExitCriterion::kConfidence, 0.75f}));
  EXPECT_FALSE(seen[1].exit_rule_inherited);
  EXPECT_EQ(seen[1].deadline_ms, 700u);
  EXPECT_EQ(seen[2].exit_rule, (protocol::ExitRule{protocol::ExitCriterion::kEntropy, 0.25f}));
  EXPECT_EQ(seen[2].deadline_ms, 90u);
  EXPECT_EQ(d.stats().infer_requests, 3u);
  EXPECT_EQ(d.stats().kept_requests, 2u);
  EXPECT_EQ(d.stats().stream_errors, 0u);
}

TEST(Dispatcher, WithoutKeepOpenTheAnswerKeepsNothingOpenAndASecondRequestIsAViolation) {
  asio::io_context ioc;
  Dispatcher d(ioc.get_executor());
  std::vector<InferRequest> seen;
  answer_at_once(d, seen);
  Status reported;
  d.on_error([&](const identity::PeerId&, std::string_view, const Status& st) { reported = st; });
  std::optional<InferProgress> first, second;
  Status end;
  run(ioc, [&]() -> awaitable<void> {
    auto pipe = memory_stream_pair(ioc.get_executor());
    asio::co_spawn(ioc, d.serve_infer(pipe.second, peer_id(6)), asio::detached);
    InferClientStream s(pipe.first, infer_io_limits());
    InferRequest old = keep_alive_request(1);
    old.keep_open = false;  // an older requester
    first = co_await ask(s, old);
    auto e = co_await s.receive();  // the server ended its side after the final answer
    end = e.status();
    InferRequest again = old;
    again.request_id = 2;
    second = co_await ask(s, again);
  });
  ASSERT_TRUE(first.has_value());
  EXPECT_FALSE(first->stream_open);
  EXPECT_EQ(end.code(), Code::kNotFound);
  EXPECT_FALSE(second.has_value());
  EXPECT_EQ(seen.size(), 1u);
  EXPECT_EQ(reported.code(), Code::kPeerMisbehaved);
  EXPECT_NE(reported.message().find("a second InferRequest on one stream"), std::string::npos);
}

TEST(Dispatcher, KeepAliveStopsAtTheRequestLimitAndARequestPastItIsAViolation) {
  asio::io_context ioc;
  Dispatcher d(ioc.get_executor());
  d.set_keep_alive({2, std::chrono::seconds(30)});
  std::vector<InferRequest> seen;
  answer_at_once(d, seen);
  Status reported;
  d.on_error([&](const identity::PeerId&, std::string_view, const Status& st) { reported = st; });
  std::optional<InferProgress> a, b, c;
  run(ioc, [&]() -> awaitable<void> {
    auto pipe = memory_stream_pair(ioc.get_executor());
    asio::co_spawn(ioc, d.serve_infer(pipe.second, peer_id(6)), asio::detached);
    InferClientStream s(pipe.first, infer_io_limits());
    a = co_await ask(s, keep_alive_request(1));
    b = co_await ask(s, follow_up(2));
    c = co_await ask(s, follow_up(3));  // b said the stream ends: a requester breaking that
  });
  ASSERT_TRUE(a && b);
  EXPECT_TRUE(a->stream_open);
  EXPECT_FALSE(b->stream_open);  // the limit's last request
  EXPECT_FALSE(c.has_value());
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_EQ(reported.code(), Code::kPeerMisbehaved);
}

TEST(Dispatcher, KeepAliveOffServesOneRequestPerStreamLikeAnOldServer) {
  asio::io_context ioc;
  Dispatcher d(ioc.get_executor());
  d.set_keep_alive({1, std::chrono::seconds(30)});
  std::vector<InferRequest> seen;
  answer_at_once(d, seen);
  std::optional<InferProgress> a;
  Status end;
  run(ioc, [&]() -> awaitable<void> {
    auto pipe = memory_stream_pair(ioc.get_executor());
    asio::co_spawn(ioc, d.serve_infer(pipe.second, peer_id(6)), asio::detached);
    InferClientStream s(pipe.first, infer_io_limits());
    a = co_await ask(s, keep_alive_request(1));
    auto e = co_await s.receive();
    end = e.status();
    co_await s.close_write();
  });
  ASSERT_TRUE(a.has_value());
  EXPECT_FALSE(a->stream_open);
  EXPECT_EQ(end.code(), Code::kNotFound);
  EXPECT_EQ(d.stats().stream_errors, 0u);
}

TEST(Dispatcher, ARequestBeforeThePreviousFinalAnswerIsAViolation) {
  asio::io_context ioc;
  Dispatcher d(ioc.get_executor());
  int started = 0;
  d.on_infer_request([&](InferContext& ctx) -> awaitable<void> {
    ++started;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
    co_await ctx.wait_cancelled(deadline);  // the stream's reset cancels it
  });
  Status reported;
  d.on_error([&](const identity::PeerId&, std::string_view, const Status& st) { reported = st; });
  run(ioc, [&]() -> awaitable<void> {
    auto pipe = memory_stream_pair(ioc.get_executor());
    asio::co_spawn(ioc, d.serve_infer(pipe.second, peer_id(6)), asio::detached);
    InferClientStream s(pipe.first, infer_io_limits());
    InferClientMessage one{keep_alive_request(1)}, two{follow_up(2)};
    co_await s.send(one);
    co_await s.send(two);
    auto r = co_await s.receive();
    while (r.ok()) r = co_await s.receive();
  });
  EXPECT_EQ(started, 1);
  EXPECT_EQ(reported.code(), Code::kPeerMisbehaved);
  EXPECT_NE(reported.message().find("before the previous request's final answer"),
            std::string::npos);
}

TEST(Dispatcher, CancelReachesTheSecondRequestOnAKeptStream) {
  asio::io_context ioc;
  Dispatcher d(ioc.get_executor());
  std::vector<uint64_t> cancelled;
  d.on_infer_request([&](InferContext& ctx) -> awaitable<void> {
    if (ctx.request().request_id == 1) {
      InferProgress p;
      p.output = ctx.request().input;
      p.final = true;
      co_await ctx.send(p);
      co_return;
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
    if (co_await ctx.wait_cancelled(deadline)) cancelled.push_back(ctx.request().request_id);
  });
  std::optional<InferProgress> first;
  InferProgress last;
  run(ioc, [&]() -> awaitable<void> {
    auto pipe = memory_stream_pair(ioc.get_executor());
    asio::co_spawn(ioc, d.serve_infer(pipe.second, peer_id(6)), asio::detached);
    InferClientStream s(pipe.first, infer_io_limits());
    first = co_await ask(s, keep_alive_request(1));
    InferClientMessage two{follow_up(2)};
    co_await s.send(two);
    InferClientMessage stale{InferCancel{1}}, cancel{InferCancel{2}};
    co_await s.send(stale);  // names the finished request: no effect
    co_await s.send(cancel);
    auto fin = co_await s.receive();
    EXPECT_TRUE(fin.ok());
    if (fin.ok()) last = std::get<InferProgress>(*fin);
    co_await s.close_write();
    auto e = co_await s.receive();
    EXPECT_EQ(e.status().code(), Code::kNotFound);
  });
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(cancelled, (std::vector<uint64_t>{2}));
  EXPECT_EQ(last.request_id, 2u);
  EXPECT_TRUE(last.final);
  EXPECT_EQ(last.error, InferError::kCancelled);
  EXPECT_EQ(d.stats().cancels, 2u);
  EXPECT_EQ(d.stats().stream_errors, 0u);
}

TEST(Dispatcher, AnIdleKeptStreamIsClosedAndARequestCrossingTheCloseIsDropped) {
  asio::io_context ioc;
  Dispatcher d(ioc.get_executor());
  d.set_keep_alive({100, std::chrono::milliseconds(20)});
  std::vector<InferRequest> seen;
  answer_at_once(d, seen);
  std::optional<InferProgress> first;
  Status idle_end, after_end;
  run(ioc, [&]() -> awaitable<void> {
    auto pipe = memory_stream_pair(ioc.get_executor());
    asio::co_spawn(ioc, d.serve_infer(pipe.second, peer_id(6)), asio::detached);
    InferClientStream s(pipe.first, infer_io_limits());
    first = co_await ask(s, keep_alive_request(1));
    auto e = co_await s.receive();  // nothing within the idle limit: the server ends its side
    idle_end = e.status();
    InferClientMessage late{follow_up(2)};  // as if it had crossed the server's FIN
    co_await s.send(late);
    co_await s.close_write();
    auto again = co_await s.receive();
    after_end = again.status();
  });
  ASSERT_TRUE(first.has_value());
  EXPECT_TRUE(first->stream_open);
  EXPECT_EQ(idle_end.code(), Code::kNotFound);
  EXPECT_EQ(after_end.code(), Code::kNotFound);
  EXPECT_EQ(seen.size(), 1u);  // the late request was not served
  EXPECT_EQ(d.stats().idle_closes, 1u);
  EXPECT_EQ(d.stats().stream_errors, 0u);
}

TEST(Dispatcher, AMalformedMessageOnAKeptStreamResetsItAndIsReported) {
  asio::io_context ioc;
  Dispatcher d(ioc.get_executor());
  std::vector<InferRequest> seen;
  answer_at_once(d, seen);
  Status reported;
  d.on_error([&](const identity::PeerId&, std::string_view, const Status& st) { reported = st; });
  std::optional<InferProgress> first;
  Status after;
  run(ioc, [&]() -> awaitable<void> {
    auto pipe = memory_stream_pair(ioc.get_executor());
    asio::co_spawn(ioc, d.serve_infer(pipe.second, peer_id(6)), asio::detached);
    InferClientStream s(pipe.first, infer_io_limits());
    first = co_await ask(s, keep_alive_request(1));
    Bytes garbage{0xff, 0xff, 0xff};
    co_await p2p::write_length_prefixed(*pipe.first, garbage);
    auto r = co_await s.receive();
    after = r.status();
  });
  ASSERT_TRUE(first.has_value());
  EXPECT_TRUE(first->stream_open);
  EXPECT_FALSE(after.is_ok());
  EXPECT_NE(after.code(), Code::kNotFound);  // reset, not a clean end
  EXPECT_EQ(reported.code(), Code::kPeerMisbehaved);
  EXPECT_EQ(d.stats().stream_errors, 1u);
  EXPECT_EQ(seen.size(), 1u);
}

}  // namespace
}  // namespace idn::rpc
