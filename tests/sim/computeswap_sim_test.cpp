// `idn sim computeswap` on small scenarios: the same seed gives the same history; ComputeSwap
// (the real classes) starves freeloaders while cooperators are served; liars get caught; bad
// scenarios are refused by name.
#include "sim/computeswap_sim.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace idn::sim {
namespace {

using testing::HasSubstr;

ComputeSwapScenario small() {
  ComputeSwapScenario s;
  s.peers = 60;
  s.services = 5;
  s.hours = 0.5;
  s.freeloaders = 0.2;
  s.requests_per_peer_min = 20;
  s.seed = 7;
  // A peer that never served may use about one request's work (1-100 MFLOPs, log-uniform)
  // before p(r) starts to fall.
  s.swap.grace_ops = 20'000'000;
  s.swap.challenge_rate = 0.05;
  return s;
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(ComputeSwapSim, TheSameSeedGivesTheSameCsvAndAnotherSeedAnother) {
  auto dir = std::filesystem::path(testing::TempDir()) / "sim_seed";
  std::filesystem::create_directories(dir);
  auto s = small();
  s.hours = 0.2;
  for (const char* name : {"a.csv", "b.csv"}) {
    auto r = run_computeswap_sim(s);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    ASSERT_TRUE(write_minutes_csv(*r, dir / name).is_ok());
  }
  s.seed = 8;
  auto other = run_computeswap_sim(s);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(write_minutes_csv(*other, dir / "c.csv").is_ok());
  EXPECT_EQ(slurp(dir / "a.csv"), slurp(dir / "b.csv"));
  EXPECT_NE(slurp(dir / "a.csv"), slurp(dir / "c.csv"));
  EXPECT_THAT(slurp(dir / "a.csv"), HasSubstr("minute,kind,requests,answered"));
}

TEST(ComputeSwapSim, FreeloadersAreStarvedWhileCooperatorsAreServed) {
  auto r = run_computeswap_sim(small());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const auto& coop = r->after_warmup[size_t(PeerKind::kCooperator)];
  const auto& free = r->after_warmup[size_t(PeerKind::kFreeloader)];
  ASSERT_GT(coop.requests, 1000u);
  ASSERT_GT(free.requests, 200u);
  EXPECT_EQ(r->peers[size_t(PeerKind::kFreeloader)], 12u);
  // Freeloaders are a fifth of the peers and ask as often; after warm-up they get far less
  // than a fifth of the work, and most of their requests are refused.
  EXPECT_LT(r->freeloader_work_share, 0.10);
  EXPECT_LT(r->served_rate[size_t(PeerKind::kFreeloader)], 0.3);
  EXPECT_GT(r->served_rate[size_t(PeerKind::kCooperator)], 0.9);
  EXPECT_GT(free.refusals, free.answered);
  EXPECT_GT(r->events, coop.requests);
}

TEST(ComputeSwapSim, LiarsAreCaughtByChallenges) {
  auto s = small();
  s.freeloaders = 0;
  s.liars = 0.1;
  s.swap.challenge_rate = 0.2;
  auto r = run_computeswap_sim(s);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  uint64_t caught = 0;
  for (const auto& k : r->total) caught += k.caught;
  EXPECT_GT(caught, 0u);
  EXPECT_GT(r->liars_caught, 0.5);
}

TEST(ComputeSwapSim, BadScenariosAreRefusedByName) {
  auto s = small();
  s.peers = 1;
  EXPECT_THAT(run_computeswap_sim(s).status().message(), HasSubstr("peers"));
  s = small();
  s.freeloaders = 0.7;
  s.liars = 0.3;
  EXPECT_THAT(run_computeswap_sim(s).status().message(), HasSubstr("cooperators"));
  s = small();
  s.hosted_per_peer = 6;
  EXPECT_THAT(run_computeswap_sim(s).status().message(), HasSubstr("hosted per peer"));
}

}  // namespace
}  // namespace idn::sim
