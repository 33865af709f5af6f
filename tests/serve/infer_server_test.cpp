#include "serve/infer_server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/cid.h"
#include "engine/engine.h"
#include "identity/keys.h"
#include "ise/service_descriptor.h"
#include "model/package.h"
#include "rpc/dispatcher.h"
#include "rpc/memory_stream.h"
#include "support/tiny_model.h"

namespace idn::serve {
namespace {

namespace asio = p2p::asio;
using p2p::awaitable;
using protocol::ExitCriterion;
using protocol::InferError;
using protocol::InferProgress;
using protocol::InferRequest;
using rpc::InferClientMessage;
using rpc::InferClientStream;
using namespace std::chrono_literals;

identity::PeerId peer_id(uint8_t seed) {
  Bytes s(32, seed);
  return identity::PeerId::from_public_key(identity::KeyPair::from_seed(s)->public_key());
}

std::string root_cid() {
  return core::Cid::of(core::Multicodec::kDagPb, as_bytes("tiny b-lenet package")).to_string();
}

// Holds a worker before a given stage (once per hold()) until release(); the io side can wait
// until a worker is held. Makes "what has run when" deterministic without sleeps.
class Gate {
 public:
  explicit Gate(asio::io_context& ioc) : ioc_(ioc), entered_sig_(ioc.get_executor()) {}

  void hold(int stage, int times = 1) {
    std::lock_guard lk(mu_);
    stage_ = stage;
    holds_ = times;
    released_ = false;
  }
  void release() {
    std::lock_guard lk(mu_);
    released_ = true;
    cv_.notify_all();
  }
  // Worker thread.
  void operator()(const core::Multihash&, int stage, size_t) {
    std::unique_lock lk(mu_);
    if (stage != stage_ || holds_ == 0 || released_) return;
    --holds_;
    asio::post(ioc_, [this] {
      ++entered_;
      entered_sig_.notify_all();
    });
    cv_.wait(lk, [&] { return released_; });
  }
  // io thread: waits until `n` workers have been held in total.
  awaitable<bool> wait_entered(int n = 1) {
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (entered_ < n)
      if (!co_await entered_sig_.wait(deadline)) co_return false;
    co_return true;
  }

 private:
  asio::io_context& ioc_;
  std::mutex mu_;
  std::condition_variable cv_;
  int stage_ = -1, holds_ = 0;
  bool released_ = false;
  int entered_ = 0;  // io thread
  p2p::Signal entered_sig_;
};

class InferServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    package_ = new std::filesystem::path(idn::testing::tiny_package());
    samples_ = new std::vector<core::Tensor>(
        motifs::to_samples(idn::testing::tiny_data().test.x.slice(0, 0, 60)));
  }
  static void TearDownTestSuite() {
    delete package_;
    delete samples_;
  }

  void SetUp() override {
    auto e = engine::Engine::load(*package_);
    ASSERT_TRUE(e.ok()) << e.status().to_string();
    local_ = std::move(*e);
    auto d = ise::descriptor_from_model(local_->spec(), root_cid(), "tiny B-LeNet for tests");
    ASSERT_TRUE(d.ok()) << d.status().to_string();
    descriptor_ = *d;
    id_ = *ise::service_id(descriptor_);
  }
  void TearDown() override {
    gate_.release();
    if (server_) server_->stop();
    // The io thread (this one: run() drives the io_context here) never runs a stage.
    if (server_ && hooked_) {
      EXPECT_GT(stages_seen_.load(), 0) << "the stage hook was never called";
      EXPECT_EQ(server_->stats().inlined, 0u) << "a hooked server ran a request inline";
    }
    EXPECT_EQ(stages_on_io_thread_.load(), 0) << "model work ran on the io thread";
  }

  // A server without the stage hook: requests for a cheap model may run on the io thread.
  void start_unhooked(ServerConfig cfg) {
    hooked_ = false;
    server_ = std::make_unique<InferServer>(ioc_.get_executor(), cfg);
    ASSERT_TRUE(server_->add_service(id_, descriptor_, *package_).is_ok());
    server_->attach(dispatcher_);
  }

  void start(ServerConfig cfg = {}) {
    cfg.before_stage = [this](const core::Multihash& s, int stage, size_t n) {
      ++stages_seen_;
      if (std::this_thread::get_id() == io_thread_) ++stages_on_io_thread_;
      gate_(s, stage, n);
    };
    server_ = std::make_unique<InferServer>(ioc_.get_executor(), cfg);
    ASSERT_TRUE(server_->add_service(id_, descriptor_, *package_).is_ok());
    server_->attach(dispatcher_);
  }

  // Runs `body` on the io thread until everything finishes (or a 120 s watchdog fires).
  void run(std::function<awaitable<void>()> body) {
    ioc_.restart();  // a test may run several bodies
    bool finished = false;
    asio::co_spawn(
        ioc_,
        [&]() -> awaitable<void> {
          co_await body();
          finished = true;
        },
        asio::detached);
    asio::steady_timer watchdog(ioc_, 120s);
    watchdog.async_wait([&](boost::system::error_code ec) {
      if (!ec) {
        ADD_FAILURE() << "test timed out";
        gate_.release();
        ioc_.stop();
      }
    });
    asio::co_spawn(
        ioc_,
        [&]() -> awaitable<void> {
          // Cancel the watchdog once the body is done so run() can return.
          while (!finished) {
            asio::steady_timer t(ioc_, 5ms);
            co_await t.async_wait(asio::use_awaitable);
          }
          watchdog.cancel();
        },
        asio::detached);
    ioc_.run();
    ASSERT_TRUE(finished);
  }

