// Real nodes on 127.0.0.1 (ephemeral ports), each driving its own io_context thread: bootstrap,
// /status and /metrics over HTTP, and every IDN protocol message exchanged between three nodes.
#include "node/node.h"
#include "node/node_test_util.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

namespace idn::node {
namespace {

namespace asio = boost::asio;
using ::testing::HasSubstr;
using namespace std::chrono_literals;
using p2p::awaitable;

using testing::RunningNode;
using testing::test_config;

nlohmann::json status_of(const HttpAddress& http) {
  auto r = http_get(http, "/status");
  if (!r.ok() || r->status != 200) return nullptr;
  return nlohmann::json::parse(r->body, nullptr, false);
}

bool lists_peer(const nlohmann::json& status, const std::string& peer) {
  if (!status.is_object()) return false;
  for (const auto& p : status["peers"]) {
    if (p["peer_id"] == peer) return true;
  }
  return false;
}

// Polls /status until `pred` holds or the deadline passes (no fixed sleeps: each poll is an
// HTTP round trip, and the loop ends as soon as the state is reached).
bool poll_status(const HttpAddress& http, std::function<bool(const nlohmann::json&)> pred,
                 std::chrono::milliseconds within = 10s) {
  auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred(status_of(http))) return true;
    std::this_thread::yield();
  }
  return false;
}

Config bootstrapping_to(const Node& first) {
  Config c = test_config();
  c.bootstrap = {first.listen_addrs().front()};
  return c;
}

TEST(Node, SecondNodeBootstrapsToTheFirstAndBothShowEachOtherInStatus) {
  RunningNode a(test_config());
  ASSERT_TRUE(a);
  RunningNode b(bootstrapping_to(*a));
  ASSERT_TRUE(b);
  std::string ida = a->id().to_string(), idb = b->id().to_string();
  EXPECT_TRUE(a->ephemeral_identity());

  EXPECT_TRUE(poll_status(*a->http_address(), [&](const auto& s) { return lists_peer(s, idb); }));
  EXPECT_TRUE(poll_status(*b->http_address(), [&](const auto& s) {
    if (!lists_peer(s, ida)) return false;
    for (const auto& p : s["peers"]) {
      // Outbound from b, identified, and pinged once on connect.
      if (p["peer_id"] == ida) {
        return p["direction"] == "outbound" && !p["rtt_ms"].is_null() && p["agent"] == "idn/0.1.0";
      }
    }
    return false;
  }));

  auto s = status_of(*b->http_address());
  ASSERT_TRUE(s.is_object());
  EXPECT_EQ(s["peer_id"], idb);
  ASSERT_EQ(s["listen_addrs"].size(), 1u);
  EXPECT_THAT(s["listen_addrs"][0].get<std::string>(), HasSubstr("/ip4/127.0.0.1/tcp/"));
  EXPECT_THAT(s["listen_addrs"][0].get<std::string>(), HasSubstr("/p2p/" + idb));
  auto protocols = s["protocols"].get<std::vector<std::string>>();
  EXPECT_THAT(protocols, ::testing::IsSupersetOf({std::string(protocol::kSwapProtocolId),
                                                  std::string(protocol::kInferProtocolId)}));
}

TEST(Node, MetricsReportConnectionsBytesHandshakesAndRttAndPassPromtool) {
  RunningNode a(test_config());
  ASSERT_TRUE(a);
  RunningNode b(bootstrapping_to(*a));
  ASSERT_TRUE(b);
  std::string ida = a->id().to_string();
  ASSERT_TRUE(poll_status(*b->http_address(), [&](const auto& s) {
    for (const auto& p : s["peers"]) {
      if (p["peer_id"] == ida && !p["rtt_ms"].is_null()) return true;
    }
    return false;
  }));
  auto r = http_get(*b->http_address(), "/metrics");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200u);
  EXPECT_THAT(r->content_type, HasSubstr("text/plain; version=0.0.4"));
  const std::string& m = r->body;
  EXPECT_THAT(m, HasSubstr("\nidn_connections 1\n"));
  EXPECT_THAT(m, HasSubstr("idn_handshakes_total{result=\"ok\"} 1\n"));
  EXPECT_THAT(m, HasSubstr("idn_connections_opened_total{direction=\"outbound\"} 1\n"));
  EXPECT_THAT(m, HasSubstr("idn_ping_rtt_seconds_bucket{le=\"+Inf\"} "));
  EXPECT_THAT(m, HasSubstr("# TYPE idn_bytes_received_total counter\n"));
  EXPECT_THAT(m, HasSubstr("idn_build_info{version=\"idn/0.1.0\""));
  EXPECT_EQ(m.find("idn_ping_rtt_seconds_count 0\n"), std::string::npos) << m;

  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  }
  std::string path = ::testing::TempDir() + "/node_metrics.prom";
  std::ofstream(path) << m;
  FILE* p = popen(("promtool check metrics < " + path + " 2>&1").c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[256];
  while (fgets(buf, sizeof buf, p)) out += buf;
  EXPECT_EQ(pclose(p), 0) << out;
  EXPECT_EQ(out, "");
}

