#include "client/session.h"

#include <gtest/gtest.h>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <set>
#include <tuple>

#include "client/client_test_util.h"
#include "core/varint.h"

namespace idn::client {
namespace {

using namespace std::chrono_literals;
using p2p::awaitable;
using testing::ClientEnv;
using testing::Script;
using Outcome = PeerReport::Outcome;

struct RunResult {
  std::vector<Event> events;
  Summary summary;
  std::chrono::milliseconds took{0};
};

// Runs one request to its end on the loop.
RunResult run_request(ClientEnv& env, Session& session, core::Tensor input) {
  return env.loop().run([&]() -> awaitable<RunResult> {
    RunResult r;
    auto t0 = std::chrono::steady_clock::now();
    auto s = session.infer(std::move(input));
    while (auto e = co_await s->next()) r.events.push_back(std::move(*e));
    r.took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - t0);
    r.summary = s->summary();
    co_return r;
  });
}

SessionOptions quick_options() {
  SessionOptions o;
  o.deadline = 5000ms;
  o.inactivity_timeout = 3000ms;
  o.exit_rule.criterion = protocol::ExitCriterion::kLastExit;
  o.output_shape = std::vector<int64_t>{1, testing::kClasses};
  o.cancel_grace = 500ms;
  return o;
}

void expect_improving(const std::vector<Event>& events) {
  for (size_t i = 1; i < events.size(); ++i) {
    std::optional<Event> prev = events[i - 1];
    EXPECT_TRUE(improves(events[i].exit_index, events[i].confidence, prev))
        << "event " << i << " (exit " << events[i].exit_index << ", confidence "
        << events[i].confidence << ") does not improve on exit " << prev->exit_index
        << " confidence " << prev->confidence;
  }
}

TEST(Session, FansOutToSeveralPeersAndMergesTheirAnswersIntoImprovingEvents) {
  ClientEnv env(3);
  for (size_t i = 0; i < 3; ++i) {
    env.server(i).step_delay = 150ms;
    env.server(i).base_confidence = 0.3f + 0.1f * static_cast<float>(i);
  }
  env.connect_all();
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(),
                  quick_options());
  RunResult r = run_request(env, session, testing::input_for(7));
  ASSERT_TRUE(r.summary.status.is_ok()) << r.summary.status.to_string();
  ASSERT_FALSE(r.events.empty());
  expect_improving(r.events);
  // Every peer was asked at once and answered at least its first exit.
  ASSERT_EQ(r.summary.peers.size(), 3u);
  std::set<std::string> asked;  // by text: GCC 12 warns falsely on set<PeerId>
  for (const PeerReport& p : r.summary.peers) {
    asked.insert(p.peer.to_string());
    EXPECT_GE(p.answers, 1u) << p.peer.to_string();
  }
  EXPECT_EQ(asked.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(env.server(i).requests.size(), 1u);
  EXPECT_GE(r.summary.answers, 3u);
  // The first final answer ends the request; the others are cancelled.
  const Event& last = r.events.back();
  EXPECT_EQ(last.exit_index, 2u);
  EXPECT_TRUE(last.final_from_peer);
  EXPECT_EQ(last.predicted, 7);
  ASSERT_TRUE(r.summary.best);
  EXPECT_EQ(r.summary.best->peer, last.peer);
  size_t answered = 0;
  for (const PeerReport& p : r.summary.peers) {
    if (p.outcome == Outcome::kAnswered)
      answered++;
    else
      EXPECT_EQ(p.outcome, Outcome::kFinishedEarly) << outcome_name(p.outcome);
  }
  EXPECT_GE(answered, 1u);
  // Every peer answered something we took and ended well: each gets a Receipt for the
  // operations of its last answer, on its request's stream.
  for (size_t i = 0; i < 3; ++i) {
    const PeerReport& p = r.summary.peers[i];
    EXPECT_EQ(p.receipt_operations, p.operations) << p.peer.to_string();
    size_t k = 0;
    while (env.server(k).id() != p.peer) ++k;
    ASSERT_TRUE(env.eventually([&] { return env.server(k).receipts.size() == 1; }));
    EXPECT_EQ(env.loop().call([&] { return env.server(k).receipts[0].operations; }), p.operations);
  }
  // Each event names the peer that produced it, and that peer sent such an answer.
  for (const Event& e : r.events) {
    bool found = false;
    for (size_t i = 0; i < 3; ++i) {
      if (env.server(i).id() != e.peer) continue;
      for (const auto& p : env.server(i).sent) found |= p.exit_index == e.exit_index;
    }
    EXPECT_TRUE(found);
    EXPECT_GT(e.latency.count(), 0);
  }
  EXPECT_TRUE(env.servers_finished_cleanly());
}

TEST(Session, ASlowPeerDoesNotHoldBackTheAnswerOfAFastOne) {
  ClientEnv env(2);  // fewer providers than the fanout: the request runs with those there are
  env.server(0).step_delay = 2000ms;
  env.connect_all();
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(),
                  quick_options());
  RunResult r = run_request(env, session, testing::input_for(8));
  ASSERT_TRUE(r.summary.status.is_ok()) << r.summary.status.to_string();
  EXPECT_LT(r.took, 1500ms);
  ASSERT_TRUE(r.summary.best);
  EXPECT_EQ(r.summary.best->peer, env.server(1).id());
  ASSERT_EQ(r.summary.peers.size(), 2u);
  EXPECT_EQ(r.summary.peers[0].outcome, Outcome::kFinishedEarly);
  EXPECT_EQ(r.summary.peers[1].outcome, Outcome::kAnswered);
  EXPECT_TRUE(env.eventually([&] { return env.server(0).cancels == 1; }));
}

TEST(Session, TheRequestCarriesServiceExitRuleAndTheTimeLeft) {
  ClientEnv env(1);
  env.connect_all();
  SessionOptions o = quick_options();
  o.exit_rule = {protocol::ExitCriterion::kEntropy, 0.01f};
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(), o);
  RunResult r = run_request(env, session, testing::input_for(4));
  ASSERT_TRUE(r.summary.status.is_ok()) << r.summary.status.to_string();
  ASSERT_EQ(env.server(0).requests.size(), 1u);
  const protocol::InferRequest& req = env.server(0).requests[0];
  EXPECT_EQ(req.service_id, env.service().bytes());
  EXPECT_EQ(req.exit_rule, o.exit_rule);
  EXPECT_GT(req.deadline_ms, 0u);
  EXPECT_LE(req.deadline_ms, 5000u);
  EXPECT_EQ(req.start_stage, 0u);
  EXPECT_FALSE(req.stop_after_stage.has_value());
  EXPECT_EQ(req.input, testing::input_for(4));
  EXPECT_EQ(req.request_id, session.first_request_id());
}