  InferRequest request(size_t sample, ExitCriterion c = ExitCriterion::kModelDefault,
                       float threshold = 0) {
    InferRequest r;
    r.request_id = sample + 1;
    r.service_id = id_.bytes();
    r.input = (*samples_)[sample];
    r.exit_rule = {c, threshold};
    return r;
  }

  std::shared_ptr<InferClientStream> open(uint8_t peer) {
    auto pipe = rpc::testing::memory_stream_pair(ioc_.get_executor());
    asio::co_spawn(ioc_, dispatcher_.serve_infer(pipe.second, peer_id(peer)), asio::detached);
    return std::make_shared<InferClientStream>(pipe.first, rpc::infer_io_limits());
  }

  // Sends the request; reads progress until the final one.
  static awaitable<std::vector<InferProgress>> receive_all(std::shared_ptr<InferClientStream> s) {
    std::vector<InferProgress> out;
    for (;;) {
      auto m = co_await s->receive();
      if (!m.ok()) break;
      out.push_back(std::get<InferProgress>(*m));
      if (out.back().final) break;
    }
    co_await s->close_write();
    co_return out;
  }
  awaitable<std::vector<InferProgress>> call(InferRequest req, uint8_t peer = 1) {
    auto s = open(peer);
    InferClientMessage m{std::move(req)};
    co_await s->send(m);
    co_return co_await receive_all(s);
  }
  // Starts a call in the background; its result lands in *out.
  void spawn_call(InferRequest req, std::vector<InferProgress>* out, int* done, uint8_t peer = 1) {
    asio::co_spawn(
        ioc_,
        [this, req, out, done, peer]() -> awaitable<void> {
          *out = co_await call(req, peer);
          ++*done;
        },
        asio::detached);
  }
  // Waits (polling the condition, bounded) on the io thread.
  awaitable<bool> until(std::function<bool()> pred) {
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) co_return false;
      asio::steady_timer t(ioc_, 1ms);
      co_await t.async_wait(asio::use_awaitable);
    }
    co_return true;
  }

  std::vector<engine::ExitEvent> local_progress(size_t sample, const engine::ExitRule& rule) {
    std::vector<engine::ExitEvent> seen;
    auto r = local_->infer_progressive((*samples_)[sample], rule, [&](const engine::ExitEvent& e) {
      seen.push_back(e);
      return true;
    });
    EXPECT_TRUE(r.ok());
    return seen;
  }

  static inline std::filesystem::path* package_ = nullptr;
  static inline std::vector<core::Tensor>* samples_ = nullptr;
  asio::io_context ioc_;
  rpc::Dispatcher dispatcher_{ioc_.get_executor()};
  Gate gate_{ioc_};
  std::unique_ptr<engine::Engine> local_;
  ise::ServiceDescriptor descriptor_;
  core::Multihash id_ = core::Multihash::sha2_256({});
  std::unique_ptr<InferServer> server_;
  std::thread::id io_thread_ = std::this_thread::get_id();
  std::atomic<int> stages_seen_{0}, stages_on_io_thread_{0};
  bool hooked_ = true;
};

const engine::ExitRule kNever{model::ExitCriterion::kConfidence, 2.0};

int argmax(const core::Tensor& t) {
  auto v = t.f32();
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

TEST_F(InferServerTest, LastExitRuleStreamsEveryExitThenTheFinalOne) {
  start();
  std::vector<InferProgress> got;
  run([&]() -> awaitable<void> { got = co_await call(request(3, ExitCriterion::kLastExit)); });
  auto want = local_progress(3, kNever);
  ASSERT_EQ(want.size(), 2u);
  ASSERT_EQ(got.size(), 2u);
  for (size_t k = 0; k < 2; ++k) {
    EXPECT_EQ(got[k].request_id, 4u);
    EXPECT_EQ(got[k].error, InferError::kNone) << got[k].error_message;
    EXPECT_EQ(got[k].final, k == 1);
    EXPECT_EQ(got[k].exit_index, static_cast<uint32_t>(want[k].exit_index));
    ASSERT_EQ(got[k].output.shape, (std::vector<int64_t>{10}));
    EXPECT_EQ(argmax(got[k].output), want[k].predicted);
    EXPECT_NEAR(got[k].confidence, want[k].confidence, 1e-5);
    EXPECT_NEAR(got[k].entropy, want[k].entropy, 1e-5);
    EXPECT_EQ(got[k].operations, static_cast<uint64_t>(want[k].flops));
    float sum = 0;
    for (float p : got[k].output.f32()) sum += p;
    EXPECT_NEAR(sum, 1.0f, 1e-4);
  }
  EXPECT_LT(got[0].operations, got[1].operations);
  auto st = server_->stats();
  EXPECT_EQ(st.requests, 1u);
  EXPECT_EQ(st.completed, 1u);
  EXPECT_EQ(st.batches, 0u);
}

TEST_F(InferServerTest, BackendCpuServesTheSameAnswersAsLibTorch) {
  ServerConfig cfg;
  cfg.engine_backend = engine::Backend::kCpu;
  start(cfg);
  auto info = server_->backend(id_);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->backend, engine::Backend::kCpu) << info->reason;
  auto torch = engine::Engine::load(*package_, {.backend = engine::Backend::kTorch});
  ASSERT_TRUE(torch.ok());
  local_ = std::move(*torch);
  std::vector<InferProgress> got;
  run([&]() -> awaitable<void> { got = co_await call(request(5, ExitCriterion::kLastExit)); });
  auto want = local_progress(5, kNever);
  ASSERT_EQ(got.size(), want.size());
  for (size_t k = 0; k < got.size(); ++k) {
    EXPECT_EQ(got[k].error, InferError::kNone) << got[k].error_message;
    EXPECT_EQ(got[k].exit_index, static_cast<uint32_t>(want[k].exit_index));
    EXPECT_EQ(argmax(got[k].output), want[k].predicted);
    EXPECT_EQ(got[k].operations, static_cast<uint64_t>(want[k].flops));
    ASSERT_EQ(got[k].output.f32().size(), want[k].probs.size());
    for (size_t c = 0; c < want[k].probs.size(); ++c)
      EXPECT_NEAR(got[k].output.f32()[c], want[k].probs[c], 1e-4);
  }
}

