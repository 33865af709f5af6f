// The node's side of model hosting: ise::ModelHost (publish, initModel, teardown, restore)
// runs with DhtServiceRouting (routing::DhtRouting, its callbacks brought back to the io
// thread) and ServerExecutor (serve::InferServer, which runs the engine).
// Threading: io thread only, like ise::ModelHost.
#pragma once

#include "ise/model_host.h"

namespace idn::routing {
class DhtRouting;
}
namespace idn::serve {
class InferServer;
}

namespace idn::node {

// The names the node, its tools and its tests use for the hosting it composes.
using ise::add_hosted;
using ise::HostedService;
using ise::ModelHost;
using ise::Published;
using ise::store_publication;

class DhtServiceRouting final : public ise::ServiceRouting {
 public:
  DhtServiceRouting(p2p::asio::any_io_executor io, routing::DhtRouting& dht);
  p2p::awaitable<Status> provide(core::Multihash key) override;
  p2p::awaitable<Status> withdraw(core::Multihash key) override;
  p2p::awaitable<Result<std::vector<routing::PeerInfo>>> find_providers(core::Multihash key,
                                                                        size_t n) override;

 private:
  p2p::asio::any_io_executor io_;
  routing::DhtRouting& dht_;
};

class ServerExecutor final : public ise::ModelExecutor {
 public:
  explicit ServerExecutor(serve::InferServer& server) : server_(server) {}
  bool loaded(const core::Multihash& service_id) const override;
  Status load(const core::Multihash& service_id, const ise::ServiceDescriptor& d,
              const std::filesystem::path& package_dir) override;
  void unload(const core::Multihash& service_id) override;

 private:
  serve::InferServer& server_;
};

}  // namespace idn::node