TEST(Session, FinishSendsCancelToEveryPeerStillWorkingAndEndsTheStream) {
  ClientEnv env(3);
  for (size_t i = 0; i < 3; ++i) env.server(i).script = Script::kForever;
  env.connect_all();
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(),
                  quick_options());
  env.loop().run([&]() -> awaitable<void> {
    auto s = session.infer(testing::input_for(3));
    auto first = co_await s->next();
    EXPECT_TRUE(first.has_value());
    std::function<bool()> all_asked_pred = [&] {
      for (size_t i = 0; i < 3; ++i)
        if (env.server(i).requests.empty()) return false;
      return true;
    };
    bool all_asked = co_await env.wait_until(all_asked_pred);
    EXPECT_TRUE(all_asked);
    s->finish();
    EXPECT_TRUE(s->done());
    auto after = co_await s->next();
    EXPECT_FALSE(after.has_value());
    EXPECT_TRUE(s->summary().status.is_ok()) << s->summary().status.to_string();
    std::function<bool()> all_cancelled = [&] {
      for (size_t i = 0; i < 3; ++i)
        if (env.server(i).cancels != 1) return false;
      return true;
    };
    bool cancelled = co_await env.wait_until(all_cancelled);
    EXPECT_TRUE(cancelled) << "every peer must see a Cancel";
    for (const PeerReport& p : s->summary().peers) EXPECT_EQ(p.outcome, Outcome::kFinishedEarly);
  });
  EXPECT_TRUE(env.servers_finished_cleanly());
}

TEST(Session, DroppingTheStreamHandleFinishesTheRequest) {
  ClientEnv env(1);
  env.server(0).script = Script::kSilent;
  env.connect_all();
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(),
                  quick_options());
  env.loop().run([&]() -> awaitable<void> {
    {
      auto s = session.infer(testing::input_for(1));
      std::function<bool()> asked_pred = [&] { return !env.server(0).requests.empty(); };
      bool asked = co_await env.wait_until(asked_pred);
      EXPECT_TRUE(asked);
    }
    std::function<bool()> cancelled_pred = [&] { return env.server(0).cancels == 1; };
    bool cancelled = co_await env.wait_until(cancelled_pred);
    EXPECT_TRUE(cancelled);
  });
}

struct AutoFinishCase {
  const char* name;
  std::optional<float> finish_confidence;
  protocol::ExitRule rule;
  friend void PrintTo(const AutoFinishCase& c, std::ostream* os) { *os << c.name; }
};

class AutoFinish : public ::testing::TestWithParam<AutoFinishCase> {};

TEST_P(AutoFinish, AnAnswerMeetingTheTargetCompletesTheRequestAndCancelsThePeer) {
  ClientEnv env(1);
  env.server(0).script = Script::kTwoThenWait;  // confidences 0.5 (exit 0), 0.7 (exit 1)
  env.connect_all();
  SessionOptions o = quick_options();
  o.finish_confidence = GetParam().finish_confidence;
  o.exit_rule = GetParam().rule;
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(), o);
  RunResult r = run_request(env, session, testing::input_for(4));
  ASSERT_TRUE(r.summary.status.is_ok()) << r.summary.status.to_string();
  ASSERT_EQ(r.events.size(), 2u);
  EXPECT_EQ(r.events.back().exit_index, 1u);
  EXPECT_FALSE(r.events.back().final_from_peer);
  EXPECT_EQ(r.summary.peers.at(0).outcome, Outcome::kFinishedEarly);
  bool cancelled = env.eventually([&] { return env.server(0).cancels == 1; });
  EXPECT_TRUE(cancelled);
}

INSTANTIATE_TEST_SUITE_P(
    Session, AutoFinish,
    ::testing::Values(
        AutoFinishCase{"finish_confidence", 0.65f, {protocol::ExitCriterion::kLastExit, 0}},
        AutoFinishCase{
            "confidence_rule", std::nullopt, {protocol::ExitCriterion::kConfidence, 0.65f}},
        AutoFinishCase{"entropy_rule", std::nullopt, {protocol::ExitCriterion::kEntropy, 0.35f}}),
    [](const auto& info) { return std::string(info.param.name); });

struct RerouteCase {
  const char* name;
  Script script;
  Outcome outcome;
  bool expects_cancel;  // the bad peer may still be working, so it must get a Cancel
  friend void PrintTo(const RerouteCase& c, std::ostream* os) { *os << c.name; }
};

class Reroute : public ::testing::TestWithParam<RerouteCase> {};

TEST_P(Reroute, AFailingPeerIsDroppedReportedAndReplacedByAnotherProvider) {
  ClientEnv env(2);
  env.server(0).script = GetParam().script;
  env.server(0).base_confidence = 0.9f;  // its answers, if any, look attractive
  env.connect_all();
  SessionOptions o = quick_options();
  o.fanout = 1;
  o.inactivity_timeout = 300ms;
  Session session(env.loop().ex(), env.client(), env.providers({0, 1}), env.service(), o);
  RunResult r = run_request(env, session, testing::input_for(5));
  ASSERT_TRUE(r.summary.status.is_ok()) << r.summary.status.to_string();
  ASSERT_EQ(r.summary.peers.size(), 2u);
  EXPECT_EQ(r.summary.peers[0].peer, env.server(0).id());
  EXPECT_EQ(r.summary.peers[0].outcome, GetParam().outcome)
      << outcome_name(r.summary.peers[0].outcome) << ": " << r.summary.peers[0].detail;
  EXPECT_FALSE(r.summary.peers[0].detail.empty());
  EXPECT_EQ(r.summary.peers[1].peer, env.server(1).id());
  EXPECT_EQ(r.summary.peers[1].outcome, Outcome::kAnswered);
  // The replacement was asked for with the failed peer excluded.
  EXPECT_EQ(env.provider_calls(), 2);
  EXPECT_EQ(env.loop().call([&] { return env.last_exclude(); }),
            std::vector<identity::PeerId>{env.server(0).id()});
  ASSERT_TRUE(r.summary.best);
  EXPECT_EQ(r.summary.best->peer, env.server(1).id());
  EXPECT_EQ(r.summary.best->exit_index, 2u);
  EXPECT_EQ(r.summary.best->predicted, 5);
  // Malformed answers never surface as events.
  for (const Event& e : r.events) {
    EXPECT_EQ(e.output.shape, (std::vector<int64_t>{1, testing::kClasses}));
    for (float v : e.output.f32()) EXPECT_TRUE(std::isfinite(v));
  }
  if (GetParam().expects_cancel) {
    bool cancelled = env.eventually([&] { return env.server(0).cancels == 1; });
    EXPECT_TRUE(cancelled) << "the dropped peer must see a Cancel";
  }
  if (GetParam().outcome == Outcome::kRefused) {
    EXPECT_NE(r.summary.peers[0].detail.find(testing::kRefuseReason), std::string::npos)
        << r.summary.peers[0].detail;
  }
  // Only the peer whose answer was taken is receipted, for its final answer's operations.
  EXPECT_EQ(r.summary.peers[0].receipt_operations, 0u);
  EXPECT_EQ(r.summary.peers[1].receipt_operations, 3000u);
  ASSERT_TRUE(env.eventually([&] { return env.server(1).receipts.size() == 1; }));
  EXPECT_EQ(env.loop().call([&] { return env.server(0).receipts.size(); }), 0u);
  if (GetParam().script != Script::kVanish) {
    EXPECT_TRUE(env.servers_finished_cleanly());
  }
}

