// `idn sim computeswap` on small scenarios: the same seed gives the same history; ComputeSwap
// (the real classes) starves freeloaders while cooperators are served; liars get caught; bad
// scenarios are refused by name.
#include "sim/computeswap_sim.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
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
  // ComputeSwap alone: hosting fixed (k services drawn by popularity per serving peer). With
  // the ISE on, this small dense network hosts away from popularity (docs/results.md).
  s.auto_host = false;
  return s;
}

// Thin traffic over many peers, the ISE on: what peers host follows what is asked for.
ComputeSwapScenario thin() {
  ComputeSwapScenario s;
  s.peers = 200;
  s.services = 20;
  s.hours = 0.5;
  s.seed = 3;
  s.swap.grace_ops = 20'000'000;
  return s;
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// What a run did, as its minutes, services and debt-ratio CSVs say (for comparing histories).
std::string history(const ComputeSwapResult& r) {
  auto path = std::filesystem::path(testing::TempDir()) / "sim_history.csv";
  std::string out;
  for (auto write : {&write_minutes_csv, &write_services_csv, &write_debt_ratios_csv}) {
    EXPECT_TRUE(write(r, path).is_ok());
    out += slurp(path);
  }
  return out;
}

// The histories of `s` run once per value, `set` applying each; every run must serve.
template <class T, class Set>
std::vector<std::string> histories(ComputeSwapScenario s, std::initializer_list<T> values,
                                   Set set) {
  std::vector<std::string> out;
  for (const T& v : values) {
    set(s, v);
    auto r = run_computeswap_sim(s);
    if (!r.ok()) {
      ADD_FAILURE() << r.status().to_string();
      return out;
    }
    EXPECT_GT(r->after_warmup[size_t(PeerKind::kCooperator)].answered, 50u);
    out.push_back(history(*r));
  }
  return out;
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

// The partitions run side by side on threads, and each thread count gives the same history; the
// partition count is part of the history (a different split, a different order of equal times).
TEST(ComputeSwapSim, ThreadsDoNotChangeTheHistory) {
  auto s = thin();
  s.hours = 0.05;
  s.churn = 2;
  s.partitions = 3;
  auto csv = histories(s, {size_t(1), size_t(2), size_t(3)},
                       [](ComputeSwapScenario& sc, size_t t) { sc.threads = t; });
  ASSERT_EQ(csv.size(), 3u);
  EXPECT_EQ(csv[0], csv[1]);
  EXPECT_EQ(csv[0], csv[2]);
}

TEST(ComputeSwapSim, TheCommitPeriodDoesNotChangeTheHistory) {
  // Commits write the in-memory ledgers' receipts to their databases; what a peer decides reads
  // memory only, so the commit period changes the work done, never what happens.
  auto s = thin();
  s.hours = 0.05;
  s.churn = 2;
  auto csv = histories(s, {1.0, 300.0}, [](ComputeSwapScenario& sc, double c) { sc.commit_s = c; });
  ASSERT_EQ(csv.size(), 2u);
  EXPECT_EQ(csv[0], csv[1]);
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

TEST(ComputeSwapSim, TheIseMakesMorePopularServicesHostedByMorePeers) {
  auto r = run_computeswap_sim(thin());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->services.size(), 20u);
  // Only the publishers (2 per service) host at the start; the rest came from demand.
  EXPECT_GT(r->ise_starts, 200u);
  EXPECT_GT(r->services[0].mean_hosts, 4 * r->services[19].mean_hosts);
  EXPECT_GT(r->spearman_hosts_popularity, 0.85);
  EXPECT_GT(r->served_rate[size_t(PeerKind::kCooperator)], 0.95);
  // Requests for what a peer hosts are served locally and not counted as network requests.
  EXPECT_GT(r->after_warmup[size_t(PeerKind::kCooperator)].local, 0u);
  EXPECT_EQ(r->after_warmup[size_t(PeerKind::kFreeloader)].local, 0u);
}

TEST(ComputeSwapSim, PeersThatLeaveAndComeBackAreRoutedAround) {
  auto s = thin();
  s.hours = 0.25;
  s.churn = 2;  // each peer leaves about every half hour, for 10 minutes on average
  auto r = run_computeswap_sim(s);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_GT(r->leaves, 50u);
  EXPECT_GT(r->joins, 20u);
  const KindCounts& c = r->after_warmup[size_t(PeerKind::kCooperator)];
  EXPECT_GT(c.stale, 0u);  // cached providers that had left
  EXPECT_GT(r->served_rate[size_t(PeerKind::kCooperator)], 0.9);
}

TEST(ComputeSwapSim, SpearmanRanksWithTies) {
  EXPECT_DOUBLE_EQ(spearman({1, 2, 3, 4}, {10, 20, 30, 40}), 1.0);
  EXPECT_DOUBLE_EQ(spearman({1, 2, 3, 4}, {40, 30, 20, 10}), -1.0);
  EXPECT_DOUBLE_EQ(spearman({1, 1, 1}, {1, 2, 3}), 0.0);
  // x ranks 1, 2.5, 2.5, 4 against y ranks 1..4: r = 4.5 / sqrt(4.5 * 5).
  EXPECT_NEAR(spearman({1, 2, 2, 3}, {1, 2, 3, 4}), 4.5 / std::sqrt(4.5 * 5), 1e-12);
}

// A written-out mesh: P0 publishes service 0, H1 hosts by demand, F2 and F3 use service 0
// twelve times each; H1 starts hosting it and the freeloaders, served by both until their debt
// ratio makes p(r) refuse, end up ignored. Every scripted request is made, none counted twice.
Script tiny_script() {
  Script sc;
  sc.peers = {{PeerKind::kCooperator, {0}, false},
              {PeerKind::kCooperator, {}, true},
              {PeerKind::kFreeloader, {}, false},
              {PeerKind::kFreeloader, {}, false}};
  sc.service_ops = {1e6, 1e6};
  for (int i = 0; i < 24; ++i) sc.requests.push_back({10.0 + i, uint32_t(2 + i % 2), 0});
  return sc;
}

TEST(ComputeSwapSim, AScriptedMeshMakesExactlyTheScriptedRequests) {
  ComputeSwapScenario s;
  s.script = tiny_script();
  s.mesh = true;
  s.have_list_providers = true;
  s.hours = 60.0 / 3600;
  s.warmup_fraction = 0;
  s.k = 1;
  s.ise_tick_s = 1;
  s.init_s = 1;
  s.tick_s = 1;
  s.latency_ms = 1;
  s.swap.grace_ops = 1'000'000;  // one request's work
  s.swap.challenge_rate = 0;
  auto r = run_computeswap_sim(s);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->hosted_at_end.size(), 4u);
  EXPECT_EQ(r->hosted_at_end[0], std::vector<uint32_t>{0});
  EXPECT_EQ(r->hosted_at_end[1], std::vector<uint32_t>{0});  // the demand of F2 and F3
  EXPECT_TRUE(r->hosted_at_end[2].empty());
  const KindCounts& f = r->total[size_t(PeerKind::kFreeloader)];
  EXPECT_EQ(f.requests, 24u);
  EXPECT_EQ(f.answered + f.unserved, 24u);
  // Each provider serves each freeloader at most 4 times (p(r) = 0 from r = m = 4), then
  // refuses it once and ignores it for T_g (30 s).
  EXPECT_LE(f.answered, 2u * 2u * 4u);
  EXPECT_EQ(f.refusals, 4u);
  EXPECT_EQ(r->total[size_t(PeerKind::kCooperator)].requests, 0u);
  // Scripted popularity: all requests were for service 0.
  EXPECT_DOUBLE_EQ(r->services[0].popularity, 1.0);
  EXPECT_DOUBLE_EQ(r->services[1].popularity, 0.0);
}

// A script brings its own services: k is checked against those, not against `services`
// (which the script replaces).
TEST(ComputeSwapSim, AScriptsKIsCheckedAgainstItsOwnServices) {
  ComputeSwapScenario s;
  s.script = tiny_script();
  s.script->service_ops = {1e6, 1e6, 1e6};
  s.services = 1;
  s.k = 3;
  EXPECT_TRUE(s.validate().is_ok()) << s.validate().to_string();
  s.k = 4;
  EXPECT_THAT(s.validate().message(), HasSubstr("script's services"));
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
  s.k = 6;
  EXPECT_THAT(run_computeswap_sim(s).status().message(), HasSubstr("k (services hosted per peer)"));
  s = small();
  s.churn = -1;
  EXPECT_THAT(run_computeswap_sim(s).status().message(), HasSubstr("churn"));
  s = small();
  s.script = tiny_script();
  s.script->requests.push_back({1, 4, 0});
  EXPECT_THAT(run_computeswap_sim(s).status().message(), HasSubstr("unknown peer or service"));
  s.script = tiny_script();
  s.script->peers[0].pinned = {2};
  EXPECT_THAT(run_computeswap_sim(s).status().message(), HasSubstr("pins an unknown service"));
  s.script = tiny_script();
  s.script->requests.push_back({1e9, 2, 0});
  EXPECT_THAT(run_computeswap_sim(s).status().message(), HasSubstr("outside the run"));
  s = small();
  s.partitions = 2;
  s.latency_ms = 0.5;  // the lookahead of a window
  EXPECT_THAT(run_computeswap_sim(s).status().message(), HasSubstr("latency of at least 1 ms"));
  s.partitions = 0;  // auto: one partition
  EXPECT_TRUE(s.validate().is_ok());
}

}  // namespace
}  // namespace idn::sim
