// Ensemble requests over real hosts on 127.0.0.1 with fake servers (client_test_util.h): one
// session per member service, answers combined as they arrive, the rest finished when the
// combination may exit, a failing member covered, a disagreeing one excluded and reported.
#include "client/ensemble_session.h"

#include <gtest/gtest.h>

#include "client/client_test_util.h"

namespace idn::client {
namespace {

using namespace std::chrono_literals;
using p2p::awaitable;
using testing::ClientEnv;
using testing::Script;

core::Multihash member_service(size_t i) {
  return core::Multihash::sha2_256(Bytes{uint8_t(i), 7});
}

// One session per server, each its own member service with that server as its only provider.
std::vector<std::shared_ptr<Session>> members(ClientEnv& env) {
  std::vector<std::shared_ptr<Session>> out;
  for (size_t i = 0; i < env.servers(); ++i) {
    SessionOptions o;
    o.fanout = 1;
    o.deadline = 5000ms;
    o.inactivity_timeout = 3000ms;
    o.exit_rule.criterion = protocol::ExitCriterion::kLastExit;
    o.output_shape = std::vector<int64_t>{1, testing::kClasses};
    o.cancel_grace = 500ms;
    out.push_back(std::make_shared<Session>(env.loop().ex(), env.client(), env.providers({i}),
                                            member_service(i), o));
  }
  return out;
}

struct EnsembleRun {
  EnsembleSummary summary;
  std::vector<EnsembleEvent> events;
};

EnsembleRun run(ClientEnv& env, EnsembleSession& e, core::Tensor input) {
  return env.loop().run([&]() -> awaitable<EnsembleRun> {
    EnsembleRun r;
    r.summary = co_await e.infer(std::move(input),
                                 [&](const EnsembleEvent& ev) { r.events.push_back(ev); });
    co_return r;
  });
}

TEST(EnsembleSession, EveryMemberAnswersAndEachArrivalImprovesTheCombination) {
  ClientEnv env(3);
  env.connect_all();
  EnsembleSession e(env.loop().ex(), members(env));
  EnsembleRun r = run(env, e, testing::input_for(4));
  ASSERT_TRUE(r.summary.status.is_ok()) << r.summary.status.to_string();
  ASSERT_TRUE(r.summary.final.has_value());
  EXPECT_EQ(r.summary.final->predicted, 4);
  EXPECT_EQ(r.summary.final->used.size(), 3u);
  ASSERT_EQ(r.events.size(), 3u);  // one improvement per member answer, as it arrived
  for (size_t i = 0; i < r.events.size(); ++i) EXPECT_EQ(r.events[i].answers, i + 1);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(r.summary.members[i].answered);
    ASSERT_TRUE(r.summary.members[i].peer.has_value());
    EXPECT_EQ(*r.summary.members[i].peer, env.server(i).id());
    EXPECT_EQ(r.summary.members[i].service, member_service(i));
    // Each member's peer was asked for its own service.
    ASSERT_EQ(env.server(i).requests.size(), 1u);
    EXPECT_EQ(env.server(i).requests[0].service_id, member_service(i).bytes());
  }
  EXPECT_TRUE(r.summary.byzantine.empty());
}

TEST(EnsembleSession, OnceTheCombinationMayExitTheMembersStillWorkingAreCancelled) {
  ClientEnv env(3);
  env.server(1).script = Script::kSilent;
  env.server(2).script = Script::kSilent;
  env.connect_all();
  EnsembleExit exit;
  exit.rule.criterion = protocol::ExitCriterion::kConfidence;
  exit.rule.threshold = 0.0f;  // any answer will do
  EnsembleSession e(env.loop().ex(), members(env), {}, exit);
  EnsembleRun r = run(env, e, testing::input_for(2));
  ASSERT_TRUE(r.summary.status.is_ok()) << r.summary.status.to_string();
  EXPECT_EQ(r.summary.final->predicted, 2);
  EXPECT_EQ(r.summary.final->used.size(), 1u);
  EXPECT_TRUE(r.summary.members[0].answered);
  for (size_t i : {1u, 2u}) {
    EXPECT_FALSE(r.summary.members[i].answered);
    EXPECT_EQ(r.summary.members[i].status.code(), Code::kCancelled) << i;
    EXPECT_TRUE(env.eventually([&] { return env.server(i).cancels == 1; })) << i;
  }
}

TEST(EnsembleSession, AMemberWhoseProviderFailsIsCoveredByTheOthers) {
  ClientEnv env(3);
  env.server(1).script = Script::kError;
  env.connect_all();
  EnsembleSession e(env.loop().ex(), members(env));
  EnsembleRun r = run(env, e, testing::input_for(7));
  ASSERT_TRUE(r.summary.status.is_ok()) << r.summary.status.to_string();
  EXPECT_EQ(r.summary.final->predicted, 7);
  EXPECT_EQ(r.summary.final->used.size(), 2u);
  EXPECT_FALSE(r.summary.members[1].answered);
  EXPECT_FALSE(r.summary.members[1].status.is_ok());
}

TEST(EnsembleSession, AMemberThatDisagreesWithTheRestIsExcludedAndReported) {
  ClientEnv env(4);
  env.server(3).script = Script::kWrongClass;
  env.connect_all();
  EnsembleOptions o;
  o.outlier_distance = 0.1;  // the fake servers' one-hot logits give soft probabilities
  EnsembleSession e(env.loop().ex(), members(env), o);
  EnsembleRun r = run(env, e, testing::input_for(5));
  ASSERT_TRUE(r.summary.status.is_ok()) << r.summary.status.to_string();
  EXPECT_EQ(r.summary.final->predicted, 5);
  ASSERT_EQ(r.summary.byzantine.size(), 1u);
  EXPECT_EQ(r.summary.byzantine[0], env.server(3).id());
  EXPECT_TRUE(r.summary.members[3].excluded);
  EXPECT_EQ(r.summary.final->used.size(), 3u);
}

TEST(EnsembleSession, NoMembersOrAServiceTwiceIsRefused) {
  ClientEnv env(1);
  EnsembleSession none(env.loop().ex(), {});
  EXPECT_EQ(run(env, none, testing::input_for(1)).summary.status.code(), Code::kInvalidArgument);
  auto m = members(env);
  EnsembleSession twice(env.loop().ex(), {m[0], m[0]});
  EnsembleRun r = run(env, twice, testing::input_for(1));
  EXPECT_EQ(r.summary.status.code(), Code::kInvalidArgument);
  EXPECT_NE(r.summary.status.message().find("twice"), std::string::npos);
}

}  // namespace
}  // namespace idn::client
