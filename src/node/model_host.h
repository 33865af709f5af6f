// The node's model services (dissertation §7.4, the blog's initModel): publishing a model
// package as IPFS content plus a service descriptor, and hosting a service by ID — find its
// providers in the DHT, fetch descriptor and package over Bitswap (every block verified),
// check the model hash, load it into the inference server, announce ourselves as a provider.
// The set of hosted services is kept in data_dir/hosted and re-hosted after a restart.
//
// The descriptor travels as one raw IPFS block: a service ID is the sha2-256 multihash of the
// descriptor's canonical JSON, which makes CIDv1(raw, service ID) its content address.
// Runs on the node's io thread.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/cid.h"
#include "core/multihash.h"
#include "identity/peer_id.h"
#include "ise/service_descriptor.h"
#include "p2p/host.h"

namespace idn::routing {
class DhtRouting;
}
namespace idn::store {
class Blockstore;
namespace bitswap {
class Bitswap;
}
}  // namespace idn::store
namespace idn::serve {
class InferServer;
}

namespace idn::node {

struct Published {
  core::Cid model_cid;
  core::Multihash service_id;
  ise::ServiceDescriptor descriptor;
  // Entries of the package directory that were not published (kept local), e.g. "checkpoint/".
  std::vector<std::string> left_out;
};

struct HostedService {
  core::Multihash service_id;
  ise::ServiceDescriptor descriptor;
  std::filesystem::path package_dir;
};

// The offline half of publishing: checks the package, imports and pins what serving needs
// (model::serving_files(); the rest is listed in Published::left_out) and its descriptor
// block in `store`. Errors: the package's own (InvalidArgument, Corruption, NotFound), IOError.
Result<Published> store_publication(store::Blockstore& store,
                                    const std::filesystem::path& model_dir,
                                    std::string description = {});
// Adds `id` to data_dir/hosted, the services a node on that data_dir hosts when it starts.
Status add_hosted(const std::filesystem::path& data_dir, const core::Multihash& id);

class ModelHost {
 public:
  struct Parts {
    p2p::asio::any_io_executor io;
    p2p::Host& host;
    routing::DhtRouting* routing;  // null: no DHT (hosting still works from local content)
    store::Blockstore& store;
    store::bitswap::Bitswap& bitswap;
    serve::InferServer& server;
    std::filesystem::path data_dir;
    // Called on the io thread after the set of hosted services changed (e.g. to update the
    // have list peers see).
    std::function<void()> on_hosted_changed = {};
  };
  explicit ModelHost(Parts parts);

  // Checks the package, stores and pins it and its descriptor, hosts the service and provides
  // it. Errors: the package's own (InvalidArgument, Corruption, NotFound), IOError.
  p2p::awaitable<Result<Published>> publish(std::filesystem::path model_dir,
                                            std::string description);
  // initModel. Idempotent. `pin`: the operator asked for it, so it is recorded in
  // data_dir/hosted (re-hosted at every start, never swapped out by the ISE); otherwise the ISE
  // chose it and may tear it down. Errors: NotFound (no provider, or a provider lacking blocks),
  // Corruption (descriptor not canonical, model hash mismatch), Timeout, engine load errors.
  p2p::awaitable<Status> init_model(core::Multihash service_id, bool pin = true);
  // The ISE's teardown: withdraws our provider record for the service, unloads its engines and
  // updates the have list; the blocks stay cached (and provided). Pinned services are refused
  // (InvalidArgument); one not hosted is a no-op.
  p2p::awaitable<Status> teardown(core::Multihash service_id);
  // Re-hosts every service in data_dir/hosted from the local store (called at start).
  p2p::awaitable<Status> restore();

  // Up to `n` providers of `service` other than us and `exclude`, connected (dialled from
  // their DHT addresses), nearest first. Errors: NotFound (none reachable), Unavailable (no DHT).
  p2p::awaitable<Result<std::vector<identity::PeerId>>> providers(
      core::Multihash service, size_t n, std::vector<identity::PeerId> exclude);

  bool hosts(const core::Multihash& service_id) const;
  // Hosted because the operator asked (publish, `host = [...]`, data_dir/hosted).
  bool pinned(const core::Multihash& service_id) const { return pinned_.contains(service_id); }
  std::vector<HostedService> hosted() const;
  // The descriptor of a service whose descriptor block is in the local store.
  Result<ise::ServiceDescriptor> local_descriptor(const core::Multihash& service_id);

  // CIDv1(raw, service_id): where the descriptor's bytes live.
  static core::Cid descriptor_cid(const core::Multihash& service_id);

 private:
  p2p::awaitable<Status> host_local(const core::Multihash& id, const ise::ServiceDescriptor& d,
                                    bool pin);
  p2p::awaitable<Status> fetch(const core::Cid& root, const core::Multihash& provider_key,
                               std::vector<identity::PeerId>& peers);
  p2p::awaitable<void> announce(const core::Multihash& key);

  Parts p_;
  std::unordered_map<core::Multihash, HostedService> hosted_;
  std::unordered_set<core::Multihash> pinned_;
};

}  // namespace idn::node