INSTANTIATE_TEST_SUITE_P(
    Session, Reroute,
    ::testing::Values(RerouteCase{"busy", Script::kBusy, Outcome::kBusy, false},
                      RerouteCase{"error", Script::kError, Outcome::kError, false},
                      RerouteCase{"silent", Script::kSilent, Outcome::kTimedOut, true},
                      RerouteCase{"wrong_shape", Script::kWrongShape, Outcome::kMalformed, true},
                      RerouteCase{"nan", Script::kNaN, Outcome::kMalformed, true},
                      RerouteCase{"exit_backwards", Script::kBackwards, Outcome::kMalformed, true},
                      RerouteCase{"vanish", Script::kVanish, Outcome::kVanished, false},
                      RerouteCase{"refused", Script::kRefuse, Outcome::kRefused, false}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Session, DeadlineEndsTheStreamWithTimeoutAndKeepsTheBestAnswerSoFar) {
  ClientEnv env(2);
  env.server(0).script = Script::kForever;  // one answer, then nothing
  env.server(1).script = Script::kSilent;
  env.connect_all();
  SessionOptions o = quick_options();
  o.deadline = 400ms;
  o.inactivity_timeout = 20s;  // only the deadline can end this request
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(), o);
  RunResult r = run_request(env, session, testing::input_for(2));
  EXPECT_EQ(r.summary.status.code(), Code::kTimeout) << r.summary.status.to_string();
  EXPECT_GE(r.took, 400ms);
  EXPECT_LT(r.took, 4000ms);
  ASSERT_TRUE(r.summary.best);
  EXPECT_EQ(r.summary.best->peer, env.server(0).id());
  EXPECT_EQ(r.summary.best->predicted, 2);
  EXPECT_NE(r.summary.status.message().find("best so far"), std::string::npos);
  bool cancelled =
      env.eventually([&] { return env.server(0).cancels == 1 && env.server(1).cancels == 1; });
  EXPECT_TRUE(cancelled);
}

TEST(Session, InferOnceReturnsTheErrorWhenTheDeadlinePassesWithoutAnAnswer) {
  ClientEnv env(1);
  env.server(0).script = Script::kSilent;
  env.connect_all();
  SessionOptions o = quick_options();
  o.deadline = 300ms;
  o.inactivity_timeout = 20s;
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(), o);
  auto r = env.loop().run([&]() { return session.infer_once(testing::input_for(1)); });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kTimeout);
  EXPECT_NE(r.status().message().find("no answer arrived"), std::string::npos);
}

TEST(Session, NoProviderIsNotFound) {
  ClientEnv env(0);
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(),
                  quick_options());
  RunResult r = run_request(env, session, testing::input_for(1));
  EXPECT_EQ(r.summary.status.code(), Code::kNotFound) << r.summary.status.to_string();
  EXPECT_TRUE(r.events.empty());
  EXPECT_EQ(r.summary.bytes_sent, 0u);
}

TEST(Session, AProviderSourceErrorIsReportedWithContext) {
  ClientEnv env(0);
  ProviderSource failing =
      [](const core::Multihash&, size_t,
         const std::vector<identity::PeerId>&) -> awaitable<Result<std::vector<identity::PeerId>>> {
    co_return Status::unavailable("DHT not bootstrapped");
  };
  Session session(env.loop().ex(), env.client(), failing, env.service(), quick_options());
  RunResult r = run_request(env, session, testing::input_for(1));
  EXPECT_EQ(r.summary.status.code(), Code::kUnavailable);
  EXPECT_NE(r.summary.status.message().find("DHT not bootstrapped"), std::string::npos);
  EXPECT_NE(r.summary.status.message().find("finding providers"), std::string::npos);
}

TEST(Session, StopsAfterMaxAttemptsWhenEveryPeerFails) {
  ClientEnv env(5);
  for (size_t i = 0; i < 5; ++i) env.server(i).script = Script::kBusy;
  env.connect_all();
  SessionOptions o = quick_options();
  o.fanout = 2;
  o.max_attempts = 3;
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(), o);
  RunResult r = run_request(env, session, testing::input_for(1));
  EXPECT_EQ(r.summary.status.code(), Code::kUnavailable) << r.summary.status.to_string();
  EXPECT_NE(r.summary.status.message().find("max_attempts (3)"), std::string::npos);
  ASSERT_EQ(r.summary.peers.size(), 3u);
  for (const PeerReport& p : r.summary.peers) EXPECT_EQ(p.outcome, Outcome::kBusy);
  const SessionStats& stats = session.stats();
  EXPECT_EQ(stats.completed, 1u);
  EXPECT_EQ(stats.unavailable, 1u);
  EXPECT_EQ(stats.ok, 0u);
  EXPECT_EQ(stats.peer_outcomes[static_cast<size_t>(Outcome::kBusy)], 3u);
  size_t asked = 0;
  for (size_t i = 0; i < 5; ++i) asked += env.server(i).requests.size();
  EXPECT_EQ(asked, 3u);
  EXPECT_FALSE(r.summary.best);
}

TEST(Session, ABusyPeerIsAskedAgainAfterRetryAfterWhenNoOtherProviderExists) {
  ClientEnv env(1);
  env.server(0).script = Script::kBusyOnce;
  env.server(0).retry_after_ms = 100;
  env.connect_all();
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(),
                  quick_options());
  RunResult r = run_request(env, session, testing::input_for(9));
  ASSERT_TRUE(r.summary.status.is_ok()) << r.summary.status.to_string();
  EXPECT_GE(r.took, 100ms);
  ASSERT_EQ(r.summary.peers.size(), 2u);  // one report per attempt
  EXPECT_EQ(r.summary.peers[0].outcome, Outcome::kBusy);
  EXPECT_EQ(r.summary.peers[1].outcome, Outcome::kAnswered);
  EXPECT_EQ(r.summary.peers[0].peer, r.summary.peers[1].peer);
  EXPECT_EQ(env.server(0).requests.size(), 2u);
  ASSERT_TRUE(r.summary.best);
  EXPECT_EQ(r.summary.best->predicted, 9);
}

