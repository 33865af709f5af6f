#include "client/blocking.h"

#include <gtest/gtest.h>

#include "client/client_test_util.h"

namespace idn::client {
namespace {

using namespace std::chrono_literals;
using testing::ClientEnv;
using testing::Script;

SessionOptions options() {
  SessionOptions o;
  o.deadline = 5000ms;
  o.exit_rule.criterion = protocol::ExitCriterion::kLastExit;
  o.output_shape = std::vector<int64_t>{1, testing::kClasses};
  o.cancel_grace = 300ms;
  return o;
}

// These run on the test thread while the Loop's thread drives the hosts, as an application
// thread would beside a Node's io thread.
TEST(Blocking, InferBlockingReturnsTheBestAnswerFromAnApplicationThread) {
  ClientEnv env(2);
  env.connect_all();
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(), options());
  for (int k : {3, 8}) {
    Result<Event> r = infer_blocking(session, testing::input_for(k));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->predicted, k);
    EXPECT_EQ(r->exit_index, 2u);
    EXPECT_TRUE(r->final_from_peer);
  }
  EXPECT_EQ(session.requests_started(), 2u);
}

TEST(Blocking, InferBlockingReportsTheRequestsError) {
  ClientEnv env(0);
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(), options());
  Result<Event> r = infer_blocking(session, testing::input_for(1));
  EXPECT_EQ(r.status().code(), Code::kNotFound);
}

TEST(Blocking, StreamIteratesImprovingEventsUntilTheFinalAnswer) {
  ClientEnv env(1);
  env.connect_all();
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(), options());
  BlockingStream stream = infer_stream_blocking(session, testing::input_for(6));
  std::vector<uint32_t> exits;
  for (const Event& e : stream) {
    exits.push_back(e.exit_index);
    EXPECT_EQ(e.predicted, 6);
  }
  EXPECT_EQ(exits, (std::vector<uint32_t>{0, 1, 2}));
  Summary s = stream.summary();
  EXPECT_TRUE(s.status.is_ok()) << s.status.to_string();
  EXPECT_EQ(s.answers, 3u);
  EXPECT_FALSE(stream.next().has_value());  // stays ended
}

TEST(Blocking, FinishFromTheApplicationThreadCancelsThePeer) {
  ClientEnv env(1);
  env.server(0).script = Script::kForever;
  env.connect_all();
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(), options());
  BlockingStream stream = infer_stream_blocking(session, testing::input_for(2));
  auto first = stream.next();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->predicted, 2);
  stream.finish();
  EXPECT_FALSE(stream.next().has_value());
  EXPECT_TRUE(stream.summary().status.is_ok());
  EXPECT_TRUE(env.eventually([&] { return env.server(0).cancels == 1; }));
}

TEST(Blocking, DestroyingTheStreamFinishesTheRequest) {
  ClientEnv env(1);
  env.server(0).script = Script::kSilent;
  env.connect_all();
  Session session(env.loop().ex(), env.client(), env.all_providers(), env.service(), options());
  {
    BlockingStream stream = infer_stream_blocking(session, testing::input_for(2));
    ASSERT_TRUE(env.eventually([&] { return !env.server(0).requests.empty(); }));
  }
  EXPECT_TRUE(env.eventually([&] { return env.server(0).cancels == 1; }));
}

}  // namespace
}  // namespace idn::client
