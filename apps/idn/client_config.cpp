// The config of a short-lived client node that joins the network through --bootstrap peers
// (idn infer --service, idn init), and the node's lifetime around a command's body.
#include <thread>

#include <spdlog/spdlog.h>

#include "cli.h"
#include "node/node.h"

namespace idn::cli {

Result<node::Config> client_config(const std::vector<std::string>& bootstrap) {
  node::Config c;
  bool loopback = true;
  for (const auto& b : bootstrap) {
    auto ma = node::parse_bootstrap_addr(b);
    if (!ma.ok()) return ma.status().with_context("--bootstrap");
    if (auto ip = ma->ip(); !ip || !ip->starts_with("127.")) loopback = false;
    c.bootstrap.push_back(*ma);
  }
  c.listen = {
      core::Multiaddr::parse(loopback ? "/ip4/127.0.0.1/tcp/0" : "/ip4/0.0.0.0/tcp/0").value()};
  c.log_level = "warn";
  return c;
}

int with_client_node(const std::vector<std::string>& bootstrap,
                     const std::function<int(node::Node&)>& body) {
  spdlog::set_level(spdlog::level::warn);
  auto c = client_config(bootstrap);
  if (!c.ok()) return report(c.status());
  auto n = node::Node::create(std::move(*c));
  if (!n.ok()) return report(n.status());
  node::Node& nd = **n;
  std::thread io([&] { (void)nd.run(/*handle_signals=*/false); });
  int rc = body(nd);
  nd.shutdown();
  io.join();
  return rc;
}

}  // namespace idn::cli
