// InferServer with a Handler-backed service (serve/handler.h) behind a real p2p::Host on
// 127.0.0.1: the handler's answers reach the requester, and the server's own duties (unknown
// service, admission, validation, the WorkSink, the stats) apply to it as to an engine.
#include <gtest/gtest.h>

#include "core/multihash.h"
#include "p2p/p2p_test_util.h"
#include "rpc/dispatcher.h"
#include "serve/infer_server.h"

namespace idn::serve {
namespace {

using p2p::awaitable;
using p2p::testing::Loop;
using p2p::testing::make_host;

// Answers the number of inputs and the sum of their bytes; needs a sample or inputs.
class CountingHandler final : public Handler {
 public:
  Status validate(const protocol::InferRequest& req) const override {
    if (req.inputs.empty() && !req.sample_ref)
      return Status::invalid_argument("needs inputs or a sample_ref");
    return Status::ok();
  }
  Result<std::vector<protocol::InferProgress>> run(const protocol::InferRequest& req) override {
    ++runs;
    if (req.sample_ref && *req.sample_ref == 666) return Status::internal("broken frame");
    float sum = 0;
    for (const auto& t : req.inputs)
      for (uint8_t b : t.bytes) sum += b;
    float v[] = {static_cast<float>(req.inputs.size()), sum};
    protocol::InferProgress p;
    p.output = core::Tensor::f32({2}, v);
    p.operations = 100 + req.inputs.size();
    p.final = true;
    return std::vector<protocol::InferProgress>{p};
  }
  int runs = 0;
};

class RefuseSeven final : public Admission {
 public:
  Decision admit(const identity::PeerId&, const core::Multihash&, uint64_t id) override {
    return id == 7 ? Decision::refuse("not you") : Decision::admit();
  }
};

class Works final : public WorkSink {
 public:
  void on_work(const WorkDone& w) override { done.push_back(w); }
  std::vector<WorkDone> done;
};

awaitable<protocol::InferProgress> ask(p2p::Host& host, identity::PeerId server,
                                       protocol::InferRequest req) {
  auto s = co_await rpc::open_infer(host, server);
  EXPECT_TRUE(s.ok());
  protocol::InferProgress last;
  if (!s.ok()) co_return last;
  EXPECT_TRUE((co_await s->send(rpc::InferClientMessage{std::move(req)})).is_ok());
  for (;;) {
    auto r = co_await s->receive();
    if (!r.ok()) break;
    last = std::get<protocol::InferProgress>(*r);
    if (last.final) break;
  }
  (void)co_await s->close_write();
  co_return last;
}

TEST(InferServerHandler, HandlerServicesAreServedWithAdmissionValidationAndWork) {
  Loop loop;
  auto works = std::make_shared<Works>();
  ServerConfig cfg;
  cfg.admission = std::make_shared<RefuseSeven>();
  cfg.work_sink = works;
  InferServer server(loop.ex(), cfg);
  auto handler = std::make_shared<CountingHandler>();
  const auto id = core::Multihash::sha2_256(as_bytes("a ddnn section"));
  const auto other = core::Multihash::sha2_256(as_bytes("not hosted"));
  EXPECT_FALSE(server.add_handler(id, nullptr).is_ok());
  ASSERT_TRUE(server.add_handler(id, handler).is_ok());
  EXPECT_TRUE(server.hosts(id));
  rpc::Dispatcher dispatcher(loop.ex());
  auto server_host = make_host(loop);
  core::Multiaddr addr = loop.call([&] {
    server.attach(dispatcher);
    dispatcher.attach(*server_host);
    EXPECT_TRUE(server_host->listen(p2p::testing::loopback()).ok());
    return server_host->listen_addrs().at(0);
  });
  auto client = make_host(loop);
  auto peer = loop.run([&]() { return client->dial(addr); });
  ASSERT_TRUE(peer.ok());

  auto request = [&](uint64_t rid, const core::Multihash& svc) {
    protocol::InferRequest r;
    r.request_id = rid;
    r.service_id = svc.bytes();
    core::Tensor bits;
    bits.dtype = core::DType::kU8;
    bits.shape = {2};
    bits.bytes = {3, 4};
    r.inputs = {bits, bits};
    r.input_views = {0, 5};
    return r;
  };
  auto answer = [&](protocol::InferRequest r) {
    return loop.run([&]() { return ask(*client, *peer, r); });
  };

  auto ok = answer(request(1, id));
  EXPECT_EQ(ok.error, protocol::InferError::kNone) << ok.error_message;
  EXPECT_EQ(ok.request_id, 1u);
  EXPECT_EQ(ok.output.f32()[0], 2.0f);
  EXPECT_EQ(ok.output.f32()[1], 14.0f);

  EXPECT_EQ(answer(request(2, other)).error, protocol::InferError::kUnknownService);
  EXPECT_EQ(answer(request(7, id)).error, protocol::InferError::kRefused);
  auto old_style = request(3, id);  // an old-format request: one input, nothing else
  old_style.inputs.clear();
  old_style.input_views.clear();
  float x[] = {1};
  old_style.input = core::Tensor::f32({1}, x);
  auto invalid = answer(old_style);
  EXPECT_EQ(invalid.error, protocol::InferError::kInvalidRequest);
  EXPECT_NE(invalid.error_message.find("sample_ref"), std::string::npos);
  auto broken = request(4, id);
  broken.sample_ref = 666;
  EXPECT_EQ(answer(broken).error, protocol::InferError::kInternal);

  EXPECT_EQ(handler->runs, 2);  // refused, unknown and invalid requests never ran
  ASSERT_EQ(works->done.size(), 1u);
  EXPECT_EQ(works->done[0].request_id, 1u);
  EXPECT_EQ(works->done[0].operations, 102u);
  EXPECT_TRUE(works->done[0].answered);
  auto st = server.stats();
  EXPECT_EQ(st.requests, 5u);
  EXPECT_EQ(st.completed, 1u);
  EXPECT_EQ(st.unknown_service, 1u);
  EXPECT_EQ(st.refused, 1u);
  EXPECT_EQ(st.invalid, 1u);
  EXPECT_EQ(st.failed, 1u);
  EXPECT_EQ(st.operations, 102u);
  server.remove_service(id);
  EXPECT_FALSE(server.hosts(id));
}

}  // namespace
}  // namespace idn::serve
