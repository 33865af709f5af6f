// The ComputeSwap seams end to end, without swap/: a client::Session asks two real
// InferServers (tiny B-LeNet) behind real p2p::Hosts on 127.0.0.1. The first provider's
// Admission refuses the requester; the session must see kRefused with the reason and reroute
// to the second, whose WorkSink hears the operations of the answer and whose ReceiptSink then
// gets the requester's Receipt for exactly those operations.
#include <gtest/gtest.h>

#include <mutex>

#include "client/session.h"
#include "core/cid.h"
#include "engine/engine.h"
#include "ise/service_descriptor.h"
#include "p2p/p2p_test_util.h"
#include "rpc/dispatcher.h"
#include "serve/infer_server.h"
#include "support/tiny_model.h"

namespace idn::node {
namespace {

using namespace std::chrono_literals;
using p2p::awaitable;
using p2p::testing::Loop;
using p2p::testing::make_host;

// All three seams, recorded; the server calls them on the loop's thread, the test reads them
// after waiting on the loop.
struct Accounting : serve::Admission, serve::WorkSink, serve::ReceiptSink {
  bool refuse = false;
  std::vector<identity::PeerId> asked;
  std::vector<serve::WorkDone> work;
  std::vector<std::pair<identity::PeerId, protocol::Receipt>> receipts;
  p2p::Signal* receipt_seen = nullptr;

