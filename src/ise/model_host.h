// A node's model services (dissertation §7.4, the blog's initModel): publishing a model
// package as IPFS content plus a service descriptor, and hosting a service by ID — find its
// providers, fetch descriptor and package over Bitswap (every block verified), check the model
// hash, hand the package to the executor, announce ourselves as a provider. The set of services
// the operator asked for is kept in data_dir/hosted and re-hosted after a restart.
//
// The descriptor travels as one raw IPFS block: a service ID is the sha2-256 multihash of the
// descriptor's canonical JSON, which makes CIDv1(raw, service ID) its content address.
//
// Routing and execution come in through ServiceRouting and ModelExecutor (the node fills them
// with the DHT and the inference server), so this layer builds without LibTorch.
// Threading: ModelHost and both interfaces are used on the node's io thread only.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/cid.h"
#include "core/multihash.h"
#include "identity/peer_id.h"
#include "ise/service_descriptor.h"
#include "p2p/host.h"
#include "routing/routing.h"

namespace idn::store {
class Blockstore;
namespace bitswap {
class Bitswap;
}
}  // namespace idn::store

namespace idn::ise {

// The part of §7.3 routing a model host needs. Each call resumes on the io thread it was made
// from.
class ServiceRouting {
 public:
  virtual ~ServiceRouting() = default;
  // Announces this node as a provider of `key` (a service ID or CID) and keeps it announced.
  virtual p2p::awaitable<Status> provide(core::Multihash key) = 0;
  // Stops announcing `key`.
  virtual p2p::awaitable<Status> withdraw(core::Multihash key) = 0;
  // Up to `n` providers of `key`, nearest first. Errors: NotFound, Timeout.
  virtual p2p::awaitable<Result<std::vector<routing::PeerInfo>>> find_providers(core::Multihash key,
                                                                                size_t n) = 0;
};

// Runs the services a node hosts (the node: serve::InferServer with the engine).
class ModelExecutor {
 public:
  virtual ~ModelExecutor() = default;
  virtual bool loaded(const core::Multihash& service_id) const = 0;
  // Loads the package in `package_dir` (model.json checked against `d`) as `service_id`.
  // Errors: the loader's (InvalidArgument, Corruption, IOError).
  virtual Status load(const core::Multihash& service_id, const ServiceDescriptor& d,
                      const std::filesystem::path& package_dir) = 0;
  // Stops serving `service_id` (requests in flight finish); a no-op when not loaded.
  virtual void unload(const core::Multihash& service_id) = 0;
};

struct Published {
  core::Cid model_cid;
  core::Multihash service_id;
  ServiceDescriptor descriptor;
  // Entries of the package directory that were not published (kept local), e.g. "checkpoint/".
  std::vector<std::string> left_out;
};

struct HostedService {
  core::Multihash service_id;
  ServiceDescriptor descriptor;
  std::filesystem::path package_dir;
};

// The offline half of publishing: checks the package, imports and pins what serving needs
// (model::serving_files(); the rest is listed in Published::left_out) and its descriptor
// block in `store`. The descriptor carries the package's cost (model_cost()) and, when given,
// the CID of the package's ONNX export (already in `store`). Errors: the package's own
// (InvalidArgument, Corruption, NotFound), IOError.
Result<Published> store_publication(store::Blockstore& store,
                                    const std::filesystem::path& model_dir,
                                    std::string description = {},
                                    std::optional<core::Cid> onnx_cid = std::nullopt);
// Adds `id` to data_dir/hosted, the services a node on that data_dir hosts when it starts.
Status add_hosted(const std::filesystem::path& data_dir, const core::Multihash& id);

class ModelHost {
 public:
  struct Parts {
    p2p::asio::any_io_executor io;
    p2p::Host& host;
    ServiceRouting* routing;  // null: no DHT (hosting still works from local content)
    store::Blockstore& store;
    store::bitswap::Bitswap& bitswap;
    ModelExecutor& executor;
    std::filesystem::path data_dir;
    // Called on the io thread after the set of hosted services changed (e.g. to update the
    // have list peers see).
    std::function<void()> on_hosted_changed = {};
  };
  explicit ModelHost(Parts parts);
  ModelHost(const ModelHost&) = delete;
  ModelHost& operator=(const ModelHost&) = delete;