TEST(Session, ABusyPeerWhoseRetryFallsAfterTheDeadlineIsNotWaitedFor) {
  ClientEnv env(1);
  env.server(0).script = Script::kBusy;
  env.server(0).retry_after_ms = 60000;
  env.connect_all();
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(),
                  quick_options());
  RunResult r = run_request(env, session, testing::input_for(1));
  EXPECT_EQ(r.summary.status.code(), Code::kUnavailable) << r.summary.status.to_string();
  EXPECT_LT(r.took, 2000ms);
  EXPECT_EQ(env.server(0).requests.size(), 1u);
}

TEST(Session, AnAlwaysBusyPeerIsRetriedOnlyUntilMaxAttempts) {
  ClientEnv env(1);
  env.server(0).script = Script::kBusy;
  env.server(0).retry_after_ms = 0;  // the client still waits its minimum between tries
  env.connect_all();
  SessionOptions o = quick_options();
  o.max_attempts = 4;
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(), o);
  RunResult r = run_request(env, session, testing::input_for(1));
  EXPECT_EQ(r.summary.status.code(), Code::kUnavailable) << r.summary.status.to_string();
  EXPECT_NE(r.summary.status.message().find("max_attempts (4)"), std::string::npos);
  EXPECT_EQ(env.server(0).requests.size(), 4u);
}

TEST(Session, CountsTheBytesOfEveryMessageOnTheWire) {
  ClientEnv env(1);
  env.connect_all();
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(),
                  quick_options());
  RunResult r = run_request(env, session, testing::input_for(6));
  ASSERT_TRUE(r.summary.status.is_ok()) << r.summary.status.to_string();
  auto frame = [](const Bytes& payload) {
    return core::uvarint_size(payload.size()) + payload.size();
  };
  auto [sent, received] = env.loop().call([&] {
    uint64_t out = 0, in = 0;
    for (const auto& req : env.server(0).requests)
      out += frame(protocol::encode(protocol::InferClientMessage{req}));
    for (const auto& p : env.server(0).sent)
      in += frame(protocol::encode(protocol::InferServerMessage{p}));
    return std::pair<uint64_t, uint64_t>{out, in};
  });
  EXPECT_EQ(env.server(0).sent.size(), 3u);
  // The request; a final answer needs no Cancel. The receipt follows the answer, after the
  // caller had it: the summary taken at the end may not count it yet.
  ASSERT_TRUE(env.eventually([&] { return env.server(0).receipts.size() == 1; }));
  uint64_t receipt = env.loop().call([&] {
    return frame(protocol::encode(protocol::InferClientMessage{env.server(0).receipts[0]}));
  });
  EXPECT_TRUE(r.summary.bytes_sent == sent || r.summary.bytes_sent == sent + receipt)
      << r.summary.bytes_sent;
  EXPECT_EQ(r.summary.bytes_received, received);
  EXPECT_EQ(session.stats().bytes_sent, sent + receipt);
  EXPECT_EQ(session.stats().bytes_received, received);
  EXPECT_GT(sent, 4u * sizeof(float));
}

TEST(Session, ConfidentLocalPrefixAnswersWithoutSendingAnything) {
  ClientEnv env(1);
  env.connect_all();
  SessionOptions o = quick_options();
  int calls = 0;
  o.local_prefix = [&](const core::Tensor& input) -> Result<LocalStep> {
    calls++;
    LocalStep step;
    step.local_answer = Event{env.client().id(),
                              0,
                              core::Tensor::f32({1, 3}, std::vector<float>{0.1f, 0.8f, 0.1f}),
                              0.8f,
                              0.2f,
                              10,
                              true,
                              false,
                              {},
                              -1};
    step.confident = true;
    step.activation = input;
    return step;
  };
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(), o);
  RunResult r = run_request(env, session, testing::input_for(1));
  ASSERT_TRUE(r.summary.status.is_ok()) << r.summary.status.to_string();
  EXPECT_EQ(calls, 1);
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_TRUE(r.events[0].local);
  EXPECT_EQ(r.events[0].peer, env.client().id());
  EXPECT_EQ(r.events[0].predicted, 1);
  EXPECT_EQ(r.summary.bytes_sent, 0u);
  EXPECT_TRUE(r.summary.peers.empty());
  EXPECT_EQ(env.provider_calls(), 0);
  EXPECT_TRUE(env.server(0).requests.empty());
  EXPECT_EQ(session.stats().local_answers, 1u);
  EXPECT_EQ(session.stats().bytes_sent, 0u);
}

TEST(Session, UnconfidentLocalPrefixSendsTheActivationFromTheNextStage) {
  ClientEnv env(1);
  env.connect_all();
  SessionOptions o = quick_options();
  core::Tensor activation = core::Tensor::f32({1, 8}, std::vector<float>{9, 0, 0, 0, 0, 0, 0, 1});
  o.local_prefix = [&](const core::Tensor&) -> Result<LocalStep> {
    LocalStep step;
    step.local_answer = Event{env.client().id(),
                              0,
                              core::Tensor::f32({1, 3}, std::vector<float>{0.4f, 0.3f, 0.3f}),
                              0.4f,
                              0.9f,
                              10,
                              false,
                              false,
                              {},
                              -1};
    step.confident = false;
    step.activation = activation;
    step.next_stage = 1;
    return step;
  };
  o.output_shape.reset();  // the local exit has its own shape
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(), o);
  RunResult r = run_request(env, session, testing::input_for(1));
  ASSERT_TRUE(r.summary.status.is_ok()) << r.summary.status.to_string();
  ASSERT_EQ(env.server(0).requests.size(), 1u);
  EXPECT_EQ(env.server(0).requests[0].input, activation);
  EXPECT_EQ(env.server(0).requests[0].start_stage, 1u);
  // The local answer first, then the peer's exits 1 and 2 (answering class 9 of the activation).
  ASSERT_EQ(r.events.size(), 3u);
  EXPECT_TRUE(r.events[0].local);
  EXPECT_EQ(r.events[1].exit_index, 1u);
  EXPECT_EQ(r.events[2].exit_index, 2u);
  EXPECT_EQ(r.events[2].predicted, 9);
  EXPECT_EQ(r.events[2].peer, env.server(0).id());
}

TEST(Session, ALocalPrefixErrorEndsTheRequest) {
  ClientEnv env(1);
  env.connect_all();
  SessionOptions o = quick_options();
  o.local_prefix = [](const core::Tensor&) -> Result<LocalStep> {
    return Status::invalid_argument("input has 3 channels, the model wants 1");
  };
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(), o);
  RunResult r = run_request(env, session, testing::input_for(1));
  EXPECT_EQ(r.summary.status.code(), Code::kInvalidArgument);
  EXPECT_NE(r.summary.status.message().find("local prefix"), std::string::npos);
  EXPECT_TRUE(env.server(0).requests.empty());
}