TEST_F(InferServerTest, CheapModelRunsOnTheIoThreadWhenIdleWithTheSameAnswers) {
  ServerConfig cfg;
  cfg.inline_below = 10s;  // whatever the first run measures counts as cheap
  start_unhooked(cfg);
  constexpr size_t kCalls = 6;
  std::vector<std::vector<InferProgress>> got(kCalls);
  run([&]() -> awaitable<void> {
    for (size_t i = 0; i < kCalls; ++i)
      got[i] = co_await call(request(i, ExitCriterion::kLastExit));
  });
  auto st = server_->stats();
  EXPECT_EQ(st.completed, kCalls);
  // The first request runs on a worker, which measures the model; from then on an idle server
  // runs it inline (the second may still find the worker's lane taken).
  EXPECT_GE(st.inlined, kCalls - 2);
  EXPECT_LT(st.inlined, kCalls);
  EXPECT_EQ(st.running, 0u);
  for (size_t i = 0; i < kCalls; ++i) {
    auto want = local_progress(i, kNever);
    ASSERT_EQ(got[i].size(), want.size()) << "request " << i;
    for (size_t k = 0; k < want.size(); ++k) {
      EXPECT_EQ(got[i][k].error, InferError::kNone) << got[i][k].error_message;
      EXPECT_EQ(got[i][k].exit_index, static_cast<uint32_t>(want[k].exit_index));
      EXPECT_EQ(argmax(got[i][k].output), want[k].predicted);
      EXPECT_NEAR(got[i][k].confidence, want[k].confidence, 1e-5);
    }
    EXPECT_TRUE(got[i].back().final);
  }
  // Stage counters count inline runs too.
  server_->stop();  // the worker's stage counters are exact once it is idle
  auto runs = server_->stage_runs(id_);
  ASSERT_FALSE(runs.empty());
  EXPECT_EQ(runs.back(), static_cast<int64_t>(kCalls));
}

TEST_F(InferServerTest, InlineBelowZeroKeepsEveryRequestOnTheWorkers) {
  ServerConfig cfg;
  cfg.inline_below = std::chrono::microseconds(0);
  start_unhooked(cfg);
  run([&]() -> awaitable<void> {
    for (size_t i = 0; i < 4; ++i) {
      auto got = co_await call(request(i));
      EXPECT_TRUE(!got.empty() && got.back().final && got.back().error == InferError::kNone);
    }
  });
  EXPECT_EQ(server_->stats().completed, 4u);
  EXPECT_EQ(server_->stats().inlined, 0u);
}

TEST_F(InferServerTest, ExitRulesMapOntoTheEngine) {
  start();
  struct Case {
    ExitCriterion c;
    float th;
    engine::ExitRule rule;
  };
  std::vector<Case> cases = {
      {ExitCriterion::kModelDefault, 0, {}},
      {ExitCriterion::kConfidence, 0.0f, {model::ExitCriterion::kConfidence, 0.0}},
      {ExitCriterion::kEntropy, 1.0f, {model::ExitCriterion::kEntropy, 1.0}},
      {ExitCriterion::kEntropy, 0.0f, {model::ExitCriterion::kEntropy, 0.0}},
      {ExitCriterion::kConfidence, 0.8f, {model::ExitCriterion::kConfidence, 0.8f}},
  };
  std::vector<std::vector<InferProgress>> got(cases.size() * 10);
  run([&]() -> awaitable<void> {
    for (size_t c = 0; c < cases.size(); ++c)
      for (size_t i = 0; i < 10; ++i)
        got[c * 10 + i] = co_await call(request(i, cases[c].c, cases[c].th));
  });
  int early = 0;
  for (size_t c = 0; c < cases.size(); ++c)
    for (size_t i = 0; i < 10; ++i) {
      auto want = local_progress(i, cases[c].rule);
      const auto& g = got[c * 10 + i];
      ASSERT_EQ(g.size(), want.size()) << "case " << c << " sample " << i;
      EXPECT_EQ(g.back().exit_index, static_cast<uint32_t>(want.back().exit_index));
      EXPECT_EQ(argmax(g.back().output), want.back().predicted);
      EXPECT_TRUE(g.back().final);
      early += g.back().exit_index == 0;
    }
  // Confidence >= 0 exits everything at exit 0; entropy <= 0 sends everything on.
  EXPECT_GE(early, 10);
  EXPECT_EQ(server_->stats().completed, cases.size() * 10);
}