  serve::Decision admit(const identity::PeerId& peer, const core::Multihash&, uint64_t) override {
    asked.push_back(peer);
    return refuse ? serve::Decision::refuse("ignoring you for 30 s: debt ratio 6.2")
                  : serve::Decision::admit();
  }
  void on_work(const serve::WorkDone& w) override { work.push_back(w); }
  Status on_receipt(const identity::PeerId& from, const protocol::Receipt& r) override {
    receipts.emplace_back(from, r);
    if (receipt_seen) receipt_seen->notify_all();
    return Status::ok();
  }
};

struct Provider {
  std::shared_ptr<Accounting> acct = std::make_shared<Accounting>();
  std::unique_ptr<serve::InferServer> server;
  std::unique_ptr<rpc::Dispatcher> dispatcher;
  p2p::testing::HostPtr host;
  core::Multiaddr addr;
};

TEST(AccountingSeams, ARefusedRequestReroutesAndTheAnsweringProviderGetsAReceiptForItsWork) {
  auto package = idn::testing::tiny_package();
  auto samples = motifs::to_samples(idn::testing::tiny_data().test.x.slice(0, 0, 4));
  auto local = engine::Engine::load(package);
  ASSERT_TRUE(local.ok()) << local.status().to_string();
  auto cid = core::Cid::of(core::Multicodec::kDagPb, as_bytes("tiny package")).to_string();
  auto d = ise::descriptor_from_model((*local)->spec(), cid, "tiny B-LeNet");
  ASSERT_TRUE(d.ok());
  auto id = *ise::service_id(*d);

  Loop loop;
  p2p::Signal receipt_seen(loop.ex());
  std::vector<Provider> providers(2);
  providers[0].acct->refuse = true;
  providers[1].acct->receipt_seen = &receipt_seen;
  for (auto& p : providers) {
    serve::ServerConfig cfg;
    cfg.admission = p.acct;
    cfg.work_sink = p.acct;
    cfg.receipt_sink = p.acct;
    p.server = std::make_unique<serve::InferServer>(loop.ex(), cfg);
    ASSERT_TRUE(p.server->add_service(id, *d, package).is_ok());
    p.host = make_host(loop);
    p.addr = loop.call([&] {
      p.dispatcher = std::make_unique<rpc::Dispatcher>(loop.ex());
      p.server->attach(*p.dispatcher);
      p.dispatcher->attach(*p.host);
      EXPECT_TRUE(p.host->listen(p2p::testing::loopback()).ok());
      return p.host->listen_addrs().at(0);
    });
  }
  auto client = make_host(loop);
  std::vector<identity::PeerId> ids;
  for (auto& p : providers) {
    auto r = loop.run([&]() { return client->dial(p.addr); });
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    ids.push_back(*r);
  }

  client::SessionOptions o;
  o.fanout = 1;
  o.deadline = 10s;
  o.inactivity_timeout = 5s;
  o.exit_rule.criterion = protocol::ExitCriterion::kLastExit;
  auto session = std::make_unique<client::Session>(loop.ex(), *client,
                                                   client::fixed_providers(ids), id, o);
  client::Summary sum = loop.run([&]() -> awaitable<client::Summary> {
    auto s = session->infer(samples[1]);
    while (co_await s->next()) {
    }
    co_return s->summary();
  });
  ASSERT_TRUE(sum.status.is_ok()) << sum.status.to_string();
  ASSERT_EQ(sum.peers.size(), 2u);
  EXPECT_EQ(sum.peers[0].peer, ids[0]);
  EXPECT_EQ(sum.peers[0].outcome, client::PeerReport::Outcome::kRefused);
  EXPECT_NE(sum.peers[0].detail.find("debt ratio 6.2"), std::string::npos) << sum.peers[0].detail;
  EXPECT_EQ(sum.peers[1].peer, ids[1]);
  EXPECT_EQ(sum.peers[1].outcome, client::PeerReport::Outcome::kAnswered);
  ASSERT_TRUE(sum.best);
  auto want = (*local)->infer(samples[1], {model::ExitCriterion::kConfidence, 2.0});
  ASSERT_TRUE(want.ok());
  EXPECT_EQ(sum.best->predicted, want->predicted);
  EXPECT_EQ(sum.best->operations, static_cast<uint64_t>(want->flops));

  // The receipt follows the answer; wait for it on the loop.
  bool arrived = loop.run([&]() -> awaitable<bool> {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (providers[1].acct->receipts.empty())
      if (!co_await receipt_seen.wait(deadline)) co_return !providers[1].acct->receipts.empty();
    co_return true;
  });
  ASSERT_TRUE(arrived) << "no receipt reached the answering provider";
  loop.call([&] {
    const Accounting& refuser = *providers[0].acct;
    const Accounting& worker = *providers[1].acct;
    EXPECT_EQ(refuser.asked.size(), 1u);
    EXPECT_TRUE(refuser.work.empty());
    EXPECT_TRUE(refuser.receipts.empty());
    EXPECT_EQ(providers[0].server->stats().refused, 1u);
    EXPECT_EQ(worker.asked, std::vector<identity::PeerId>{client->id()});
    EXPECT_EQ(worker.work.size(), 1u);
    EXPECT_EQ(worker.receipts.size(), 1u);
    if (worker.work.size() == 1 && worker.receipts.size() == 1) {
      const serve::WorkDone& w = worker.work[0];
      const auto& [from, r] = worker.receipts[0];
      EXPECT_EQ(w.peer, client->id());
      EXPECT_EQ(w.service, id);
      EXPECT_TRUE(w.answered);
      EXPECT_EQ(w.operations, sum.best->operations);
      EXPECT_EQ(from, client->id());
      EXPECT_EQ(r.request_id, w.request_id);
      EXPECT_EQ(r.service_id, id.bytes());
      EXPECT_EQ(r.operations, w.operations);
      EXPECT_EQ(r.server, ids[1].bytes());
      EXPECT_EQ(r.signer, client->id().bytes());
    }
    EXPECT_EQ(session->stats().receipts_sent, 1u);
    return 0;
  });

  loop.call([&] {
    client->stop();
    for (auto& p : providers) p.host->stop();
    return 0;
  });
  for (auto& p : providers) p.server->stop();
  loop.call([&] {
    session.reset();
    for (auto& p : providers) p.dispatcher.reset();
    return 0;
  });
}

}  // namespace
}  // namespace idn::node
