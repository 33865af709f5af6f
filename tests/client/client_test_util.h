// Fixture for client session tests: real p2p::Hosts on 127.0.0.1, one client and several fake
// inference servers. A fake server is an rpc::Dispatcher whose infer handler plays a script
// (correct, slow, silent, busy, malformed, vanishing) and records what it saw (requests,
// Cancels) so tests can assert on the peer's side of the exchange.
#pragma once

#include <gtest/gtest.h>

#include <boost/asio/post.hpp>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "client/session.h"
#include "p2p/p2p_test_util.h"
#include "rpc/dispatcher.h"

namespace idn::client::testing {

using namespace std::chrono_literals;
using p2p::awaitable;
using p2p::testing::HostPtr;
using p2p::testing::Loop;

enum class Script {
  kCorrect,      // exits start_stage..2, confidence base + 0.2 * exit, final at exit 2
  kForever,      // first exit, then waits for a Cancel
  kSilent,       // nothing, waits for a Cancel
  kBusy,         // final InferError::kBusy
  kBusyOnce,     // kBusy for its first request, then kCorrect
  kError,        // final InferError::kInternal
  kWrongShape,   // an answer of shape [1, 5], then waits
  kNaN,          // an answer with a NaN, then waits
  kBackwards,    // exit 1, then exit 0, then waits
  kVanish,       // first exit, then its host stops
  kTwoThenWait,  // exits 0 and 1, then waits for a Cancel
  kRefuse,       // final InferError::kRefused with kRefuseReason
  kWrongClass,   // like kCorrect, but every answer names the class after the right one
};

inline constexpr const char* kRefuseReason = "debt ratio 7.5 above m";

inline constexpr int64_t kClasses = 10;

// The class a fake server answers for `input`: its first value mod 10, so a test can check
// that every concurrent request got the answer to its own input.
inline int expected_class(const core::Tensor& input) {
  return static_cast<int>(std::lround(input.f32()[0])) % kClasses;
}

inline core::Tensor input_for(int k) {
  std::vector<float> v(4, 0.0f);
  v[0] = static_cast<float>(k);
  return core::Tensor::f32({1, 4}, v);
}

struct FakeServer {
  HostPtr host;
  std::unique_ptr<rpc::Dispatcher> dispatcher;
  core::Multiaddr addr;
  Script script = Script::kCorrect;
  std::chrono::milliseconds step_delay{0};  // between exits (kCorrect)
  float base_confidence = 0.5f;
  uint32_t retry_after_ms = 50;  // sent with kBusy
  // What it saw.
  std::vector<protocol::InferRequest> requests;
  std::vector<protocol::InferProgress> sent;  // as sent, request id stamped
  std::vector<protocol::Receipt> receipts;    // read from the client, in order
  int cancels = 0;
  int active = 0;

  identity::PeerId id() const { return host->id(); }
};

class ClientEnv {
 public:
  explicit ClientEnv(size_t servers)
      : client_(p2p::testing::make_host(loop_)), changed_(loop_.ex()) {
    for (size_t i = 0; i < servers; ++i) add_server();
  }
  ~ClientEnv() {
    // Stop every host, let the fake handlers see their streams die, then free them.
    loop_.call([&] {
      client_->stop();
      for (auto& s : servers_) s->host->stop();
      return 0;
    });
    loop_.run([&]() -> awaitable<bool> {
      std::function<bool()> idle = [&] {
        for (auto& s : servers_)
          if (s->active > 0) return false;
        return true;
      };
      bool ok = co_await wait_until(idle);
      co_return ok;
    });
    loop_.call([&] {
      for (auto& s : servers_) s->dispatcher.reset();
      return 0;
    });
    for (auto& s : servers_) s->host.reset();
    client_.reset();
  }

  Loop& loop() { return loop_; }
  p2p::Host& client() { return *client_; }
  FakeServer& server(size_t i) { return *servers_.at(i); }
  size_t servers() const { return servers_.size(); }
  core::Multihash service() const { return core::Multihash::sha2_256(Bytes{1, 2, 3}); }

  // The client dials every server.
  void connect_all() {
    for (auto& s : servers_) {
      auto r = loop_.run([&]() { return client_->dial(s->addr); });
      ASSERT_TRUE(r.ok()) << r.status().to_string();
    }
  }