TEST(Session, InvalidOptionsAndInputsAreRefused) {
  ClientEnv env(1);
  env.connect_all();
  SessionOptions o = quick_options();
  o.fanout = 0;
  Session bad(env.loop().ex(), env.client(), env.all_providers(), env.service(), o);
  RunResult r = run_request(env, bad, testing::input_for(1));
  EXPECT_EQ(r.summary.status.code(), Code::kInvalidArgument);
  EXPECT_NE(r.summary.status.message().find("fanout"), std::string::npos);

  Session good(env.loop().ex(), env.client(), env.all_providers(), env.service(), quick_options());
  core::Tensor broken = testing::input_for(1);
  broken.bytes.pop_back();
  RunResult r2 = run_request(env, good, broken);
  EXPECT_EQ(r2.summary.status.code(), Code::kInvalidArgument);
  EXPECT_TRUE(env.server(0).requests.empty());
}

TEST(Session, HundredConcurrentRequestsEachGetTheirOwnAnswer) {
  ClientEnv env(3);
  env.connect_all();
  SessionOptions o = quick_options();
  o.fanout = 2;
  o.deadline = 15000ms;
  o.inactivity_timeout = 10000ms;
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(), o);
  constexpr int kRequests = 100;
  struct Outcome100 {
    int ok = 0, right = 0;
    std::set<uint64_t> ids;
  };
  Outcome100 out = env.loop().run(
      [&]() -> awaitable<Outcome100> {
        std::vector<std::shared_ptr<InferStream>> streams;
        for (int i = 0; i < kRequests; ++i) streams.push_back(session.infer(testing::input_for(i)));
        Outcome100 o;
        for (int i = 0; i < kRequests; ++i) {
          while (co_await streams[i]->next()) {
          }
          const Summary& s = streams[i]->summary();
          o.ids.insert(streams[i]->request_id());
          if (s.status.is_ok()) o.ok++;
          if (s.best && s.best->predicted == i % testing::kClasses) o.right++;
        }
        co_return o;
      },
      60s);
  EXPECT_EQ(out.ok, kRequests);
  EXPECT_EQ(out.right, kRequests);
  EXPECT_EQ(out.ids.size(), static_cast<size_t>(kRequests));
  // Each server saw distinct request ids.
  for (size_t s = 0; s < 3; ++s) {
    std::set<uint64_t> seen;
    for (const auto& req : env.server(s).requests) seen.insert(req.request_id);
    EXPECT_EQ(seen.size(), env.server(s).requests.size());
  }
  EXPECT_EQ(session.requests_started(), static_cast<uint64_t>(kRequests));
  auto stats = env.loop().call([&] { return session.stats(); });
  EXPECT_EQ(stats.started, static_cast<uint64_t>(kRequests));
  EXPECT_EQ(stats.completed, static_cast<uint64_t>(kRequests));
  EXPECT_EQ(stats.ok, static_cast<uint64_t>(kRequests));
  EXPECT_GE(stats.events, static_cast<uint64_t>(kRequests));
}

// Records what a session tells its RequestObserver; decides with a fixed ranking.
struct Recorder : RequestObserver {
  std::vector<PeerReport> done;
  std::vector<std::pair<identity::PeerId, protocol::Receipt>> receipts;
  std::vector<std::pair<identity::PeerId, bool>> verdicts;
  void on_peer_done(const core::Multihash&, uint64_t, const PeerReport& r) override {
    done.push_back(r);
  }
  void on_receipt_sent(const identity::PeerId& p, protocol::Receipt r) override {
    receipts.emplace_back(p, std::move(r));
  }
  void on_challenge(const core::Multihash&, const identity::PeerId& p, bool passed,
                    const std::string&) override {
    verdicts.emplace_back(p, passed);
  }
};

struct Ranking : ProviderSelector {
  std::vector<identity::PeerId> order;  // asked in this order; others are left out
  std::vector<std::vector<identity::PeerId>> offered;
  std::vector<identity::PeerId> select(const core::Multihash&,
                                       std::vector<identity::PeerId> candidates) override {
    offered.push_back(candidates);
    std::vector<identity::PeerId> out;
    for (const auto& p : order)
      if (std::find(candidates.begin(), candidates.end(), p) != candidates.end()) out.push_back(p);
    return out;
  }
};

TEST(Session, TheReceiptConfirmsTheAcceptedAnswerOnItsStreamAfterTheCallerHasIt) {
  ClientEnv env(1);
  env.connect_all();
  SessionOptions o = quick_options();
  auto rec = std::make_shared<Recorder>();
  o.observer = rec;
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(), o);
  RunResult r = run_request(env, session, testing::input_for(4));
  ASSERT_TRUE(r.summary.status.is_ok()) << r.summary.status.to_string();
  ASSERT_TRUE(env.eventually([&] { return env.server(0).receipts.size() == 1; }));
  auto got = env.loop().call([&] { return env.server(0).receipts[0]; });
  EXPECT_EQ(got.request_id, env.loop().call([&] { return env.server(0).requests[0].request_id; }));
  EXPECT_EQ(got.service_id, env.service().bytes());
  EXPECT_EQ(got.operations, 3000u);  // the final answer's (exit 2) cumulative operations
  EXPECT_EQ(got.server, env.server(0).id().bytes());
  EXPECT_EQ(got.signer, env.client().id().bytes());
  EXPECT_TRUE(got.signature.empty());  // Noise authenticates the stream
  EXPECT_GT(got.unix_ms, 0u);
  EXPECT_EQ(r.summary.peers[0].receipt_operations, 3000u);
  env.loop().call([&] {
    EXPECT_EQ(session.stats().receipts_sent, 1u);
    EXPECT_EQ(session.stats().receipted_operations, 3000u);
    EXPECT_EQ(rec->receipts.size(), 1u);
    if (!rec->receipts.empty()) {
      EXPECT_EQ(rec->receipts[0].first, env.server(0).id());
      EXPECT_EQ(rec->receipts[0].second, got);
    }
    EXPECT_EQ(rec->done.size(), 1u);
    if (!rec->done.empty()) {
      EXPECT_EQ(rec->done[0].outcome, Outcome::kAnswered);
    }
    return 0;
  });
  EXPECT_TRUE(env.servers_finished_cleanly());
}

TEST(Session, WithReceiptsOffNothingFollowsTheAnswer) {
  ClientEnv env(1);
  env.connect_all();
  SessionOptions o = quick_options();
  o.send_receipts = false;
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(), o);
  RunResult r = run_request(env, session, testing::input_for(4));
  ASSERT_TRUE(r.summary.status.is_ok()) << r.summary.status.to_string();
  EXPECT_TRUE(env.servers_finished_cleanly());
  EXPECT_EQ(env.loop().call([&] { return env.server(0).receipts.size(); }), 0u);
  EXPECT_EQ(r.summary.peers[0].receipt_operations, 0u);
}