TEST_F(InferServerTest, InvalidRequestsGetOneClearFinalAndTheServerKeepsServing) {
  start();
  struct Bad {
    InferRequest req;
    InferError want;
    std::string mentions;
  };
  std::vector<Bad> bad;
  {
    auto r = request(0);
    r.input = core::Tensor::f32({1, 27, 28}, std::vector<float>(27 * 28, 0.f));
    bad.push_back({r, InferError::kInvalidRequest, "[1, 28, 28]"});
  }
  {
    auto r = request(0);
    r.input.f32_mut()[7] = std::nanf("");
    bad.push_back({r, InferError::kInvalidRequest, "NaN"});
  }
  {
    auto r = request(0);
    r.input = core::Tensor{core::DType::kI32, {1, 28, 28}, Bytes(28 * 28 * 4)};
    bad.push_back({r, InferError::kInvalidRequest, "dtype"});
  }
  {
    auto r = request(0);
    r.start_stage = 5;
    bad.push_back({r, InferError::kInvalidRequest, "start_stage 5"});
  }
  {
    auto r = request(0);
    r.stop_after_stage = 9;
    bad.push_back({r, InferError::kInvalidRequest, "stop_after_stage 9"});
  }
  {
    auto r = request(0);
    r.start_stage = 1;  // an image is not the activation entering stage 1
    bad.push_back({r, InferError::kInvalidRequest, "entering stage 1"});
  }
  {
    auto r = request(0);
    r.service_id = Bytes{1, 2, 3};
    bad.push_back({r, InferError::kInvalidRequest, "multihash"});
  }
  {
    auto r = request(0);
    r.service_id = core::Multihash::sha2_256(as_bytes("another service")).bytes();
    bad.push_back({r, InferError::kUnknownService, "not hosted"});
  }
  std::vector<std::vector<InferProgress>> got(bad.size());
  std::vector<InferProgress> good;
  run([&]() -> awaitable<void> {
    for (size_t i = 0; i < bad.size(); ++i) got[i] = co_await call(bad[i].req);
    good = co_await call(request(1));
  });
  for (size_t i = 0; i < bad.size(); ++i) {
    ASSERT_EQ(got[i].size(), 1u) << "case " << i;
    EXPECT_TRUE(got[i][0].final);
    EXPECT_EQ(got[i][0].error, bad[i].want) << "case " << i << ": " << got[i][0].error_message;
    EXPECT_NE(got[i][0].error_message.find(bad[i].mentions), std::string::npos)
        << "case " << i << ": " << got[i][0].error_message;
  }
  ASSERT_FALSE(good.empty());
  EXPECT_EQ(good.back().error, InferError::kNone);
  server_->stop();  // the worker's stage counters are exact once it is idle
  auto st = server_->stats();
  EXPECT_EQ(st.invalid, bad.size() - 1);
  EXPECT_EQ(st.unknown_service, 1u);
  EXPECT_EQ(st.completed, 1u);
  EXPECT_EQ(server_->stage_runs(id_)[0], 1) << "no invalid request reached the engine";
}

TEST_F(InferServerTest, CancelAfterTheFirstExitStopsLaterStages) {
  start();
  gate_.hold(1);
  InferProgress first, last;
  run([&]() -> awaitable<void> {
    auto s = open(2);
    InferClientMessage m{request(5, ExitCriterion::kLastExit)};
    co_await s->send(m);
    auto p = co_await s->receive();
    EXPECT_TRUE(p.ok());
    if (p.ok()) first = std::get<InferProgress>(*p);
    // The worker is now held before stage 1.
    EXPECT_TRUE(co_await gate_.wait_entered());
    InferClientMessage cancel{protocol::InferCancel{6}};
    co_await s->send(cancel);
    auto rest = co_await receive_all(s);
    EXPECT_EQ(rest.size(), 1u);
    if (!rest.empty()) last = rest.back();
    gate_.release();
  });
  server_->stop();  // joins the worker: its run is over
  EXPECT_EQ(first.exit_index, 0u);
  EXPECT_FALSE(first.final);
  EXPECT_TRUE(last.final);
  EXPECT_EQ(last.error, InferError::kCancelled);
  auto runs = server_->stage_runs(id_);
  EXPECT_EQ(runs[0], 1);
  EXPECT_EQ(runs[1], 0) << "stage 1 ran for a cancelled request";
  EXPECT_EQ(server_->stats().cancelled, 1u);
  EXPECT_EQ(server_->stats().completed, 0u);
}

TEST_F(InferServerTest, ACancelledQueuedRequestNeverRuns) {
  start();
  gate_.hold(0);
  std::vector<InferProgress> a, b;
  int done = 0;
  run([&]() -> awaitable<void> {
    spawn_call(request(0, ExitCriterion::kLastExit), &a, &done);
    EXPECT_TRUE(co_await gate_.wait_entered());  // the only worker is busy with A
    auto s = open(3);
    InferClientMessage m{request(1, ExitCriterion::kLastExit)};
    co_await s->send(m);
    InferClientMessage cancel{protocol::InferCancel{2}};
    co_await s->send(cancel);
    b = co_await receive_all(s);
    gate_.release();
    EXPECT_TRUE(co_await until([&] { return done == 1; }));
  });
  server_->stop();
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].error, InferError::kCancelled);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a.back().error, InferError::kNone);
  EXPECT_EQ(server_->stage_runs(id_), (std::vector<int64_t>{1, 1})) << "B ran after its cancel";
}

