#include "node/ddnn.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "ise/model_host.h"
#include "node/model_host.h"
#include "serve/infer_server.h"
#include "store/blockstore.h"
#include "store/importer.h"

namespace idn::node {
namespace fs = std::filesystem;

Result<DdnnServices> store_ddnn(Node& node, const fs::path& dir) {
  return store_ddnn(node.blockstore(), dir);
}

Result<DdnnServices> store_ddnn(store::Blockstore& store, const fs::path& dir) {
  IDN_ASSIGN_OR_RETURN(auto info, serve::read_ddnn_info(dir));
  std::vector<std::string> files = {"ddnn.json", "weights.safetensors"};
  for (int64_t d = 0; d < info.devices; ++d) files.push_back(fmt::format("device{}.idnb", d));
  auto imported = store::import_directory_entries(dir, files, store);
  if (!imported.ok()) return imported.status().with_context("import " + dir.string());
  IDN_RETURN_IF_ERROR(store.pin(imported->cid));
  auto put = [&](const std::string& section) -> Result<core::Multihash> {
    IDN_ASSIGN_OR_RETURN(auto desc,
                         serve::ddnn_section_descriptor(info, section, imported->cid.to_string()));
    IDN_ASSIGN_OR_RETURN(std::string text, ise::canonical_json(desc));
    IDN_ASSIGN_OR_RETURN(core::Multihash id, ise::service_id(desc));
    const core::Cid dcid = ModelHost::descriptor_cid(id);
    IDN_RETURN_IF_ERROR(store.put_block(dcid, as_bytes(text)));
    IDN_RETURN_IF_ERROR(store.pin(dcid));
    return id;
  };
  std::vector<core::Multihash> devices;
  for (int64_t d = 0; d < info.devices; ++d) {
    IDN_ASSIGN_OR_RETURN(auto id, put(fmt::format("device{}", d)));
    devices.push_back(id);
  }
  IDN_ASSIGN_OR_RETURN(auto cloud, put("cloud"));
  return DdnnServices{std::move(info), imported->cid, std::move(devices), std::move(cloud)};
}

p2p::awaitable<Result<DdnnServices>> host_ddnn_section(
    Node& node, fs::path dir, std::string section,
    std::shared_ptr<const data::MultiViewDataset> camera) {
  auto s = store_ddnn(node, dir);
  if (!s.ok()) co_return s.status();
  Result<std::shared_ptr<serve::Handler>> handler =
      Status::invalid_argument("no DDNN section '" + section + "' (expected device<d> or cloud)");
  core::Multihash id = s->cloud;
  if (section == "cloud") {
    handler = serve::ddnn_cloud_handler(dir);
  } else {
    for (int64_t d = 0; d < s->info.devices; ++d)
      if (section == fmt::format("device{}", d)) {
        handler = serve::ddnn_device_handler(dir, d, camera);
        id = s->devices[static_cast<size_t>(d)];
      }
  }
  if (!handler.ok()) co_return handler.status();
  if (Status st = node.server().add_handler(id, *handler); !st.is_ok()) co_return st;
  if (node.routing()) {
    DhtServiceRouting dht(node.io().get_executor(), *node.routing());
    for (const auto& key : {id, s->package.hash()})
      if (Status st = co_await dht.provide(key); !st.is_ok())
        spdlog::warn("providing {} in the DHT: {}", key.to_base58(), st.to_string());
  }
  spdlog::info("hosting DDNN section {} of {} as {}", section, s->info.name,
               ise::service_id_text(id));
  co_return std::move(*s);
}

Result<std::shared_ptr<client::DdnnSession>> ddnn_session(Node& node, const DdnnServices& s,
                                                          const DdnnSessionOptions& o) {
  client::DdnnPlan plan;
  IDN_ASSIGN_OR_RETURN(plan.local, client::parse_score_aggregation(s.info.local));
  plan.threshold = o.threshold.value_or(s.info.local_threshold);
  plan.classes = static_cast<size_t>(s.info.classes);
  plan.view_shape = {s.info.channels, s.info.size, s.info.size};
  auto options = [&](std::chrono::milliseconds deadline, std::vector<int64_t> shape,
                     core::DType dtype) {
    client::SessionOptions so;
    so.fanout = 1;
    so.max_attempts = 2;
    so.deadline = deadline;
    so.inactivity_timeout = deadline;
    so.output_shape = std::move(shape);
    so.output_dtype = dtype;
    // The default exit rule: a section has one exit, and the default costs the fewest bytes.
    so.on_complete = [](const core::Tensor&, const client::Summary&) {};  // no challenges
    return so;
  };
  std::vector<std::shared_ptr<client::Session>> scores, features;
  for (const auto& id : s.devices) {
    scores.push_back(
        node.session(id, options(o.device_deadline, {s.info.classes}, core::DType::kF32)));
    features.push_back(
        node.session(id, options(o.device_deadline, {s.info.feature_bytes()}, core::DType::kU8)));
  }
  auto cloud =
      node.session(s.cloud, options(o.cloud_deadline, {s.info.classes}, core::DType::kF32));
  return std::make_shared<client::DdnnSession>(node.io().get_executor(), std::move(scores),
                                               std::move(features), std::move(cloud), plan);
}

}  // namespace idn::node