TEST(Session, TheSelectorsOrderIsHonouredAndPeersItLeavesOutAreNeverAsked) {
  ClientEnv env(3);
  env.server(2).script = Script::kRefuse;  // asked first, refuses: the next ranked one follows
  env.connect_all();
  SessionOptions o = quick_options();
  o.fanout = 1;
  o.candidates = 3;  // the selector chooses among all three
  auto sel = std::make_shared<Ranking>();
  sel->order = {env.server(2).id(), env.server(0).id()};  // server 1 is left out
  o.selector = sel;
  Session session(env.loop().ex(), env.client(), env.providers({0, 1, 2}), env.service(), o);
  RunResult r = run_request(env, session, testing::input_for(3));
  ASSERT_TRUE(r.summary.status.is_ok()) << r.summary.status.to_string();
  ASSERT_EQ(r.summary.peers.size(), 2u);
  EXPECT_EQ(r.summary.peers[0].peer, env.server(2).id());
  EXPECT_EQ(r.summary.peers[0].outcome, Outcome::kRefused);
  EXPECT_EQ(r.summary.peers[1].peer, env.server(0).id());
  EXPECT_EQ(r.summary.peers[1].outcome, Outcome::kAnswered);
  EXPECT_EQ(env.loop().call([&] { return env.server(1).requests.size(); }), 0u);
  // The reroute took the selector's second choice without asking the source again.
  EXPECT_EQ(env.provider_calls(), 1);
  EXPECT_EQ(env.loop().call([&] { return sel->offered.size(); }), 1u);
  EXPECT_TRUE(env.servers_finished_cleanly());
}

TEST(Session, WhenTheSelectorLeavesEveryCandidateOutTheSourceIsAskedForOthers) {
  ClientEnv env(2);
  env.connect_all();
  SessionOptions o = quick_options();
  o.fanout = 1;
  auto sel = std::make_shared<Ranking>();
  sel->order = {env.server(0).id()};  // never server 1 (say, it ignores us)
  o.selector = sel;
  Session session(env.loop().ex(), env.client(), env.providers({1, 0}), env.service(), o);
  RunResult r = run_request(env, session, testing::input_for(2));
  ASSERT_TRUE(r.summary.status.is_ok()) << r.summary.status.to_string();
  ASSERT_EQ(r.summary.peers.size(), 1u);
  EXPECT_EQ(r.summary.peers[0].peer, env.server(0).id());
  EXPECT_EQ(env.provider_calls(), 2);
  EXPECT_EQ(env.loop().call([&] { return env.last_exclude(); }),
            std::vector<identity::PeerId>{env.server(1).id()});
  EXPECT_EQ(env.loop().call([&] { return env.server(1).requests.size(); }), 0u);
}

TEST(Session, WithoutASelectorProvidersAreAskedInTheSourcesOrder) {
  ClientEnv env(3);
  env.connect_all();
  SessionOptions o = quick_options();
  o.fanout = 1;
  o.candidates = 3;
  env.server(1).script = Script::kRefuse;
  Session session(env.loop().ex(), env.client(), env.providers({1, 2, 0}), env.service(), o);
  RunResult r = run_request(env, session, testing::input_for(2));
  ASSERT_TRUE(r.summary.status.is_ok()) << r.summary.status.to_string();
  ASSERT_EQ(r.summary.peers.size(), 2u);
  EXPECT_EQ(r.summary.peers[0].peer, env.server(1).id());
  EXPECT_EQ(r.summary.peers[1].peer, env.server(2).id());
  EXPECT_EQ(env.provider_calls(), 1);
}

// Runs one challenge to its end on the loop.
RunResult run_challenge(ClientEnv& env, Session& session, core::Tensor input, Challenge c) {
  return env.loop().run([&]() -> awaitable<RunResult> {
    RunResult r;
    auto s = session.challenge(std::move(input), std::move(c));
    while (auto e = co_await s->next()) r.events.push_back(std::move(*e));
    r.summary = s->summary();
    co_return r;
  });
}

TEST(Session, AChallengeAnsweredRightPassesAndIsReceiptedAWrongOneFailsWithoutReceipt) {
  ClientEnv env(2);
  env.server(0).script = Script::kWrongClass;
  env.connect_all();
  SessionOptions o = quick_options();
  o.finish_confidence = 0.1f;  // ignored by a challenge: only final answers are judged
  auto rec = std::make_shared<Recorder>();
  o.observer = rec;
  Session session(env.loop().ex(), env.client(), env.providers({0, 1}), env.service(), o);
  Challenge c;
  c.expected.predicted = 6;
  c.expected.exit_index = 2;
  std::vector<float> one_hot(testing::kClasses, 0.0f);
  one_hot[6] = 1.0f;
  c.expected.output = core::Tensor::f32({testing::kClasses}, one_hot);

  c.peer = env.server(0).id();
  RunResult bad = run_challenge(env, session, testing::input_for(6), c);
  EXPECT_EQ(bad.summary.status.code(), Code::kUnavailable) << bad.summary.status.to_string();
  EXPECT_TRUE(bad.events.empty()) << "a wrong challenge answer reached the caller";
  ASSERT_EQ(bad.summary.peers.size(), 1u);  // aimed at one peer: nobody else is asked
  EXPECT_EQ(bad.summary.peers[0].outcome, Outcome::kWrongAnswer);
  EXPECT_EQ(bad.summary.peers[0].challenge_passed, std::optional<bool>(false));
  EXPECT_EQ(bad.summary.peers[0].receipt_operations, 0u);

  c.peer = env.server(1).id();
  RunResult good = run_challenge(env, session, testing::input_for(6), c);
  ASSERT_TRUE(good.summary.status.is_ok()) << good.summary.status.to_string();
  ASSERT_EQ(good.summary.peers.size(), 1u);
  EXPECT_EQ(good.summary.peers[0].outcome, Outcome::kAnswered);
  EXPECT_EQ(good.summary.peers[0].challenge_passed, std::optional<bool>(true));
  ASSERT_TRUE(good.summary.best);
  EXPECT_EQ(good.summary.best->exit_index, 2u);  // finish_confidence did not cut it short
  ASSERT_TRUE(env.eventually([&] { return env.server(1).receipts.size() == 1; }));
  EXPECT_TRUE(env.servers_finished_cleanly());
  env.loop().call([&] {
    EXPECT_EQ(env.server(0).receipts.size(), 0u);
    EXPECT_EQ(session.stats().challenges_failed, 1u);
    EXPECT_EQ(session.stats().challenges_passed, 1u);
    EXPECT_EQ(rec->verdicts.size(), 2u);
    if (rec->verdicts.size() == 2) {
      EXPECT_EQ(rec->verdicts[0], std::make_pair(env.server(0).id(), false));
      EXPECT_EQ(rec->verdicts[1], std::make_pair(env.server(1).id(), true));
    }
    return 0;
  });
}

