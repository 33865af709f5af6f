// InferServer behind a real p2p::Host (TCP on 127.0.0.1, Noise, yamux): several client hosts
// send many requests at once over their connections and every one is answered correctly.
#include <gtest/gtest.h>

#include "core/cid.h"
#include "engine/engine.h"
#include "ise/service_descriptor.h"
#include "p2p/p2p_test_util.h"
#include "rpc/dispatcher.h"
#include "serve/infer_server.h"
#include "support/tiny_model.h"

namespace idn::serve {
namespace {

using p2p::awaitable;
using p2p::testing::Loop;
using p2p::testing::make_host;

struct Answer {
  Status status;
  std::vector<protocol::InferProgress> progress;
};

awaitable<Answer> ask(p2p::Host& host, identity::PeerId server, protocol::InferRequest req) {
  Answer a;
  auto s = co_await rpc::open_infer(host, server);
  if (!s.ok()) {
    a.status = s.status();
    co_return a;
  }
  rpc::InferClientMessage m{std::move(req)};
  a.status = co_await s->send(m);
  while (a.status.is_ok()) {
    auto r = co_await s->receive();
    if (!r.ok()) {
      a.status = r.status();
      break;
    }
    a.progress.push_back(std::get<protocol::InferProgress>(*r));
    if (a.progress.back().final) break;
  }
  (void)co_await s->close_write();
  co_return a;
}

TEST(InferServerP2p, ConcurrentRequestsFromSeveralHostsOverLoopbackAreAllAnswered) {
  auto package = idn::testing::tiny_package();
  auto samples = motifs::to_samples(idn::testing::tiny_data().test.x.slice(0, 0, 30));
  auto local = engine::Engine::load(package);
  ASSERT_TRUE(local.ok()) << local.status().to_string();
  auto cid = core::Cid::of(core::Multicodec::kDagPb, as_bytes("tiny package")).to_string();
  auto d = ise::descriptor_from_model((*local)->spec(), cid, "tiny B-LeNet");
  ASSERT_TRUE(d.ok());
  auto id = *ise::service_id(*d);

  // Declared so that hosts go first, then the dispatcher their handlers use, then the server.
  Loop loop;
  ServerConfig cfg;
  cfg.workers = 2;
  cfg.max_batch = 4;
  InferServer server(loop.ex(), cfg);
  ASSERT_TRUE(server.add_service(id, *d, package).is_ok());
  rpc::Dispatcher dispatcher(loop.ex());
  auto server_host = make_host(loop);
  core::Multiaddr addr = loop.call([&] {
    server.attach(dispatcher);
    dispatcher.attach(*server_host);
    EXPECT_TRUE(server_host->listen(p2p::testing::loopback()).ok());
    return server_host->listen_addrs().at(0);
  });

  const int clients = 3, per_client = 10;
  std::vector<p2p::testing::HostPtr> hosts;
  std::vector<identity::PeerId> server_ids;
  for (int c = 0; c < clients; ++c) {
    hosts.push_back(make_host(loop));
    auto r = loop.run([&]() { return hosts.back()->dial(addr); });
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    server_ids.push_back(*r);
  }

  // Every request in flight at once: one coroutine per request, joined by a counter.
  std::vector<Answer> answers(clients * per_client);
  loop.run(
      [&]() -> awaitable<void> {
        int done = 0;
        p2p::Signal all_done(loop.ex());
        for (int c = 0; c < clients; ++c)
          for (int k = 0; k < per_client; ++k) {
            int i = c * per_client + k;
            protocol::InferRequest req;
            req.request_id = 1000 + i;
            req.service_id = id.bytes();
            req.input = samples[i];
            req.exit_rule.criterion = i % 3 == 0 ? protocol::ExitCriterion::kLastExit
                                                 : protocol::ExitCriterion::kModelDefault;
            p2p::asio::co_spawn(
                loop.ioc(),
                [&, c, i, req]() -> awaitable<void> {
                  answers[i] = co_await ask(*hosts[c], server_ids[c], req);
                  ++done;
                  all_done.notify_all();
                },
                p2p::asio::detached);
          }
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        while (done < clients * per_client)
          if (!co_await all_done.wait(deadline)) break;
        EXPECT_EQ(done, clients * per_client);
      },
      std::chrono::seconds(90));

  for (int i = 0; i < clients * per_client; ++i) {
    const auto& a = answers[i];
    ASSERT_TRUE(a.status.is_ok()) << "request " << i << ": " << a.status.to_string();
    ASSERT_FALSE(a.progress.empty());
    const auto& last = a.progress.back();
    EXPECT_TRUE(last.final);
    EXPECT_EQ(last.error, protocol::InferError::kNone) << last.error_message;
    EXPECT_EQ(last.request_id, static_cast<uint64_t>(1000 + i));
    engine::ExitRule rule;
    if (i % 3 == 0) rule = {model::ExitCriterion::kConfidence, 2.0};
    auto want = (*local)->infer(samples[i], rule);
    ASSERT_TRUE(want.ok());
    EXPECT_EQ(last.exit_index, static_cast<uint32_t>(want->exit_index)) << "request " << i;
    auto probs = last.output.f32();
    int predicted = static_cast<int>(std::max_element(probs.begin(), probs.end()) - probs.begin());
    EXPECT_EQ(predicted, want->predicted) << "request " << i;
    if (i % 3 == 0) {
      EXPECT_EQ(a.progress.size(), 2u) << "kLastExit reports both exits";
    }
  }
  server.stop();
  auto st = server.stats();
  EXPECT_EQ(st.requests, static_cast<uint64_t>(clients * per_client));
  EXPECT_EQ(st.completed, static_cast<uint64_t>(clients * per_client));

  loop.call([&] {
    for (auto& h : hosts) h->stop();
    server_host->stop();
    return 0;
  });
}

}  // namespace
}  // namespace idn::serve
