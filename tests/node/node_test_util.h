// Test harness for node/: real Nodes on 127.0.0.1 (ephemeral ports), each driving its own
// io_context thread, stopped and joined when the harness goes away.
#pragma once

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <functional>
#include <future>
#include <thread>

#include "node/node.h"
#include "rpc/dispatcher.h"

namespace idn::node::testing {

namespace asio = boost::asio;
using p2p::awaitable;

inline Config test_config() {
  Config c;
  c.listen = {core::Multiaddr::parse("/ip4/127.0.0.1/tcp/0").value()};
  c.http = HttpAddress{"127.0.0.1", 0};
  return c;
}

// A loopback peer that dials `boot` at start, with no HTTP endpoint and a 60 s DHT record TTL.
inline Config peer_config(const std::vector<core::Multiaddr>& boot) {
  Config c;
  c.listen = {core::Multiaddr::parse("/ip4/127.0.0.1/tcp/0").value()};
  c.bootstrap = boot;
  c.dht.record_ttl = std::chrono::seconds(60);
  return c;
}

// An /idn/infer handler that makes every answer up: `output` (of the service's output shape),
// confidence 1, final at once, 1000 operations. Installed with Node::dispatcher()
// .on_infer_request on a node's io thread, it turns that node into a liar no config can make.
inline rpc::Dispatcher::InferHandler made_up_answers(std::vector<int64_t> shape,
                                                     std::vector<float> output) {
  return [shape, output](rpc::InferContext& ctx) -> awaitable<void> {
    protocol::InferProgress p;
    p.exit_index = 0;
    p.output = core::Tensor::f32(shape, output);
    p.confidence = 1.0f;
    p.entropy = 0.0f;
    p.operations = 1000;
    p.final = true;
    (void)co_await ctx.send(std::move(p));
  };
}

// A Node running on its own thread; stopped and joined on destruction.
class RunningNode {
 public:
  explicit RunningNode(Config c, std::function<void(Node&)> setup = {}) {
    auto n = Node::create(std::move(c));
    EXPECT_TRUE(n.ok()) << n.status().to_string();
    if (!n.ok()) return;
    node_ = std::move(*n);
    if (setup) setup(*node_);
    thread_ = std::thread([this] { EXPECT_TRUE(node_->run(false).is_ok()); });
  }
  explicit RunningNode(std::unique_ptr<Node> n) : node_(std::move(n)) {
    thread_ = std::thread([this] { EXPECT_TRUE(node_->run(false).is_ok()); });
  }
  ~RunningNode() {
    if (!node_) return;
    node_->shutdown();
    thread_.join();  // returns only if the shutdown really ends every loop and connection
  }
  Node& operator*() { return *node_; }
  Node* operator->() { return node_.get(); }
  explicit operator bool() const { return node_ != nullptr; }

  // Runs `body` on the node's io thread and waits for its result.
  template <class T>
  T on_io(std::function<awaitable<T>()> body) {
    std::promise<T> done;
    asio::co_spawn(
        node_->io(), [&]() -> awaitable<void> { done.set_value(co_await body()); }, asio::detached);
    return done.get_future().get();
  }

 private:
  std::unique_ptr<Node> node_;
  std::thread thread_;
};

}  // namespace idn::node::testing