TEST(Node, ListenAddressInUseIsAClearError) {
  RunningNode a(test_config());
  ASSERT_TRUE(a);
  Config c = test_config();
  c.http = a->http_address();
  auto n = Node::create(c);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), Code::kIOError);
  EXPECT_THAT(n.status().message(), HasSubstr(a->http_address()->to_string()));
}

TEST(Node, MissingIdentityFileIsNotFound) {
  Config c = test_config();
  c.identity_file = "/nonexistent/idn/node.key";
  auto n = Node::create(c);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), Code::kNotFound);
  EXPECT_THAT(n.status().message(), HasSubstr("node identity"));
}

// Three nodes; b and c send every IDN message to a (and c also to b), over real sockets.
TEST(Node, ThreeNodesExchangeEveryIdnMessage) {
  struct Seen {
    std::mutex mu;
    std::condition_variable changed;
    std::vector<std::string> events;
    void add(std::string e) {
      {
        std::lock_guard l(mu);
        events.push_back(std::move(e));
      }
      changed.notify_all();
    }
    size_t count_locked(const std::string& prefix) {
      return std::count_if(events.begin(), events.end(),
                           [&](const auto& e) { return e.starts_with(prefix); });
    }
    size_t count(const std::string& prefix) {
      std::lock_guard l(mu);
      return count_locked(prefix);
    }
    // Receipts are read beside the provider's handler, after its final answer and EOF reached
    // the requester: the exchange can end before the provider has handled its receipt.
    size_t await_count(const std::string& prefix, size_t n) {
      std::unique_lock l(mu);
      changed.wait_for(l, 10s, [&] { return count_locked(prefix) >= n; });
      return count_locked(prefix);
    }
  };
  auto seen = std::make_shared<Seen>();
  auto serve = [seen](Node& n) {
    auto& d = n.dispatcher();
    d.on_open([seen](rpc::SwapContext& ctx, const rpc::SwapOpen& o) -> awaitable<Status> {
      seen->add("open:" + ctx.peer().to_string());
      // Answer with our view: their debt is our credit.
      rpc::SwapMessage reply{
          rpc::SwapOpen{{o.ledger.credit, o.ledger.debt, o.ledger.sequence, 1}, true}};
      co_return co_await ctx.reply(reply);
    });
    d.on_need_list([seen](rpc::SwapContext&, const rpc::NeedList& l) -> awaitable<Status> {
      seen->add("need:" + std::to_string(l.service_ids.size()));
      co_return Status::ok();
    });
    d.on_have_list([seen](rpc::SwapContext&, const rpc::HaveList& l) -> awaitable<Status> {
      seen->add("have:" + std::to_string(l.service_ids.size()));
      co_return Status::ok();
    });
    d.on_close([seen](rpc::SwapContext&, const rpc::SwapClose& c) -> awaitable<Status> {
      seen->add(c.final ? "close:final" : "close");
      co_return Status::ok();
    });
    d.on_infer_request([seen](rpc::InferContext& ctx) -> awaitable<void> {
      seen->add("request");
      for (uint32_t exit = 0; exit < 2; ++exit) {
        rpc::InferProgress p;
        p.exit_index = exit;
        p.output = ctx.request().input;
        p.confidence = exit == 0 ? 0.6f : 0.95f;
        p.operations = 1000 * (exit + 1);
        p.final = exit == 1;
        Status st = co_await ctx.send(p);
        if (!st.is_ok()) co_return;
      }
    });
    d.on_receipt([seen](const identity::PeerId&, const rpc::Receipt& r) -> awaitable<Status> {
      seen->add("receipt:" + std::to_string(r.operations));
      co_return Status::ok();
    });
  };

  // This test speaks the messages itself (its handlers replace the node's): ComputeSwap's own
  // Opens on every new connection would add to the counts.
  auto raw = [](Config c) {
    c.swap.enabled = false;
    return c;
  };
  RunningNode a(raw(test_config()), serve);
  ASSERT_TRUE(a);
  RunningNode b(raw(bootstrapping_to(*a)), serve);
  ASSERT_TRUE(b);
  Config cc = raw(bootstrapping_to(*a));
  cc.bootstrap.push_back(b->listen_addrs().front());
  RunningNode c(cc, serve);
  ASSERT_TRUE(c);
  std::string ida = a->id().to_string(), idb = b->id().to_string();
  ASSERT_TRUE(poll_status(*c->http_address(),
                          [&](const auto& s) { return lists_peer(s, ida) && lists_peer(s, idb); }));
  ASSERT_TRUE(poll_status(*b->http_address(), [&](const auto& s) { return lists_peer(s, ida); }));

  // One full exchange from `from` to `to`; returns a description of anything that went wrong.
  auto exchange = [](Node& from, identity::PeerId to) -> awaitable<std::string> {
    auto swap = co_await rpc::open_swap(from.host(), to);
    if (!swap.ok()) co_return "open_swap: " + swap.status().to_string();
    rpc::SwapMessage open{rpc::SwapOpen{{5, 9, 2, 0}, false}};
    Status st = co_await swap->send(open);
    if (!st.is_ok()) co_return "send open: " + st.to_string();
    auto reply = co_await swap->receive();
    if (!reply.ok()) co_return "open reply: " + reply.status().to_string();
    auto* o = std::get_if<rpc::SwapOpen>(&*reply);
    if (!o || !o->reply || o->ledger.debt != 9 || o->ledger.credit != 5) co_return "bad open reply";
    std::vector<rpc::SwapMessage> rest{rpc::NeedList{{Bytes{0x12, 1}, Bytes{0x12, 2}}},
                                       rpc::HaveList{{Bytes{0x12, 3}}},
                                       rpc::SwapClose{true, "test done"}};
    for (const auto& m : rest) {
      st = co_await swap->send(m);
      if (!st.is_ok()) co_return "send swap: " + st.to_string();
    }
    st = co_await swap->close_write();
    auto eof = co_await swap->receive();
    if (eof.status().code() != Code::kNotFound) co_return "swap end: " + eof.status().to_string();

    auto infer = co_await rpc::open_infer(from.host(), to);
    if (!infer.ok()) co_return "open_infer: " + infer.status().to_string();
    rpc::InferRequest req;
    req.request_id = 42;
    req.service_id = {0x12, 0x20, 7};
    float v[] = {0.1f, 0.2f, 0.3f, 0.4f};
    req.input = core::Tensor::f32({1, 4}, v);
    req.exit_rule = {protocol::ExitCriterion::kConfidence, 0.9f};
    req.deadline_ms = 5000;
    rpc::InferClientMessage rm{req};
    st = co_await infer->send(rm);
    if (!st.is_ok()) co_return "send request: " + st.to_string();
    uint64_t ops = 0;
    int progress = 0;
    for (;;) {
      auto m = co_await infer->receive();
      if (!m.ok()) co_return "progress: " + m.status().to_string();
      const auto& p = std::get<rpc::InferProgress>(*m);
      if (p.request_id != 42 || p.output != req.input) co_return "bad progress";
      ++progress;
      ops = p.operations;
      if (p.final) break;
    }
    if (progress != 2) co_return "expected 2 progress messages";
    rpc::InferClientMessage cancel{rpc::InferCancel{42}};  // late cancel: harmless
    st = co_await infer->send(cancel);
    if (!st.is_ok()) co_return "send cancel: " + st.to_string();
    rpc::Receipt r{42, req.service_id, ops, to.bytes(), from.id().bytes(), 1, {}};
    r.signature = from.host().key().sign(protocol::receipt_signing_bytes(r));
    rpc::InferClientMessage receipt{r};
    st = co_await infer->send(receipt);
    if (!st.is_ok()) co_return "send receipt: " + st.to_string();
    co_await infer->close_write();
    auto end = co_await infer->receive();
    if (end.status().code() != Code::kNotFound) co_return "infer end: " + end.status().to_string();
    co_return "";
  };

  identity::PeerId pa = a->id(), pb = b->id();
  EXPECT_EQ(b.on_io<std::string>([&]() { return exchange(*b, pa); }), "");
  EXPECT_EQ(c.on_io<std::string>([&]() { return exchange(*c, pa); }), "");
  EXPECT_EQ(c.on_io<std::string>([&]() { return exchange(*c, pb); }), "");

  EXPECT_EQ(seen->count("open:"), 3u);
  EXPECT_EQ(seen->count("need:2"), 3u);
  EXPECT_EQ(seen->count("have:1"), 3u);
  EXPECT_EQ(seen->count("close:final"), 3u);
  EXPECT_EQ(seen->count("request"), 3u);
  EXPECT_EQ(seen->await_count("receipt:2000", 3), 3u);
  // The dispatcher's counters are on /metrics.
  auto m = http_get(*a->http_address(), "/metrics");
  ASSERT_TRUE(m.ok());
  EXPECT_THAT(m->body, HasSubstr("idn_protocol_messages_total{type=\"swap\"} 8\n"));
  EXPECT_THAT(m->body, HasSubstr("idn_protocol_messages_total{type=\"receipt\"} 2\n"));
  EXPECT_THAT(m->body, HasSubstr("idn_protocol_stream_errors_total 0\n"));
}

}  // namespace
}  // namespace idn::node
