// The HTTP gateway end to end on 127.0.0.1: a provider hosts the tiny B-LeNet, a gateway node
// (with HTTP) answers /idn/v1 requests through its client session. JSON and PNG answers equal
// the engine's and the session's (`idn infer`'s path); an event stream brings progress then a
// final answer; a client that hangs up cancels the provider's work; bad requests get 4xx with
// one line and the node keeps serving.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <png.h>
#include <sys/socket.h>

#include <fmt/format.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>

#include "client/blocking.h"
#include "engine/engine.h"
#include "gateway/openapi.h"
#include "gateway/request.h"
#include "node/model_host.h"
#include "node/node_test_util.h"
#include "routing/dht_routing.h"
#include "serve/infer_server.h"
#include "support/tiny_model.h"

namespace idn::node {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using ::testing::HasSubstr;
using testing::RunningNode;

// Holds the provider's worker before stage 0 while `hold` is set, so a test can act while a
// request is known to be in the provider's hands.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool hold = false;
  int reached = 0;
  void before_stage(int stage) {
    std::unique_lock lock(mu);
    if (stage != 0 || !hold) return;
    ++reached;
    cv.notify_all();
    cv.wait(lock, [&] { return !hold; });
  }
  bool wait_reached(int n, std::chrono::milliseconds limit) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, limit, [&] { return reached >= n; });
  }
  void set(bool h) {
    std::lock_guard lock(mu);
    hold = h;
    if (h) reached = 0;
    cv.notify_all();
  }
};

struct Reply {
  unsigned status = 0;
  std::string head, body;
};

// A blocking HTTP/1.1 exchange on its own socket (Connection: close; read until EOF).
class Client {
 public:
  explicit Client(const HttpAddress& a) : sock_(ioc_) {
    sock_.connect({boost::asio::ip::make_address(a.host), a.port});
    timeval tv{10, 0};  // a test never hangs on a silent server
    ::setsockopt(sock_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  void send(std::string_view method, std::string_view target, std::string_view type,
            std::string_view body, std::string_view extra = "") {
    std::string req = fmt::format(
        "{} {} HTTP/1.1\r\nHost: t\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}"
        "Connection: close\r\n\r\n",
        method, target, type, body.size(), extra);
    req += body;
    boost::asio::write(sock_, boost::asio::buffer(req));
  }
  // Headers only, announcing `length` bytes of body that never come.
  void send_head(std::string_view method, std::string_view target, std::string_view type,
                 size_t length) {
    std::string req =
        fmt::format("{} {} HTTP/1.1\r\nHost: t\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
                    method, target, type, length);
    boost::asio::write(sock_, boost::asio::buffer(req));
  }
  // Reads until `needle` has arrived (or EOF / timeout); returns everything read so far.
  const std::string& read_until(std::string_view needle) {
    char buf[8192];
    while (got_.find(needle) == std::string::npos) {
      boost::system::error_code ec;
      size_t n = sock_.read_some(boost::asio::buffer(buf), ec);
      if (ec) break;
      got_.append(buf, n);
    }
    return got_;
  }
  Reply reply() {
    read_until("\x01never");
    Reply r;
    size_t end = got_.find("\r\n\r\n");
    if (got_.size() < 12 || end == std::string::npos) return r;
    r.status = static_cast<unsigned>(std::stoi(got_.substr(9, 3)));
    r.head = got_.substr(0, end);
    r.body = got_.substr(end + 4);
    return r;
  }
  void close() { sock_.close(); }

 private:
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::socket sock_;
  std::string got_;
};

Gate gate;

// A provider and a gateway node, shared by the suite (training and joining cost seconds).
class Gateway : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pkg_ = new std::filesystem::path(idn::testing::tiny_package("b-lenet"));
    // No tombstones at the end: the last node to stop would wait 5 s for a DHT that is gone.
    Config pc = testing::peer_config({});
    pc.dht.withdraw_on_stop = false;
    pc.serve.before_stage = [](const core::Multihash&, int stage, size_t) {
      gate.before_stage(stage);
    };
    provider_ = new RunningNode(pc);
    auto boot = (*provider_)->listen_addrs();
    Config gc = testing::peer_config(boot);
    gc.http = HttpAddress{"127.0.0.1", 0};
    gc.dht.withdraw_on_stop = false;
    gateway_ = new RunningNode(gc);
    ASSERT_TRUE((*gateway_)->routing()->wait_connected(20s).is_ok());
    RunningNode& p = *provider_;
    auto pub = p.on_io<Result<Published>>([&]() { return p->models().publish(*pkg_, "test"); });
    ASSERT_TRUE(pub.ok()) << pub.status().to_string();
    sid_ = new core::Multihash(pub->service_id);
    // The provider record reaches the gateway's DHT view within milliseconds on loopback.
    auto until = std::chrono::steady_clock::now() + 20s;
    RunningNode& g = *gateway_;
    while (std::chrono::steady_clock::now() < until) {
      auto found = g.on_io<Result<std::vector<identity::PeerId>>>(
          [&]() { return g->models().providers(*sid_, 1, {}); });
      if (found.ok() && !found->empty()) break;
    }
    addr_ = *(*gateway_)->http_address();
  }
  static void TearDownTestSuite() {
    delete gateway_;
    delete provider_;
    delete sid_;
    delete pkg_;
  }