TEST(Session, AChallengeThatChecksNothingIsRefused) {
  ClientEnv env(1);
  env.connect_all();
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(),
                  quick_options());
  RunResult r = run_challenge(env, session, testing::input_for(1), Challenge{});
  EXPECT_EQ(r.summary.status.code(), Code::kInvalidArgument) << r.summary.status.to_string();
  EXPECT_EQ(env.loop().call([&] { return env.server(0).requests.size(); }), 0u);
}

// The node's challenge policy hangs on on_complete: it sees the caller's input and every peer's
// answers by exit, so a fan-out peer naming another class than the others can be told apart.
// Challenges themselves do not call it.
TEST(Session, OnCompleteSeesTheInputAndEveryPeersAnswersByExit) {
  ClientEnv env(3);
  for (size_t i = 0; i < 3; ++i) env.server(i).step_delay = 100ms;  // every exit 0 comes first
  env.server(2).script = Script::kWrongClass;
  env.connect_all();
  struct Seen {
    int calls = 0;
    core::Tensor input;
    Summary summary;
  };
  auto seen = std::make_shared<Seen>();
  SessionOptions o = quick_options();
  o.on_complete = [seen](const core::Tensor& input, const Summary& s) {
    seen->calls++;
    seen->input = input;
    seen->summary = s;
  };
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(), o);
  RunResult r = run_request(env, session, testing::input_for(4));
  ASSERT_TRUE(r.summary.status.is_ok()) << r.summary.status.to_string();
  env.loop().call([&] {
    EXPECT_EQ(seen->calls, 1);
    EXPECT_EQ(seen->input, testing::input_for(4));
    EXPECT_EQ(seen->summary.peers.size(), 3u);
    for (const PeerReport& p : seen->summary.peers) {
      if (p.votes.empty()) {
        ADD_FAILURE() << p.peer.to_string() << " has no answers";
        continue;
      }
      EXPECT_EQ(p.votes.size(), p.answers);
      EXPECT_EQ(p.votes[0].exit_index, 0u);
      EXPECT_EQ(p.votes[0].predicted, p.peer == env.server(2).id() ? 5 : 4);
    }
    EXPECT_EQ(disagreeing_peers(seen->summary.peers),
              std::vector<identity::PeerId>{env.server(2).id()});
    return 0;
  });
  KnownAnswer known;
  known.predicted = 4;
  RunResult c =
      run_challenge(env, session, testing::input_for(4), Challenge{known, env.server(0).id()});
  EXPECT_TRUE(c.summary.status.is_ok()) << c.summary.status.to_string();
  EXPECT_EQ(env.loop().call([&] { return seen->calls; }), 1) << "a challenge is not reported";
}

// ---- keep-alive streams ----

uint64_t framed_size(const Bytes& payload) {
  return core::uvarint_size(payload.size()) + payload.size();
}

// Waits until `pred` (on the loop) holds, looking every 2 ms: for state that changes with time
// (idle limits) and wakes no fake server. False after `timeout`.
bool poll_until(ClientEnv& env, std::function<bool()> pred,
                std::chrono::milliseconds timeout = 10s) {
  return env.loop().run([&]() -> awaitable<bool> {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    boost::asio::steady_timer t(env.loop().ex());
    while (!pred()) {
      if (std::chrono::steady_clock::now() >= deadline) co_return false;
      t.expires_after(2ms);
      co_await t.async_wait(boost::asio::use_awaitable);
    }
    co_return true;
  });
}

TEST(Session, ASecondRequestToTheSameProviderGoesOnTheKeptStreamAndIsCountedExactly) {
  ClientEnv env(1);
  env.connect_all();
  SessionOptions o = quick_options();
  o.fanout = 1;
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(), o);
  RunResult a = run_request(env, session, testing::input_for(3));
  RunResult b = run_request(env, session, testing::input_for(4));
  ASSERT_TRUE(a.summary.status.is_ok()) << a.summary.status.to_string();
  ASSERT_TRUE(b.summary.status.is_ok()) << b.summary.status.to_string();
  EXPECT_EQ(a.summary.best->predicted, 3);
  EXPECT_EQ(b.summary.best->predicted, 4);
  ASSERT_TRUE(env.eventually([&] { return env.server(0).receipts.size() == 2; }));
  auto [kept, errors] = env.loop().call([&] {
    const auto& st = env.server(0).dispatcher->stats();
    return std::pair<uint64_t, uint64_t>{st.kept_requests, st.stream_errors};
  });
  EXPECT_EQ(kept, 1u);
  EXPECT_EQ(errors, 0u);
  auto requests = env.loop().call([&] { return env.server(0).requests; });
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_TRUE(requests[0].keep_open);
  // The handler sees the second request complete: the service and exit rule it inherited.
  EXPECT_EQ(requests[1].service_id, env.service().bytes());
  EXPECT_EQ(requests[1].exit_rule.criterion, protocol::ExitCriterion::kLastExit);
  EXPECT_GT(requests[1].deadline_ms, 0u);

  // Bytes: the first request as sent, the second without what it inherits (its deadline too
  // when it rounded to the first one's), every answer and both receipts.
  auto [expected_sent, alternative_sent, expected_received] = env.loop().call([&] {
    const testing::FakeServer& sv = env.server(0);
    protocol::InferRequest second = sv.requests[1];
    second.service_id.clear();
    second.exit_rule = {};
    second.exit_rule_inherited = true;
    uint64_t common = framed_size(protocol::encode(protocol::InferClientMessage{sv.requests[0]}));
    for (const auto& r : sv.receipts)
      common += framed_size(protocol::encode(protocol::InferClientMessage{r}));
    uint64_t with_deadline =
        common + framed_size(protocol::encode(protocol::InferClientMessage{second}));
    second.deadline_ms = 0;
    uint64_t without = common + framed_size(protocol::encode(protocol::InferClientMessage{second}));
    uint64_t in = 0;
    for (const auto& p : sv.sent)
      in += framed_size(protocol::encode(protocol::InferServerMessage{p}));
    return std::tuple<uint64_t, uint64_t, uint64_t>{without, with_deadline, in};
  });
  const uint64_t sent = env.loop().call([&] { return session.stats().bytes_sent; });
  EXPECT_TRUE(sent == expected_sent || sent == alternative_sent)
      << sent << " vs " << expected_sent << " or " << alternative_sent;
  EXPECT_EQ(env.loop().call([&] { return session.stats().bytes_received; }), expected_received);
  // The second request left out at least the 34-byte service ID.
  EXPECT_LT(b.summary.bytes_sent + 34, a.summary.bytes_sent);
  EXPECT_EQ(env.loop().call([&] { return session.idle_streams(); }), 1u);
}

