#include "node/node_thread.h"

#include "routing/dht_routing.h"

namespace idn::node {

Config loopback_config(std::vector<core::Multiaddr> bootstrap) {
  Config c;
  c.listen = {core::Multiaddr::parse("/ip4/127.0.0.1/tcp/0").value()};
  c.bootstrap = std::move(bootstrap);
  c.log_level = "warn";
  c.dht.withdraw_on_stop = false;
  return c;
}

Result<std::unique_ptr<NodeThread>> NodeThread::start(Config config) {
  const bool joins = !config.bootstrap.empty() || !config.dht.bootstrap.empty();
  IDN_ASSIGN_OR_RETURN(auto n, Node::create(std::move(config)));
  std::unique_ptr<NodeThread> t(new NodeThread());
  t->node_ = std::move(n);
  t->thread_ = std::thread([n = t->node_.get()] { (void)n->run(false); });
  // The first node of a network has nobody to join yet.
  if (joins && t->node_->routing())
    IDN_RETURN_IF_ERROR(t->node_->routing()->wait_connected(std::chrono::seconds(20)));
  return t;
}

void NodeThread::stop() {
  if (!thread_.joinable()) return;
  node_->shutdown();
  thread_.join();
}

}  // namespace idn::node
