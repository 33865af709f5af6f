// DDNN deployed on IDN peers (issue 17, §4.4): six device peers that each own one camera's
// replay, a cloud peer and the local aggregator (the requesting node), real nodes on
// 127.0.0.1 that find each section through the DHT. One device peer stops mid-stream; every
// sample is still answered, and the answers, exit points and eq. 4.1 bytes equal
// motifs::infer_staged's on the same samples with the same views present.
#include <gtest/gtest.h>

#include <iostream>
#include <memory>
#include <random>
#include <vector>

#include "client/ddnn_session.h"
#include "motifs/ddnn.h"
#include "motifs/ddnn_train.h"
#include "node/ddnn.h"
#include "node/node_test_util.h"
#include "support/tiny_ddnn.h"

namespace idn::node {
namespace {

using testing::RunningNode;

// The torch-free per-sample aggregation equals motifs::aggregate, absent devices and all.
TEST(DdnnAggregation, ScoresAggregateAsTheTrainingCodeDoes) {
  std::mt19937 rng(3);
  std::normal_distribution<float> z(0, 3);
  for (auto [op, mop] :
       {std::pair{client::ScoreAggregation::kMax, motifs::Aggregation::kMax},
        std::pair{client::ScoreAggregation::kAverage, motifs::Aggregation::kAverage}}) {
    for (int trial = 0; trial < 50; ++trial) {
      const size_t k = 6, classes = 3;
      std::vector<std::vector<float>> scores(k, std::vector<float>(classes));
      std::vector<bool> present(k);
      auto x = torch::empty({1, 6, 3});
      auto p = torch::empty({1, 6}, torch::kBool);
      for (size_t d = 0; d < k; ++d) {
        present[d] = trial == 0 ? false : (rng() % 3 != 0);
        p[0][static_cast<int64_t>(d)] = static_cast<bool>(present[d]);
        for (size_t c = 0; c < classes; ++c) {
          scores[d][c] = z(rng);
          x[0][static_cast<int64_t>(d)][static_cast<int64_t>(c)] = scores[d][c];
        }
      }
      auto want = motifs::aggregate(mop, x, p).contiguous();
      auto got = client::aggregate_scores(op, scores, present, classes);
      // MP picks one of the inputs: exact. AP sums in another order than torch's reduction:
      // equal to float rounding.
      for (size_t c = 0; c < classes; ++c) {
        const float w = want[0][static_cast<int64_t>(c)].item<float>();
        if (op == client::ScoreAggregation::kMax)
          EXPECT_EQ(got[c], w) << "trial " << trial;
        else
          EXPECT_NEAR(got[c], w, 1e-6f * (1 + std::abs(w))) << "trial " << trial;
      }
    }
  }
  EXPECT_FALSE(client::parse_score_aggregation("CC").ok());
  EXPECT_TRUE(client::ddnn_exits(0.5, 1.0));
  EXPECT_FALSE(client::ddnn_exits(0.0, 0.0));
  EXPECT_TRUE(client::ddnn_exits(0.3, 0.3));
}

constexpr int64_t kDevices = 6;
constexpr int64_t kSamples = 24;
constexpr int64_t kKilled = 2;      // the device peer stopped mid-stream
constexpr int64_t kKillAfter = 10;  // ... before this sample

TEST(DdnnOnPeers, SixDevicesAnAggregatorAndTheCloudOneDeviceStoppedEverySampleAnswered) {
  const auto dir = idn::testing::tiny_ddnn_package();
  auto frames =
      std::make_shared<const data::MultiViewDataset>(idn::testing::tiny_ddnn_views(kSamples, 77));
  auto package = motifs::load_ddnn(dir);
  ASSERT_TRUE(package.ok()) << package.status().to_string();
  auto& model = package->model;
  auto test = motifs::multiview_tensors(*frames, model->config());
  ASSERT_TRUE(test.ok());
  // T: the median local η over these frames, so that both exits are taken.
  const auto all_local = motifs::infer_staged(
      model, test->views, motifs::presence(model->config(), test->view_labels), {1.0, 1.0});
  auto sorted = all_local.entropy;
  std::sort(sorted.begin(), sorted.end());
  const double threshold = sorted[sorted.size() / 2];

  std::vector<std::unique_ptr<RunningNode>> peers;  // devices 0..5, then the cloud
  std::vector<core::Multiaddr> addrs;
  for (int64_t i = 0; i <= kDevices; ++i) {
    peers.push_back(std::make_unique<RunningNode>(testing::peer_config(addrs)));
    ASSERT_TRUE(*peers.back());
    for (const auto& a : (*peers.back())->listen_addrs()) addrs.push_back(a);
  }
  for (int64_t i = 0; i <= kDevices; ++i) {
    RunningNode& n = *peers[static_cast<size_t>(i)];
    const std::string section = i < kDevices ? "device" + std::to_string(i) : "cloud";
    auto hosted = n.on_io<Result<DdnnServices>>(
        [&]() { return host_ddnn_section(*n, dir, section, frames); });
    ASSERT_TRUE(hosted.ok()) << hosted.status().to_string();
  }
  RunningNode agg(testing::peer_config(addrs));
  ASSERT_TRUE(agg);
  auto services = agg.on_io<Result<DdnnServices>>(
      [&]() -> p2p::awaitable<Result<DdnnServices>> { co_return store_ddnn(*agg, dir); });
  ASSERT_TRUE(services.ok()) << services.status().to_string();
  DdnnSessionOptions so;
  so.threshold = threshold;
  so.device_deadline = std::chrono::milliseconds(3000);
  so.cloud_deadline = std::chrono::milliseconds(5000);
  auto session = agg.on_io<Result<std::shared_ptr<client::DdnnSession>>>(
      [&]() -> p2p::awaitable<Result<std::shared_ptr<client::DdnnSession>>> {
        co_return ddnn_session(*agg, *services, so);
      });
  ASSERT_TRUE(session.ok()) << session.status().to_string();

  std::vector<client::DdnnAnswer> answers;
  for (int64_t i = 0; i < kSamples; ++i) {
    if (i == kKillAfter) peers[kKilled].reset();  // shut down and joined
    auto a = agg.on_io<Result<client::DdnnAnswer>>([&]() { return (*session)->infer(i); });
    ASSERT_TRUE(a.ok()) << "sample " << i << ": " << a.status().to_string();
    answers.push_back(*a);
  }

  // The same samples through the training code, with the same views present.
  auto present = motifs::presence(model->config(), test->view_labels).clone();
  for (int64_t i = kKillAfter; i < kSamples; ++i) present[i][kKilled] = false;
  const auto want = motifs::infer_staged(model, test->views, present, {threshold, 1.0});
  int64_t local = 0, payload = 0, total = 0, raw = 0, messages = 0;
  for (int64_t i = 0; i < kSamples; ++i) {
    SCOPED_TRACE("sample " + std::to_string(i));
    const auto& a = answers[static_cast<size_t>(i)];
    uint64_t mask = 0;
    for (int64_t d = 0; d < kDevices; ++d)
      if (present[i][d].item<bool>()) mask |= uint64_t{1} << d;
    EXPECT_EQ(a.present, mask);
    EXPECT_FALSE(a.cloud_failed);
    const bool at_local = a.exit == client::DdnnAnswer::Exit::kLocal;
    EXPECT_EQ(at_local ? 0 : 2, want.exit[static_cast<size_t>(i)]);
    EXPECT_EQ(a.predicted, want.predicted[static_cast<size_t>(i)]);
    if (at_local) {
      EXPECT_NEAR(a.entropy, want.entropy[static_cast<size_t>(i)], 1e-6);
      ++local;
    } else {
      EXPECT_EQ(a.features, mask);
    }
    payload += static_cast<int64_t>(a.payload_bytes);
    total += static_cast<int64_t>(a.total_bytes());
    raw += static_cast<int64_t>(a.raw_bytes);
    // Every device asked for scores, the present ones for features, the cloud once: a request
    // and one answer each.
    const int64_t n_present = __builtin_popcountll(mask);
    const int64_t alive = i < kKillAfter ? kDevices : kDevices - 1;
    messages += 2 * alive + (at_local ? 0 : 2 * n_present + 2);
  }
  EXPECT_GT(local, 0);
  EXPECT_LT(local, kSamples);
  // Eq. 4.1's payload (4·|C| per present device, packed features of the samples that go on),
  // exactly as the training code counts it.
  EXPECT_EQ(payload, want.device_bytes);
  // The rest is framing: length prefix, request ID, service ID, tensor headers, confidence.
  const double overhead = static_cast<double>(total - payload) / static_cast<double>(messages);
  std::cout << "DDNN on peers: " << local << "/" << kSamples << " local exits, " << payload
            << " B eq. 4.1 payload, " << total << " B on the wire (" << overhead
            << " B framing per message), raw views " << raw << " B\n";
  EXPECT_GT(overhead, 8.0);
  EXPECT_LT(overhead, 80.0);
  // Per-message framing (a 34-byte service ID and a request ID in every request) dominates
  // the 12-byte score answers: the wire carries several times eq. 4.1's payload, and still
  // well under the raw views.
  EXPECT_GT(raw, 5 * total);
}

}  // namespace
}  // namespace idn::node