TEST_F(InferServerTest, RequestsPastTheirDeadlineAreAnsweredWithoutRunning) {
  start();
  gate_.hold(0);
  std::vector<InferProgress> a, b;
  int done = 0;
  run([&]() -> awaitable<void> {
    spawn_call(request(0, ExitCriterion::kLastExit), &a, &done);
    EXPECT_TRUE(co_await gate_.wait_entered());
    auto r = request(1);
    r.deadline_ms = 30;
    b = co_await call(r, 3);  // queued behind A: answered at its deadline
    gate_.release();
    EXPECT_TRUE(co_await until([&] { return done == 1; }));
  });
  server_->stop();
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].error, InferError::kDeadlineExceeded);
  EXPECT_NE(b[0].error_message.find("30 ms"), std::string::npos) << b[0].error_message;
  EXPECT_EQ(server_->stage_runs(id_)[0], 1);
  EXPECT_EQ(server_->stats().deadline_exceeded, 1u);
  EXPECT_EQ(server_->stats().completed, 1u);
}

TEST_F(InferServerTest, ADeadlineBetweenStagesStopsTheRequest) {
  start();
  gate_.hold(1);
  std::vector<InferProgress> got;
  run([&]() -> awaitable<void> {
    auto r = request(2, ExitCriterion::kLastExit);
    r.deadline_ms = 500;  // long enough for stage 0 on a loaded machine
    got = co_await call(r);
    gate_.release();
  });
  server_->stop();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].exit_index, 0u);
  EXPECT_EQ(got[1].error, InferError::kDeadlineExceeded);
  EXPECT_EQ(server_->stage_runs(id_)[1], 0);
}

TEST_F(InferServerTest, BeyondMaxQueueRequestsAreAnsweredBusyWithARetryHint) {
  ServerConfig cfg;
  cfg.max_queue = 2;
  start(cfg);
  gate_.hold(0);
  std::vector<InferProgress> a;
  std::vector<std::vector<InferProgress>> more(4);
  int done = 0;
  run([&]() -> awaitable<void> {
    spawn_call(request(0), &a, &done);
    EXPECT_TRUE(co_await gate_.wait_entered());
    for (size_t i = 0; i < more.size(); ++i)
      spawn_call(request(i + 1), &more[i], &done, static_cast<uint8_t>(10 + i));
    EXPECT_TRUE(co_await until([&] { return server_->stats().busy == 2; }));
    gate_.release();
    EXPECT_TRUE(co_await until([&] { return done == 5; }));
  });
  int busy = 0, ok = 0;
  for (const auto& m : more) {
    ASSERT_FALSE(m.empty());
    if (m.back().error == InferError::kBusy) {
      ++busy;
      EXPECT_EQ(m.size(), 1u);
      EXPECT_GT(m.back().retry_after_ms, 0u);
    } else {
      EXPECT_EQ(m.back().error, InferError::kNone);
      ++ok;
    }
  }
  EXPECT_EQ(busy, 2);
  EXPECT_EQ(ok, 2);
  EXPECT_EQ(server_->stats().busy, 2u);
  EXPECT_EQ(server_->stats().completed, 3u);
}

TEST_F(InferServerTest, QueuedRequestsRunAsOneBatchWithPerRequestProgress) {
  ServerConfig cfg;
  cfg.max_batch = 8;
  start(cfg);
  gate_.hold(0);
  const size_t n = 8;
  std::vector<InferProgress> a;
  std::vector<std::vector<InferProgress>> got(n);
  int done = 0;
  auto crit = [](size_t i) {
    return i % 2 ? ExitCriterion::kLastExit : ExitCriterion::kModelDefault;
  };
  run([&]() -> awaitable<void> {
    spawn_call(request(20), &a, &done);
    EXPECT_TRUE(co_await gate_.wait_entered());
    for (size_t i = 0; i < n; ++i)
      spawn_call(request(i, crit(i)), &got[i], &done, static_cast<uint8_t>(20 + i));
    EXPECT_TRUE(co_await until([&] { return server_->stats().queued == n; }));
    gate_.release();
    EXPECT_TRUE(co_await until([&] { return done == static_cast<int>(n) + 1; }));
  });
  server_->stop();
  auto st = server_->stats();
  EXPECT_EQ(st.batches, 1u);
  EXPECT_EQ(st.batched_requests, n);
  EXPECT_EQ(st.completed, n + 1);
  // Stage 0 ran twice: A alone, then the batch of eight.
  EXPECT_EQ(server_->stage_runs(id_)[0], 2);
  for (size_t i = 0; i < n; ++i) {
    auto want = local_progress(i, i % 2 ? kNever : engine::ExitRule{});
    ASSERT_EQ(got[i].size(), want.size()) << "request " << i;
    for (size_t k = 0; k < want.size(); ++k) {
      EXPECT_EQ(got[i][k].request_id, i + 1);
      EXPECT_EQ(got[i][k].exit_index, static_cast<uint32_t>(want[k].exit_index));
      EXPECT_EQ(argmax(got[i][k].output), want[k].predicted);
      EXPECT_NEAR(got[i][k].confidence, want[k].confidence, 1e-4);
      EXPECT_EQ(got[i][k].final, k + 1 == want.size());
    }
  }
}

