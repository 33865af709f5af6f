// DDNN deployed on IDN peers (issue 17, dissertation §4.4): a package's sections published as
// services (motif "ddnn", one service ID per section, all naming the package's CID), a device
// section hosted on the peer that owns its camera, the cloud section on another, and the local
// aggregator's session on the requesting node. The descriptor has no field for a section's
// role: ddnn.json (in the package, fetched by CID) says it, and the descriptor's name ends in
// ".device<d>" or ".cloud".
// Threading: every function runs on the node's io thread (like Node::session).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "client/ddnn_session.h"
#include "core/cid.h"
#include "core/multihash.h"
#include "data/multiview.h"
#include "node/node.h"
#include "serve/ddnn_sections.h"

namespace idn::node {

struct DdnnServices {
  serve::DdnnInfo info;
  core::Cid package;                     // root CID of the package's files
  std::vector<core::Multihash> devices;  // device d's service ID
  core::Multihash cloud;
};

// Imports the package's serving files (ddnn.json, weights.safetensors, device<d>.idnb) into the
// node's store and pins them, stores and pins every section's descriptor block, and returns the
// service IDs. Offline: nothing is hosted or announced. Errors: read_ddnn_info's, IOError.
Result<DdnnServices> store_ddnn(store::Blockstore& store, const std::filesystem::path& package_dir);
// The same in the node's own store.
Result<DdnnServices> store_ddnn(Node& node, const std::filesystem::path& package_dir);

// Hosts one section here: "device<d>" (on `camera`, the replay this peer owns) or "cloud",
// through the node's InferServer (serve::add_handler), and provides its service ID and the
// package CID in the DHT. Returns the package's services.
p2p::awaitable<Result<DdnnServices>> host_ddnn_section(
    Node& node, std::filesystem::path package_dir, std::string section,
    std::shared_ptr<const data::MultiViewDataset> camera = nullptr);

struct DdnnSessionOptions {
  std::chrono::milliseconds device_deadline{500};  // a device silent this long is absent
  std::chrono::milliseconds cloud_deadline{2000};
  std::optional<double> threshold;  // the local exit's T (default: the package's)
};
// The local aggregator's session over the package's services, with sessions from
// Node::session (DHT providers, ComputeSwap). DDNN requests are not challenged: their input is
// a frame only the device has. Errors: Unsupported (CC local aggregation).
Result<std::shared_ptr<client::DdnnSession>> ddnn_session(Node& node, const DdnnServices& s,
                                                          const DdnnSessionOptions& o = {});

}  // namespace idn::node