  static std::string sid_text() { return ise::service_id_text(*sid_); }
  static std::string infer_path() { return "/idn/v1/services/" + sid_text() + "/infer"; }

  static Reply post(std::string_view target, std::string_view type, std::string_view body) {
    Client c(addr_);
    c.send("POST", target, type, body);
    return c.reply();
  }

  static std::string json_body(const core::Tensor& x, int fanout = 1, int deadline_ms = 10000) {
    auto v = x.f32();
    return json{{"input", {{"shape", x.shape}, {"data", std::vector<float>(v.begin(), v.end())}}},
                {"fanout", fanout},
                {"deadline_ms", deadline_ms}}
        .dump();
  }

  // The provider's stage counters once every request sent so far is counted: its one worker
  // takes requests in order and publishes a batch's counters when the batch is over (after its
  // answers), so one more request whose stage 0 shows up marks the point.
  static std::vector<int64_t> settled_stage_runs() {
    auto& server = (*provider_)->server();
    const int64_t s0 = server.stage_runs(*sid_).at(0);
    Reply r = post(infer_path(), "application/json", json_body(first_image()));
    EXPECT_EQ(r.status, 200u) << r.body;
    auto until = std::chrono::steady_clock::now() + 10s;
    while (server.stage_runs(*sid_)[0] == s0 && std::chrono::steady_clock::now() < until)
      std::this_thread::yield();
    return server.stage_runs(*sid_);
  }
  static core::Tensor first_image();

  static std::filesystem::path* pkg_;
  static RunningNode* provider_;
  static RunningNode* gateway_;
  static core::Multihash* sid_;
  static HttpAddress addr_;
};

std::filesystem::path* Gateway::pkg_ = nullptr;
RunningNode* Gateway::provider_ = nullptr;
RunningNode* Gateway::gateway_ = nullptr;
core::Multihash* Gateway::sid_ = nullptr;
HttpAddress Gateway::addr_;

// Test images as 8-bit pixels (what a PNG carries) and as the F32 input those pixels are.
std::vector<std::vector<uint8_t>> test_pixels(size_t n) {
  auto all = motifs::to_samples(idn::testing::tiny_data().test.x);
  std::vector<std::vector<uint8_t>> out;
  for (size_t i = 0; i < n && i < all.size(); ++i) {
    std::vector<uint8_t> px;
    for (float v : all[i].f32())
      px.push_back(static_cast<uint8_t>(std::lround(std::clamp(v, 0.0f, 1.0f) * 255)));
    out.push_back(std::move(px));
  }
  return out;
}

core::Tensor as_input(const std::vector<uint8_t>& px) {
  std::vector<float> v;
  for (uint8_t p : px) v.push_back(p / 255.0f);
  return core::Tensor::f32({1, 28, 28}, v);
}