TEST(Session, WithoutKeepAliveEveryRequestOpensItsOwnStream) {
  ClientEnv env(1);
  env.connect_all();
  SessionOptions o = quick_options();
  o.fanout = 1;
  o.keep_alive = false;
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(), o);
  for (int k : {1, 2}) {
    RunResult r = run_request(env, session, testing::input_for(k));
    ASSERT_TRUE(r.summary.status.is_ok()) << r.summary.status.to_string();
  }
  auto requests = env.loop().call([&] { return env.server(0).requests; });
  ASSERT_EQ(requests.size(), 2u);
  for (const auto& r : requests) EXPECT_FALSE(r.keep_open);
  EXPECT_EQ(env.loop().call([&] { return env.server(0).dispatcher->stats().kept_requests; }), 0u);
  EXPECT_TRUE(env.servers_finished_cleanly());
}

TEST(Session, AProviderThatNeverSaysStreamOpenIsNeverSentASecondRequestOnAStream) {
  ClientEnv env(1);
  env.loop().call([&] {
    env.server(0).dispatcher->set_keep_alive({1, 30s});  // answers as an older server does
    return 0;
  });
  env.connect_all();
  SessionOptions o = quick_options();
  o.fanout = 1;
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(), o);
  for (int k : {1, 2, 3}) {
    RunResult r = run_request(env, session, testing::input_for(k));
    ASSERT_TRUE(r.summary.status.is_ok()) << r.summary.status.to_string();
    EXPECT_EQ(r.summary.best->predicted, k);
  }
  auto requests = env.loop().call([&] { return env.server(0).requests; });
  ASSERT_EQ(requests.size(), 3u);
  for (const auto& r : requests) EXPECT_TRUE(r.keep_open);  // each on a stream of its own
  EXPECT_EQ(env.loop().call([&] { return env.server(0).dispatcher->stats().kept_requests; }), 0u);
  EXPECT_EQ(env.loop().call([&] { return session.idle_streams(); }), 0u);
  EXPECT_TRUE(env.servers_finished_cleanly());  // no "second InferRequest on one stream"
}

TEST(Session, CancellingASecondRequestOnAKeptStreamReachesTheProvider) {
  ClientEnv env(1);
  env.connect_all();
  SessionOptions o = quick_options();
  o.fanout = 1;
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(), o);
  RunResult a = run_request(env, session, testing::input_for(1));
  ASSERT_TRUE(a.summary.status.is_ok()) << a.summary.status.to_string();
  env.loop().call([&] {
    env.server(0).script = Script::kForever;  // one answer, then waits for a Cancel
    return 0;
  });
  auto first = env.loop().run([&]() -> awaitable<std::optional<Event>> {
    auto s = session.infer(testing::input_for(2));
    auto e = co_await s->next();
    s->finish();
    co_return e;
  });
  ASSERT_TRUE(first.has_value());
  EXPECT_TRUE(env.eventually([&] { return env.server(0).cancels == 1; }));
  EXPECT_EQ(env.loop().call([&] { return env.server(0).dispatcher->stats().kept_requests; }), 1u);
  EXPECT_TRUE(env.servers_finished_cleanly());
  // The cancelled request's stream is not kept.
  EXPECT_EQ(env.loop().call([&] { return session.idle_streams(); }), 0u);
}

TEST(Session, AProviderThatDiesBetweenRequestsIsReplacedThroughAFreshStream) {
  ClientEnv env(2);
  env.connect_all();
  SessionOptions o = quick_options();
  o.fanout = 1;
  Session session(env.loop().ex(), env.client(), env.providers({0, 1}), env.service(), o);
  RunResult a = run_request(env, session, testing::input_for(1));
  ASSERT_TRUE(a.summary.status.is_ok()) << a.summary.status.to_string();
  EXPECT_EQ(a.summary.best->peer, env.server(0).id());
  // The stream returns to the pool once the receipt is written on it.
  ASSERT_TRUE(env.eventually([&] { return env.server(0).receipts.size() == 1; }));
  EXPECT_EQ(env.loop().call([&] { return session.idle_streams(); }), 1u);
  env.loop().call([&] {
    env.server(0).host->stop();
    return 0;
  });
  RunResult b = run_request(env, session, testing::input_for(2));
  ASSERT_TRUE(b.summary.status.is_ok()) << b.summary.status.to_string();
  EXPECT_EQ(b.summary.best->peer, env.server(1).id());
  EXPECT_EQ(b.summary.best->predicted, 2);
  ASSERT_EQ(b.summary.peers.size(), 2u);
  EXPECT_EQ(b.summary.peers[0].peer, env.server(0).id());
  EXPECT_EQ(b.summary.peers[0].outcome, Outcome::kVanished);
  EXPECT_EQ(b.summary.peers[1].outcome, Outcome::kAnswered);
}

TEST(Session, AStreamTheProviderClosedWhileIdleIsReplacedByAFreshOne) {
  ClientEnv env(1);
  env.loop().call([&] {
    env.server(0).dispatcher->set_keep_alive({100, 20ms});
    return 0;
  });
  env.connect_all();
  SessionOptions o = quick_options();
  o.fanout = 1;
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(), o);
  RunResult a = run_request(env, session, testing::input_for(1));
  ASSERT_TRUE(a.summary.status.is_ok()) << a.summary.status.to_string();
  ASSERT_TRUE(poll_until(env, [&] { return env.server(0).dispatcher->stats().idle_closes == 1; }));
  RunResult b = run_request(env, session, testing::input_for(2));
  ASSERT_TRUE(b.summary.status.is_ok()) << b.summary.status.to_string();
  EXPECT_EQ(b.summary.best->predicted, 2);
  ASSERT_EQ(b.summary.peers.size(), 1u);  // the same provider, on a new stream
  EXPECT_EQ(env.loop().call([&] { return env.server(0).dispatcher->stats().kept_requests; }), 0u);
  EXPECT_EQ(env.loop().call([&] { return env.server(0).requests.size(); }), 2u);
  EXPECT_EQ(env.loop().call([&] { return env.server(0).dispatcher->stats().stream_errors; }), 0u);
}

TEST(Session, IdleKeptStreamsCloseAfterKeepAliveIdle) {
  ClientEnv env(1);
  env.connect_all();
  SessionOptions o = quick_options();
  o.fanout = 1;
  o.keep_alive_idle = 30ms;
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(), o);
  RunResult a = run_request(env, session, testing::input_for(1));
  ASSERT_TRUE(a.summary.status.is_ok()) << a.summary.status.to_string();
  // The stream returns to the pool once the receipt is written on it; then it idles out.
  ASSERT_TRUE(env.eventually([&] { return env.server(0).receipts.size() == 1; }));
  ASSERT_TRUE(poll_until(env, [&] { return session.idle_streams() == 0; }));
  RunResult b = run_request(env, session, testing::input_for(2));
  ASSERT_TRUE(b.summary.status.is_ok()) << b.summary.status.to_string();
  EXPECT_EQ(env.loop().call([&] { return env.server(0).dispatcher->stats().kept_requests; }), 0u);
  EXPECT_TRUE(env.servers_finished_cleanly());
}

}  // namespace
}  // namespace idn::client
