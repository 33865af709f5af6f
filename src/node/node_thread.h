// A Node driven on its own thread, for programs that run several nodes in one process (`idn
// demo`, the benchmarks): started on creation, shut down and joined on stop() or destruction.
#pragma once

#include <memory>
#include <thread>
#include <vector>

#include "node/node.h"

namespace idn::node {

// A node for a loopback network in this process (the demos, the benches): 127.0.0.1, an
// ephemeral TCP port (and so DHT port), no HTTP endpoint, warnings-only logs, a temporary
// data_dir, and no withdrawal of its DHT records at stop: the network ends with the process, and
// the last node's withdrawal would wait 5 s for peers that have gone.
Config loopback_config(std::vector<core::Multiaddr> bootstrap = {});

class NodeThread {
 public:
  // Creates the node and runs it. When `bootstrap` is non-empty, waits (up to 20 s) until its
  // DHT has joined. Errors: Node::create's, Timeout.
  static Result<std::unique_ptr<NodeThread>> start(Config config);
  ~NodeThread() { stop(); }
  NodeThread(const NodeThread&) = delete;
  NodeThread& operator=(const NodeThread&) = delete;

  // Graceful shutdown; blocks until the node's thread is done. Idempotent; any thread but the
  // node's own.
  void stop();
  bool running() const { return thread_.joinable(); }
  Node& operator*() { return *node_; }
  Node* operator->() { return node_.get(); }

 private:
  NodeThread() = default;
  std::unique_ptr<Node> node_;
  std::thread thread_;
};

}  // namespace idn::node