  // Providers in `order` (server indices), skipping excluded ones; counts the calls.
  ProviderSource providers(std::vector<size_t> order) {
    return [this, order](const core::Multihash&, size_t n,
                         const std::vector<identity::PeerId>& exclude)
               -> awaitable<Result<std::vector<identity::PeerId>>> {
      provider_calls_++;
      last_exclude_ = exclude;
      std::vector<identity::PeerId> out;
      for (size_t i : order) {
        if (out.size() == n) break;
        identity::PeerId p = servers_.at(i)->id();
        if (std::find(exclude.begin(), exclude.end(), p) == exclude.end()) out.push_back(p);
      }
      co_return out;
    };
  }
  ProviderSource all_providers() {
    std::vector<size_t> order;
    for (size_t i = 0; i < servers_.size(); ++i) order.push_back(i);
    return providers(order);
  }
  int provider_calls() const { return provider_calls_; }
  const std::vector<identity::PeerId>& last_exclude() const { return last_exclude_; }

  // Waits (on the loop) until `pred` holds, re-checking whenever a fake server records
  // something; false after `timeout`.
  // From the test thread: waits until `pred` (evaluated on the loop) holds.
  bool eventually(std::function<bool()> pred, std::chrono::milliseconds timeout = 10s) {
    return loop_.run([this, pred, timeout]() -> awaitable<bool> {
      bool ok = co_await wait_until(pred, timeout);
      co_return ok;
    });
  }

  // True once every fake handler has returned and no server's dispatcher saw a broken stream
  // (a reset or malformed message from the client): the client ended every exchange cleanly.
  bool servers_finished_cleanly() {
    bool idle = eventually([&] {
      for (auto& s : servers_)
        if (s->active > 0) return false;
      return true;
    });
    return idle && loop_.call([&] {
      for (auto& s : servers_)
        if (s->dispatcher->stats().stream_errors != 0) return false;
      return true;
    });
  }

  // GCC 12 miscompiles temporaries inside co_await expressions: pass a named predicate.
  awaitable<bool> wait_until(const std::function<bool()>& pred,
                             std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
      if (!co_await changed_.wait(deadline)) co_return pred();
    }
    co_return true;
  }

 private:
  void add_server() {
    auto s = std::make_unique<FakeServer>();
    s->host = p2p::testing::make_host(loop_);
    FakeServer* sp = s.get();
    loop_.call([&] {
      sp->dispatcher = std::make_unique<rpc::Dispatcher>(loop_.ex());
      sp->dispatcher->on_infer_request([this, sp](rpc::InferContext& ctx) -> awaitable<void> {
        sp->active++;
        co_await serve(*sp, ctx);
        sp->active--;
        changed_.notify_all();
      });
      sp->dispatcher->on_receipt(
          [this, sp](const identity::PeerId&, const protocol::Receipt& r) -> awaitable<Status> {
            sp->receipts.push_back(r);
            changed_.notify_all();
            co_return Status::ok();
          });
      sp->dispatcher->attach(*sp->host);
      auto a = sp->host->listen(p2p::testing::loopback());
      EXPECT_TRUE(a.ok());
      sp->addr = sp->host->listen_addrs().at(0);
      return 0;
    });
    servers_.push_back(std::move(s));
  }

  protocol::InferProgress progress(FakeServer& s, const protocol::InferRequest& req, uint32_t exit,
                                   bool final) {
    protocol::InferProgress p;
    p.exit_index = exit;
    std::vector<float> logits(kClasses, 0.0f);
    int k = expected_class(req.input);
    if (s.script == Script::kWrongClass) k = (k + 1) % kClasses;
    logits[k] = 1.0f;
    p.output = core::Tensor::f32({1, kClasses}, logits);
    p.confidence = std::min(1.0f, s.base_confidence + 0.2f * static_cast<float>(exit));
    p.entropy = 1.0f - p.confidence;
    p.operations = 1000 * (exit + 1);
    p.final = final;
    return p;
  }

  awaitable<bool> send(FakeServer& s, rpc::InferContext& ctx, const protocol::InferProgress& msg) {
    protocol::InferProgress p = msg;
    p.request_id = ctx.request().request_id;
    p.stream_open = p.final && ctx.keeps_stream_open();  // as the context stamps it
    s.sent.push_back(p);
    Status st = co_await ctx.send(p);
    changed_.notify_all();
    co_return st.is_ok();
  }