std::string png_of(const std::vector<uint8_t>& px) {
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  img.width = 28;
  img.height = 28;
  img.format = PNG_FORMAT_GRAY;
  png_alloc_size_t size = 0;
  png_image_write_to_memory(&img, nullptr, &size, 0, px.data(), 0, nullptr);
  std::string out(size, '\0');
  png_image_write_to_memory(&img, out.data(), &size, 0, px.data(), 0, nullptr);
  out.resize(size);
  return out;
}

core::Tensor Gateway::first_image() {
  return as_input(test_pixels(1)[0]);
}

TEST_F(Gateway, ServiceDescriptorAndProviders) {
  auto r = http_get(addr_, "/idn/v1/services/" + sid_text());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->status, 200u) << r->body;
  auto j = json::parse(r->body);
  EXPECT_EQ(j["service"], sid_text());
  EXPECT_TRUE(j["descriptor"]["name"].is_string());
  EXPECT_EQ(j["descriptor"]["inputs"][0]["shape"], json::parse("[1,28,28]"));
  ASSERT_FALSE(j["providers"].empty());
  EXPECT_EQ(j["providers"][0]["peer"], (*provider_)->id().to_string());
  EXPECT_FALSE(j["providers"][0]["addrs"].empty());
  // The OpenAPI description is served as built in.
  auto doc = http_get(addr_, "/idn/v1/openapi.json");
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(doc->body, gateway::openapi_json());
}

TEST_F(Gateway, JsonAndPngInferEqualTheEngineAndTheSession) {
  auto engine = engine::Engine::load(*pkg_);
  ASSERT_TRUE(engine.ok());
  client::SessionOptions so;
  so.fanout = 1;
  so.deadline = 10s;
  RunningNode& g = *gateway_;
  auto session = g.on_io<std::shared_ptr<client::Session>>(
      [&]() -> p2p::awaitable<std::shared_ptr<client::Session>> {
        co_return g->session(*sid_, so);
      });
  for (const auto& px : test_pixels(4)) {
    core::Tensor x = as_input(px);
    auto want = (*engine)->infer(x);
    ASSERT_TRUE(want.ok());
    auto via_session = client::infer_blocking(*session, x);
    ASSERT_TRUE(via_session.ok()) << via_session.status().to_string();
    Reply jr = post(infer_path(), "application/json", json_body(x));
    Reply pr = post(infer_path() + "?fanout=1&deadline_ms=10000", "image/png", png_of(px));
    for (const Reply* r : {&jr, &pr}) {
      ASSERT_EQ(r->status, 200u) << r->body;
      auto j = json::parse(r->body);
      EXPECT_EQ(j["class"], want->predicted);
      EXPECT_EQ(j["exit"], want->exit_index);
      EXPECT_NEAR(j["confidence"].get<double>(), want->confidence, 1e-4);
      EXPECT_EQ(j["peer"], (*provider_)->id().to_string());
      EXPECT_TRUE(j["complete"].get<bool>());
      EXPECT_GE(j["latency_ms"].get<double>(), 0.0);
      auto out = via_session->output.f32();
      ASSERT_EQ(j["outputs"].size(), out.size());
      for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(j["outputs"][i].get<float>(), out[i]);
    }
  }
}

TEST_F(Gateway, EventStreamSendsProgressThenFinal) {
  auto px = test_pixels(1)[0];
  Client c(addr_);
  c.send("POST", infer_path(), "application/json", json_body(as_input(px)),
         "Accept: text/event-stream\r\n");
  Reply r = c.reply();
  ASSERT_EQ(r.status, 200u) << r.head << r.body;
  EXPECT_THAT(r.head, HasSubstr("Content-Type: text/event-stream"));
  size_t progress = r.body.find("event: progress\ndata: {");
  size_t final = r.body.find("event: final\ndata: {");
  ASSERT_NE(progress, std::string::npos) << r.body;
  ASSERT_NE(final, std::string::npos) << r.body;
  EXPECT_LT(progress, final);
  auto last = json::parse(r.body.substr(final + 19, r.body.find('\n', final + 19) - final - 19));
  EXPECT_TRUE(last["complete"].get<bool>());
}