TEST_F(InferServerTest, OnlyRequestsForTheSameStartStageShareABatch) {
  start();
  gate_.hold(1);
  const size_t n = 4;
  std::vector<InferProgress> a, fresh;
  std::vector<std::vector<InferProgress>> resumed(n);
  int done = 0;
  run([&]() -> awaitable<void> {
    spawn_call(request(30, ExitCriterion::kLastExit), &a, &done);
    EXPECT_TRUE(co_await gate_.wait_entered());  // A holds the worker before its stage 1
    for (size_t i = 0; i < n; ++i) {
      auto act = local_->run_stages((*samples_)[i], -1, 0);
      EXPECT_TRUE(act.ok());
      if (!act.ok()) co_return;
      auto r = request(i, ExitCriterion::kLastExit);
      r.start_stage = 1;
      r.input = *act;  // [1, C, H, W]: a leading batch dimension of 1 is accepted
      spawn_call(r, &resumed[i], &done, static_cast<uint8_t>(40 + i));
    }
    EXPECT_TRUE(co_await until([&] { return server_->stats().queued == n; }));
    spawn_call(request(31), &fresh, &done, 50);
    EXPECT_TRUE(co_await until([&] { return server_->stats().queued == n + 1; }));
    gate_.release();
    EXPECT_TRUE(co_await until([&] { return done == static_cast<int>(n) + 2; }));
  });
  server_->stop();
  auto st = server_->stats();
  EXPECT_EQ(st.batches, 1u);
  EXPECT_EQ(st.batched_requests, n);
  EXPECT_EQ(st.completed, n + 2);
  for (size_t i = 0; i < n; ++i) {
    auto want = local_progress(i, kNever);
    ASSERT_EQ(resumed[i].size(), 1u) << "only the exit after stage 1 is reported";
    EXPECT_EQ(resumed[i][0].exit_index, static_cast<uint32_t>(want.back().exit_index));
    EXPECT_EQ(argmax(resumed[i][0].output), want.back().predicted);
    EXPECT_NEAR(resumed[i][0].confidence, want.back().confidence, 1e-4);
  }
  ASSERT_FALSE(fresh.empty());
  EXPECT_EQ(fresh.back().error, InferError::kNone);
}

TEST_F(InferServerTest, SplitExecutionAcrossTwoServersMatchesLocalInference) {
  start();
  // A second node hosting the same service resumes what the first one started.
  rpc::Dispatcher dispatcher_b(ioc_.get_executor());
  InferServer server_b(ioc_.get_executor());
  ASSERT_TRUE(server_b.add_service(id_, descriptor_, *package_).is_ok());
  server_b.attach(dispatcher_b);
  const auto& spec = local_->spec();
  std::vector<std::vector<InferProgress>> head(5), tail(5);
  run([&]() -> awaitable<void> {
    for (size_t i = 0; i < 5; ++i) {
      auto r = request(i);
      r.stop_after_stage = 0;
      head[i] = co_await call(r);
      if (head[i].size() != 1 || head[i][0].error != InferError::kNone) continue;
      auto pipe = rpc::testing::memory_stream_pair(ioc_.get_executor());
      asio::co_spawn(ioc_, dispatcher_b.serve_infer(pipe.second, peer_id(9)), asio::detached);
      auto s = std::make_shared<InferClientStream>(pipe.first, rpc::infer_io_limits());
      auto resume = request(i, ExitCriterion::kLastExit);
      resume.start_stage = 1;
      resume.input = head[i][0].output;
      InferClientMessage m{resume};
      co_await s->send(m);
      tail[i] = co_await receive_all(s);
    }
  });
  for (size_t i = 0; i < 5; ++i) {
    ASSERT_EQ(head[i].size(), 1u);
    EXPECT_TRUE(head[i][0].final);
    EXPECT_EQ(head[i][0].exit_index, 0u);
    EXPECT_EQ(head[i][0].output.shape, spec.layer(spec.stages[0].output)->out_shape);
    EXPECT_EQ(head[i][0].operations, static_cast<uint64_t>(spec.stages[0].flops));
    auto want = local_progress(i, kNever);
    ASSERT_EQ(tail[i].size(), 1u);
    EXPECT_EQ(tail[i][0].error, InferError::kNone) << tail[i][0].error_message;
    EXPECT_EQ(tail[i][0].exit_index, static_cast<uint32_t>(want.back().exit_index));
    auto probs = tail[i][0].output.f32();
    ASSERT_EQ(probs.size(), want.back().probs.size());
    for (size_t c = 0; c < probs.size(); ++c) EXPECT_NEAR(probs[c], want.back().probs[c], 1e-5);
  }
  // A middle segment: resume at stage 1 and stop after it (the activation, not an exit).
  std::vector<InferProgress> segment;
  run([&]() -> awaitable<void> {
    auto r = request(0);
    r.start_stage = 1;
    r.stop_after_stage = 1;
    r.input = head[0][0].output;
    segment = co_await call(r);
  });
  ASSERT_EQ(segment.size(), 1u);
  EXPECT_EQ(segment[0].error, InferError::kNone) << segment[0].error_message;
  EXPECT_EQ(segment[0].exit_index, 1u);
  EXPECT_EQ(segment[0].output.shape, spec.layer(spec.stages[1].output)->out_shape);
  EXPECT_EQ(segment[0].operations, static_cast<uint64_t>(spec.stages[1].flops));
  server_->stop();
  EXPECT_EQ(server_->stage_runs(id_), (std::vector<int64_t>{5, 1}));
  server_b.stop();
  EXPECT_EQ(server_b.stage_runs(id_), (std::vector<int64_t>{0, 5}));
}

TEST_F(InferServerTest, FiftyConcurrentRequestsFromSeveralClientsAreAllAnswered) {
  ServerConfig cfg;
  cfg.workers = 2;
  cfg.max_batch = 4;
  start(cfg);
  const size_t n = 50;
  std::vector<std::vector<InferProgress>> got(n);
  int done = 0;
  run([&]() -> awaitable<void> {
    for (size_t i = 0; i < n; ++i)
      spawn_call(request(i), &got[i], &done, static_cast<uint8_t>(1 + i % 5));
    EXPECT_TRUE(co_await until([&] { return done == static_cast<int>(n); }));
  });
  for (size_t i = 0; i < n; ++i) {
    auto want = local_progress(i, {});
    ASSERT_FALSE(got[i].empty());
    EXPECT_EQ(got[i].back().error, InferError::kNone) << got[i].back().error_message;
    EXPECT_EQ(got[i].back().request_id, i + 1);
    EXPECT_EQ(got[i].back().exit_index, static_cast<uint32_t>(want.back().exit_index));
    EXPECT_EQ(argmax(got[i].back().output), want.back().predicted) << "request " << i;
  }
  server_->stop();
  auto st = server_->stats();
  EXPECT_EQ(st.requests, n);
  EXPECT_EQ(st.completed, n);
  EXPECT_EQ(st.queued, 0u);
  EXPECT_EQ(st.running, 0u);
}