  // Checks the package, stores and pins it and its descriptor, hosts the service and provides
  // it. `onnx_dir`: the package's ONNX export (onnx::export_onnx's directory: every regular
  // file in it), stored, pinned, provided and named in the descriptor, so browsers can serve
  // the service. Errors: the package's own (InvalidArgument, Corruption, NotFound), IOError.
  p2p::awaitable<Result<Published>> publish(
      std::filesystem::path model_dir, std::string description,
      std::optional<std::filesystem::path> onnx_dir = std::nullopt);
  // initModel. Idempotent. `pin`: the operator asked for it, so it is recorded in
  // data_dir/hosted (re-hosted at every start, never swapped out by the ISE); otherwise the ISE
  // chose it and may tear it down. A descriptor's ONNX form (onnx.cid) is fetched, pinned and
  // provided too, so any provider hands it to a browser; serving does not need it, so failing
  // to fetch it only warns. Errors: NotFound (no provider, or a provider lacking blocks),
  // Corruption (descriptor not canonical, model hash mismatch), Timeout, executor load errors.
  p2p::awaitable<Status> init_model(core::Multihash service_id, bool pin = true);
  // The ISE's teardown: withdraws our provider record for the service, unloads it and updates
  // the have list; the blocks stay cached (and provided). Pinned services are refused
  // (InvalidArgument); one not hosted is a no-op.
  p2p::awaitable<Status> teardown(core::Multihash service_id);
  // Re-hosts every service in data_dir/hosted from the local store (called at start).
  p2p::awaitable<Status> restore();

  // The descriptor of `service_id`: from the local store, else fetched (one block) from its
  // providers and kept. Lets the ISE read a service's cost before it hosts it. Errors: as
  // init_model's for the descriptor.
  p2p::awaitable<Result<ServiceDescriptor>> descriptor(core::Multihash service_id);

  // Up to `n` providers of `service` other than us and `exclude`, connected (dialled from
  // their DHT addresses), nearest first. Errors: NotFound (none reachable), Unavailable (no DHT).
  p2p::awaitable<Result<std::vector<identity::PeerId>>> providers(
      core::Multihash service, size_t n, std::vector<identity::PeerId> exclude);

  bool hosts(const core::Multihash& service_id) const;
  // Hosted because the operator asked (publish, `host = [...]`, data_dir/hosted).
  bool pinned(const core::Multihash& service_id) const { return pinned_.contains(service_id); }
  std::vector<HostedService> hosted() const;
  // The descriptor of a service whose descriptor block is in the local store.
  Result<ServiceDescriptor> local_descriptor(const core::Multihash& service_id);

  // Stores a descriptor a peer sent (untrusted JSON text, any formatting) in canonical form
  // under descriptor_cid(its service ID), unpinned (init_model pins it if the service is then
  // hosted), so init_model finds it here. Returns the service ID. Errors: parse_descriptor's
  // (InvalidArgument, Corruption), the store's.
  Result<core::Multihash> store_descriptor(std::string_view text);

  // CIDv1(raw, service_id): where the descriptor's bytes live.
  static core::Cid descriptor_cid(const core::Multihash& service_id);

 private:
  p2p::awaitable<Result<ServiceDescriptor>> fetch_descriptor(const core::Multihash& id,
                                                             std::vector<identity::PeerId>& peers);
  p2p::awaitable<Status> host_local(const core::Multihash& id, const ServiceDescriptor& d,
                                    bool pin);
  p2p::awaitable<Status> fetch(const core::Cid& root, const core::Multihash& provider_key,
                               std::vector<identity::PeerId>& peers);
  p2p::awaitable<void> announce(const core::Multihash& key);
  // Fetches (when missing), pins and provides the ONNX directory a descriptor names.
  p2p::awaitable<void> host_onnx(const std::string& cid_text, const core::Multihash& id,
                                 std::vector<identity::PeerId>& peers);

  Parts p_;
  std::unordered_map<core::Multihash, HostedService> hosted_;
  std::unordered_set<core::Multihash> pinned_;
};

}  // namespace idn::ise
