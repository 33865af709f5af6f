// ParallelNet on real nodes on 127.0.0.1 (issue 18, §5.5): eight peers each host a different
// generated member of one genesis model (its own service); a client sends each input to a
// provider of every member at once and combines the answers as they arrive. During the stream
// two members' peers stop and one peer answers garbage: every request is still answered, by the
// others, and the garbage peer is found by disagreement, left out of the average and reported.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <memory>
#include <vector>

#include "node/model_host.h"
#include "node/node_test_util.h"
#include "node/swap_agent.h"
#include "rpc/dispatcher.h"
#include "support/tiny_model.h"
#include "support/tiny_parallelnet.h"

namespace idn::node {
namespace {

using namespace std::chrono_literals;
using testing::RunningNode;

constexpr size_t kMembers = 8;
constexpr size_t kGarbage = 7;         // the byzantine peer
constexpr size_t kStopped[] = {0, 1};  // peers that stop mid-stream
constexpr size_t kRequests = 16;
constexpr size_t kStopAfter = 5;

template <class F>
bool eventually(F cond, std::chrono::seconds limit = 60s) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until)
    if (cond()) return true;
  return cond();
}

// A confident answer for the last class, whatever the input: garbage that looks well formed (a
// valid probability vector, as an honest exit sends).
rpc::Dispatcher::InferHandler garbage(std::vector<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<float> probs(static_cast<size_t>(n), 0.0f);
  probs.back() = 1.0f;
  return testing::made_up_answers(std::move(shape), std::move(probs));
}

TEST(ParallelNetEnsemble, EightMembersTwoStoppedOneLyingEveryRequestAnsweredTheLiarReported) {
  auto images = motifs::to_samples(idn::testing::tiny_data().test.x);
  const auto labels = idn::testing::tiny_data().test.y;
  std::vector<std::unique_ptr<RunningNode>> m;
  std::vector<core::Multiaddr> addrs;
  for (size_t i = 0; i < kMembers; ++i) {
    m.push_back(std::make_unique<RunningNode>(testing::peer_config(addrs)));
    ASSERT_TRUE(*m.back());
    for (const auto& a : (*m.back())->listen_addrs()) addrs.push_back(a);
  }
  RunningNode c(testing::peer_config(addrs));  // the client dials every member
  ASSERT_TRUE(c);
  std::vector<core::Multihash> sid;
  std::vector<identity::PeerId> peer;
  for (size_t i = 0; i < kMembers; ++i) {
    const auto dir = idn::testing::tiny_parallelnet_member(0.5, i + 1);
    RunningNode& n = *m[i];
    auto pub = n.on_io<Result<Published>>(
        [&]() { return n->models().publish(dir, "member " + std::to_string(i)); });
    ASSERT_TRUE(pub.ok()) << pub.status().to_string();
    sid.push_back(pub->service_id);
    peer.push_back(n->id());
  }
  {
    RunningNode& g = *m[kGarbage];
    auto d = g.on_io<Result<ise::ServiceDescriptor>>(
        [&]() -> p2p::awaitable<Result<ise::ServiceDescriptor>> {
          co_return g->models().local_descriptor(sid[kGarbage]);
        });
    ASSERT_TRUE(d.ok() && !d->outputs.empty());
    g.on_io<int>([&, shape = d->outputs.front().shape]() -> p2p::awaitable<int> {
      g->dispatcher().on_infer_request(garbage(shape));
      co_return 0;
    });
  }
  // The client learns each member's provider from its have list (every member is connected).
  ASSERT_TRUE(eventually([&] {
    return c.on_io<bool>([&]() -> p2p::awaitable<bool> {
      for (const auto& s : sid)
        if (c->swap()->peers_hosting(s).empty()) co_return false;
      co_return true;
    });
  }));

  auto ens = c.on_io<std::shared_ptr<client::EnsembleSession>>(
      [&]() -> p2p::awaitable<std::shared_ptr<client::EnsembleSession>> {
        client::SessionOptions so;
        so.deadline = 10s;
        co_return c->ensemble(sid, so);
      });
  std::map<std::string, size_t> reported;  // peer -> requests it was reported in
  size_t correct = 0;
  for (size_t r = 0; r < kRequests; ++r) {
    if (r == kStopAfter)
      for (size_t i : kStopped) m[i].reset();  // shut down mid-stream
    size_t events = 0;
    auto out = c.on_io<client::EnsembleSummary>([&]() -> p2p::awaitable<client::EnsembleSummary> {
      co_return co_await ens->infer(images[r], [&](const client::EnsembleEvent&) { ++events; });
    });
    ASSERT_TRUE(out.status.is_ok()) << "request " << r << ": " << out.status.to_string();
    ASSERT_TRUE(out.final.has_value());
    const size_t alive = r < kStopAfter ? kMembers : kMembers - std::size(kStopped);
    EXPECT_EQ(out.final->used.size() + out.final->excluded.size(), alive) << "request " << r;
    EXPECT_EQ(events, alive) << "one improvement per answer, as it arrived";
    for (size_t i : kStopped)
      if (r >= kStopAfter) EXPECT_FALSE(out.members[i].answered) << "request " << r;
    for (const auto& p : out.byzantine) reported[p.to_string()]++;
    correct += out.final->predicted == labels[int64_t(r)].item<int64_t>() ? 1 : 0;
  }
  // The liar is found wherever the honest members agree on another class than its own (11 of
  // 16 here; the tiny members are weak and often split) and more often than any honest peer.
  const size_t liar = reported[peer[kGarbage].to_string()];
  std::cout << "liar reported in " << liar << " of " << kRequests << " requests; " << correct
            << " combined answers correct\n";
  EXPECT_GE(liar, kRequests / 3);
  for (size_t i = 0; i < kMembers; ++i)
    if (i != kGarbage) EXPECT_LT(reported[peer[i].to_string()], liar) << "member " << i;
  // The combination stays useful: well above chance (10 classes; 8 of 16 here).
  EXPECT_GE(correct, kRequests / 4);
}

}  // namespace
}  // namespace idn::node