TEST_F(InferServerTest, RemovingAServiceAnswersItsQueuedRequests) {
  start();
  gate_.hold(0);
  std::vector<InferProgress> a, b, after;
  int done = 0;
  run([&]() -> awaitable<void> {
    spawn_call(request(0), &a, &done);
    EXPECT_TRUE(co_await gate_.wait_entered());
    spawn_call(request(1), &b, &done, 4);
    EXPECT_TRUE(co_await until([&] { return server_->stats().queued == 1; }));
    server_->remove_service(id_);
    EXPECT_TRUE(co_await until([&] { return done == 1; }));
    gate_.release();
    EXPECT_TRUE(co_await until([&] { return done == 2; }));
    after = co_await call(request(2));
  });
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].error, InferError::kUnknownService);
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a.back().error, InferError::kUnknownService) << "A resumes after its removal";
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].error, InferError::kUnknownService);
  EXPECT_FALSE(server_->hosts(id_));
  EXPECT_TRUE(server_->services().empty());
}

TEST_F(InferServerTest, StopAnswersQueuedAndRunningRequests) {
  start();
  gate_.hold(0);
  std::vector<InferProgress> a, b, late;
  int done = 0;
  std::thread stopper;
  run([&]() -> awaitable<void> {
    spawn_call(request(0), &a, &done);
    EXPECT_TRUE(co_await gate_.wait_entered());
    spawn_call(request(1), &b, &done, 4);
    EXPECT_TRUE(co_await until([&] { return server_->stats().queued == 1; }));
    // stop() joins the held worker, so it runs on another thread until the gate opens.
    stopper = std::thread([&] { server_->stop(); });
    EXPECT_TRUE(co_await until([&] { return done == 1; }));
    gate_.release();
    EXPECT_TRUE(co_await until([&] { return done == 2; }));
    late = co_await call(request(2));
  });
  if (stopper.joinable()) stopper.join();
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].error, InferError::kCancelled);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].error, InferError::kCancelled);
  ASSERT_EQ(late.size(), 1u);
  EXPECT_EQ(late[0].error, InferError::kCancelled);
  EXPECT_EQ(server_->stage_runs(id_)[0], 0);
  EXPECT_EQ(server_->stats().cancelled, 3u);
}

TEST_F(InferServerTest, AddServiceRefusesADescriptorThatDoesNotMatchThePackage) {
  InferServer server(ioc_.get_executor());
  auto wrong_shape = descriptor_;
  wrong_shape.inputs[0].shape = {3, 32, 32};
  Status st = server.add_service(id_, wrong_shape, *package_);
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_NE(st.message().find("[1, 28, 28]"), std::string::npos) << st.message();

  auto wrong_hash = descriptor_;
  wrong_hash.model_hash = core::Multihash::sha2_256(as_bytes("x")).to_base58();
  st = server.add_service(id_, wrong_hash, *package_);
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_NE(st.message().find("model hash"), std::string::npos) << st.message();

  auto wrong_exit = descriptor_;
  wrong_exit.exits[0].stage = 1;
  EXPECT_EQ(server.add_service(id_, wrong_exit, *package_).code(), Code::kInvalidArgument);

  EXPECT_FALSE(server.add_service(id_, descriptor_, "/nonexistent/package").is_ok());
  EXPECT_FALSE(server.hosts(id_));
  EXPECT_TRUE(server.stage_runs(id_).empty());

  EXPECT_TRUE(server.add_service(id_, descriptor_, *package_).is_ok());
  EXPECT_TRUE(server.hosts(id_));
  EXPECT_EQ(server.services(), std::vector<core::Multihash>{id_});
  server.stop();
  server.stop();  // idempotent
  EXPECT_EQ(server.add_service(id_, descriptor_, *package_).code(), Code::kUnavailable);
}

// Accounting seams (serve/accounting.h), recorded. The server calls them on its io executor:
// here the test thread, which runs the io_context.
struct RecordingAdmission : Admission {
  identity::PeerId refuse = peer_id(1);
  struct Asked {
    identity::PeerId peer;
    core::Multihash service;
    uint64_t request_id;
  };
  std::vector<Asked> asked;
  Decision admit(const identity::PeerId& peer, const core::Multihash& service,
                 uint64_t request_id) override {
    asked.push_back({peer, service, request_id});
    return peer == refuse ? Decision::refuse("debt ratio 9.0 is above m = 4") : Decision::admit();
  }
};

struct RecordingWork : WorkSink {
  std::vector<WorkDone> work;
  void on_work(const WorkDone& w) override { work.push_back(w); }
};

struct RecordingReceipts : ReceiptSink {
  std::vector<std::pair<identity::PeerId, protocol::Receipt>> receipts;
  Status on_receipt(const identity::PeerId& from, const protocol::Receipt& r) override {
    receipts.emplace_back(from, r);
    return Status::ok();
  }
};