TEST_F(Gateway, ClosingTheEventStreamCancelsTheProvidersWork) {
  auto before = (*provider_)->server().stats();
  auto stages_before = settled_stage_runs();
  ASSERT_FALSE(stages_before.empty());
  gate.set(true);
  auto sent = std::chrono::steady_clock::now();
  Client c(addr_);
  c.send("POST", infer_path(), "application/json", json_body(as_input(test_pixels(1)[0]), 1, 30000),
         "Accept: text/event-stream\r\n");
  c.read_until("\r\n\r\n");
  ASSERT_TRUE(gate.wait_reached(1, 10s)) << "the request never reached the provider";
  c.close();
  // The Cancel reaches the provider while its worker is still held. A session also cancels a
  // peer silent for inactivity_timeout (1 s after the request went out), so a Cancel seen
  // before that came from the hang-up.
  auto until = std::chrono::steady_clock::now() + 10s;
  while ((*provider_)->server().stats().cancelled == before.cancelled &&
         std::chrono::steady_clock::now() < until)
    std::this_thread::yield();
  auto took = std::chrono::steady_clock::now() - sent;
  gate.set(false);
  EXPECT_EQ((*provider_)->server().stats().cancelled, before.cancelled + 1);
  EXPECT_LT(took, 1000ms) << "the Cancel came from the inactivity timeout, not the hang-up";
  // The provider's one worker takes requests in order: once a later request is answered, the
  // cancelled one is behind it, and no stage of the model ran for it.
  auto stages_after = settled_stage_runs();
  EXPECT_EQ(stages_after[0], stages_before[0] + 1) << "stage 0 ran for the cancelled request";
}

TEST_F(Gateway, BadRequestsGet4xxWithOneLineAndTheNodeKeepsServing) {
  const std::string path = infer_path();
  std::string png = png_of(test_pixels(1)[0]);
  std::string corrupt = png;
  corrupt[png.size() / 2] ^= 0x55;
  const std::string unknown =
      "/idn/v1/services/QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG/infer";
  struct Case {
    std::string target, type, body;
    unsigned status;
    std::string reason;
  };
  const Case cases[] = {
      {path, "application/json", "{\"input\":", 400, "malformed JSON"},
      {path, "application/json", R"({"input":{"shape":[3,28,28],"data":[1]}})", 400,
       "does not match"},
      {path, "application/json",
       R"({"input":{"shape":[4294967296,4294967296,4294967296],"data":[]}})", 400, "[1, 2^31]"},
      {path, "image/png", corrupt, 400, "bad PNG"},
      {path, "image/png", "\x89PNG", 400, "bad PNG"},
      {path + "?fanout=99", "image/png", png, 400, "fanout"},
      {path, "text/csv", "1,2", 415, "unsupported content type"},
      {"/idn/v1/services/notanid/infer", "application/json", "{}", 400, "bad service ID"},
      {unknown, "application/json", "{}", 404, "unknown service"},
  };
  for (const auto& c : cases) {
    Reply r = post(c.target, c.type, c.body);
    EXPECT_EQ(r.status, c.status) << c.reason << ": " << r.body;
    EXPECT_THAT(r.body, HasSubstr(c.reason));
    EXPECT_EQ(r.body.find('\n'), r.body.size() - 1) << "one line: " << r.body;
  }
  // Over the body limit: refused from the headers, before any of the body is read.
  Client big(addr_);
  big.send_head("POST", path, "application/json", gateway::kMaxInferBody + 1);
  Reply too_big = big.reply();
  EXPECT_EQ(too_big.status, 413u) << too_big.body;
  EXPECT_THAT(too_big.body, HasSubstr("too large"));
  Reply ok = post(path, "application/json", json_body(as_input(test_pixels(1)[0])));
  EXPECT_EQ(ok.status, 200u) << ok.body;
}

}  // namespace
}  // namespace idn::node