  // Waits for the requester's Cancel (or its stream's end); records a Cancel.
  awaitable<void> await_cancel(FakeServer& s, rpc::InferContext& ctx) {
    auto deadline = std::chrono::steady_clock::now() + 30s;
    bool cancelled = co_await ctx.wait_cancelled(deadline);
    if (cancelled) s.cancels++;
    changed_.notify_all();
  }

  awaitable<void> serve(FakeServer& s, rpc::InferContext& ctx) {
    const protocol::InferRequest& req = ctx.request();
    s.requests.push_back(req);
    changed_.notify_all();
    uint32_t first = req.start_stage;
    switch (s.script) {
      case Script::kCorrect:
      case Script::kWrongClass:
        for (uint32_t e = first; e <= 2; ++e) {
          if (s.step_delay.count() > 0) {
            auto deadline = std::chrono::steady_clock::now() + s.step_delay;
            bool cancelled = co_await ctx.wait_cancelled(deadline);
            if (cancelled) {
              s.cancels++;
              changed_.notify_all();
              co_return;
            }
          }
          auto p = progress(s, req, e, e == 2);
          bool sent = co_await send(s, ctx, p);
          if (!sent) co_return;
        }
        co_return;
      case Script::kForever: {
        auto p = progress(s, req, first, false);
        co_await send(s, ctx, p);
        co_await await_cancel(s, ctx);
        co_return;
      }
      case Script::kSilent:
        co_await await_cancel(s, ctx);
        co_return;
      case Script::kBusyOnce:
        if (s.requests.size() > 1) {
          for (uint32_t e = first; e <= 2; ++e) {
            auto p = progress(s, req, e, e == 2);
            co_await send(s, ctx, p);
          }
          co_return;
        }
        [[fallthrough]];
      case Script::kBusy: {
        protocol::InferProgress p;
        p.final = true;
        p.error = protocol::InferError::kBusy;
        p.retry_after_ms = s.retry_after_ms;
        p.error_message = "queue full";
        co_await send(s, ctx, p);
        co_return;
      }
      case Script::kRefuse: {
        protocol::InferProgress p;
        p.final = true;
        p.error = protocol::InferError::kRefused;
        p.error_message = kRefuseReason;
        co_await send(s, ctx, p);
        co_return;
      }
      case Script::kError: {
        protocol::InferProgress p;
        p.final = true;
        p.error = protocol::InferError::kInternal;
        p.error_message = "model crashed";
        co_await send(s, ctx, p);
        co_return;
      }
      case Script::kWrongShape: {
        auto p = progress(s, req, first, false);
        p.output = core::Tensor::f32({1, 5}, std::vector<float>{0, 0, 1, 0, 0});
        co_await send(s, ctx, p);
        co_await await_cancel(s, ctx);
        co_return;
      }
      case Script::kNaN: {
        auto p = progress(s, req, first, false);
        p.output.f32_mut()[3] = std::numeric_limits<float>::quiet_NaN();
        co_await send(s, ctx, p);
        co_await await_cancel(s, ctx);
        co_return;
      }
      case Script::kBackwards: {
        auto p1 = progress(s, req, 1, false);
        auto p0 = progress(s, req, 0, false);
        co_await send(s, ctx, p1);
        co_await send(s, ctx, p0);
        co_await await_cancel(s, ctx);
        co_return;
      }
      case Script::kVanish: {
        auto p = progress(s, req, first, false);
        co_await send(s, ctx, p);
        p2p::Host* h = s.host.get();
        boost::asio::post(loop_.ex(), [h] { h->stop(); });
        co_await await_cancel(s, ctx);
        co_return;
      }
      case Script::kTwoThenWait: {
        auto p0 = progress(s, req, 0, false);
        auto p1 = progress(s, req, 1, false);
        co_await send(s, ctx, p0);
        co_await send(s, ctx, p1);
        co_await await_cancel(s, ctx);
        co_return;
      }
    }
  }

  Loop loop_;
  HostPtr client_;
  std::vector<std::unique_ptr<FakeServer>> servers_;
  p2p::Signal changed_;
  int provider_calls_ = 0;
  std::vector<identity::PeerId> last_exclude_;
};

}  // namespace idn::client::testing