TEST_F(InferServerTest, ARefusingAdmissionAnswersRefusedWithTheReasonAndRunsNothing) {
  auto admission = std::make_shared<RecordingAdmission>();
  ServerConfig cfg;
  cfg.admission = admission;
  start(cfg);
  std::vector<InferProgress> refused, served;
  run([&]() -> awaitable<void> {
    refused = co_await call(request(0), 1);
    served = co_await call(request(1), 2);
  });
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_TRUE(refused[0].final);
  EXPECT_EQ(refused[0].error, InferError::kRefused);
  EXPECT_EQ(refused[0].error_message, "debt ratio 9.0 is above m = 4");
  EXPECT_EQ(refused[0].operations, 0u);
  ASSERT_FALSE(served.empty());
  EXPECT_EQ(served.back().error, InferError::kNone) << served.back().error_message;
  ASSERT_EQ(admission->asked.size(), 2u);
  EXPECT_EQ(admission->asked[0].peer, peer_id(1));
  EXPECT_EQ(admission->asked[0].service, id_);
  EXPECT_EQ(admission->asked[0].request_id, 1u);
  EXPECT_EQ(admission->asked[1].peer, peer_id(2));
  EXPECT_EQ(admission->asked[1].request_id, 2u);
  server_->stop();
  auto st = server_->stats();
  EXPECT_EQ(st.requests, 2u);
  EXPECT_EQ(st.refused, 1u);
  EXPECT_EQ(st.completed, 1u);
  EXPECT_EQ(server_->stage_runs(id_)[0], 1) << "the refused request reached the engine";
}

TEST_F(InferServerTest, TheWorkSinkHearsWhatEachAnswerCostAnEarlyExitLessThanAFullPass) {
  auto sink = std::make_shared<RecordingWork>();
  ServerConfig cfg;
  cfg.work_sink = sink;
  start(cfg);
  std::vector<InferProgress> early, full;
  run([&]() -> awaitable<void> {
    // Confidence >= 0 holds at the first exit; kLastExit runs every stage.
    early = co_await call(request(0, ExitCriterion::kConfidence, 0.0f), 4);
    full = co_await call(request(1, ExitCriterion::kLastExit), 5);
  });
  ASSERT_EQ(early.size(), 1u);
  ASSERT_EQ(full.size(), 2u);
  ASSERT_EQ(sink->work.size(), 2u);
  const WorkDone& e = sink->work[0];
  const WorkDone& f = sink->work[1];
  EXPECT_EQ(e.peer, peer_id(4));
  EXPECT_EQ(e.service, id_);
  EXPECT_EQ(e.request_id, 1u);
  EXPECT_TRUE(e.answered);
  EXPECT_EQ(e.exit_index, 0u);
  EXPECT_EQ(e.operations, early.back().operations);
  EXPECT_EQ(f.peer, peer_id(5));
  EXPECT_EQ(f.request_id, 2u);
  EXPECT_TRUE(f.answered);
  EXPECT_EQ(f.exit_index, 1u);
  EXPECT_EQ(f.operations, full.back().operations);
  // Stage and exit costs from the model spec: the early exit skipped the second stage.
  const auto& spec = local_->spec();
  int64_t to_first_exit = spec.exits[0].flops;
  for (int st = 0; st <= spec.exits[0].stage; ++st) to_first_exit += spec.stages[st].flops;
  EXPECT_EQ(e.operations, static_cast<uint64_t>(to_first_exit));
  EXPECT_LT(e.operations, f.operations);
  EXPECT_GT(e.operations, 0u);
  EXPECT_LE(e.sent_at, f.sent_at);
  EXPECT_EQ(server_->stats().operations, e.operations + f.operations);
}

TEST_F(InferServerTest, ReceiptsOnTheRequestsStreamReachTheReceiptSink) {
  auto sink = std::make_shared<RecordingReceipts>();
  ServerConfig cfg;
  cfg.receipt_sink = sink;
  start(cfg);
  std::vector<InferProgress> got;
  Status end;
  bool arrived = false;
  run([&]() -> awaitable<void> {
    auto s = open(6);
    InferClientMessage m{request(2, ExitCriterion::kLastExit)};
    co_await s->send(m);
    for (;;) {
      auto r = co_await s->receive();
      if (!r.ok()) break;
      got.push_back(std::get<InferProgress>(*r));
      if (got.back().final) break;
    }
    // What client::Session sends once it accepted the answer; the server already ended its
    // side of the exchange and does not wait for it.
    auto eof = co_await s->receive();
    end = eof.status();
    protocol::Receipt rc{3,           id_.bytes(),        got.empty() ? 0 : got.back().operations,
                         Bytes{0x12}, peer_id(6).bytes(), 1700000000000,
                         {}};
    InferClientMessage rm{rc};
    co_await s->send(rm);
    co_await s->close_write();
    arrived = co_await until([&] { return sink->receipts.size() == 1; });
  });
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(end.code(), Code::kNotFound) << "the server kept its side open for the receipt";
  ASSERT_TRUE(arrived);
  EXPECT_EQ(sink->receipts[0].first, peer_id(6));
  EXPECT_EQ(sink->receipts[0].second.request_id, 3u);
  EXPECT_EQ(sink->receipts[0].second.service_id, id_.bytes());
  EXPECT_EQ(sink->receipts[0].second.operations, got.back().operations);
  auto st = server_->stats();
  EXPECT_EQ(st.receipts, 1u);
  EXPECT_EQ(st.receipted_operations, got.back().operations);
  EXPECT_EQ(dispatcher_.stats().stream_errors, 0u);
}

}  // namespace
}  // namespace idn::serve
