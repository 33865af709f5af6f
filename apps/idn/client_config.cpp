// The config of a short-lived client node that joins the network through --bootstrap peers
// (idn infer --service, idn init).
#include "cli.h"

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

}  // namespace idn::cli
