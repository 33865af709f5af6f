#include "ise/model_host.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <fstream>
#include <sstream>

#include "model/file_io.h"
#include "model/package.h"
#include "store/bitswap.h"
#include "store/blockstore.h"
#include "store/exporter.h"
#include "store/importer.h"

namespace idn::ise {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using p2p::awaitable;

namespace {

// Providers asked in parallel for one fetch: enough to survive one lying or vanished peer and
// to spread the load, few enough that a lookup does not dial half the network.
constexpr size_t kFetchProviders = 4;

Result<std::string> read_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return Status::io_error(fmt::format("cannot read {}", file.string()));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

ModelHost::ModelHost(Parts parts) : p_(std::move(parts)) {}

core::Cid ModelHost::descriptor_cid(const core::Multihash& service_id) {
  return core::Cid::v1(core::Multicodec::kRaw, service_id);
}

bool ModelHost::hosts(const core::Multihash& id) const {
  return hosted_.contains(id);
}

std::vector<HostedService> ModelHost::hosted() const {
  std::vector<HostedService> out;
  for (const auto& [id, h] : hosted_) out.push_back(h);
  return out;
}

Result<ServiceDescriptor> ModelHost::local_descriptor(const core::Multihash& id) {
  IDN_ASSIGN_OR_RETURN(Bytes block, p_.store.get_block(descriptor_cid(id)));
  std::string_view text(reinterpret_cast<const char*>(block.data()), block.size());
  if (!matches_service_id(text, id)) {
    return Status::corruption(
        fmt::format("descriptor of service {} is not in canonical form", service_id_text(id)));
  }
  return parse_descriptor(text);
}

Result<core::Multihash> ModelHost::store_descriptor(std::string_view text) {
  IDN_ASSIGN_OR_RETURN(ServiceDescriptor d, parse_descriptor(text));
  IDN_ASSIGN_OR_RETURN(std::string canonical, canonical_json(d));
  IDN_ASSIGN_OR_RETURN(core::Multihash id, service_id(d));
  core::Cid dcid = descriptor_cid(id);
  if (!p_.store.has(dcid)) IDN_RETURN_IF_ERROR(p_.store.put_block(dcid, as_bytes(canonical)));
  return id;
}

Result<Published> store_publication(store::Blockstore& store, const fs::path& model_dir,
                                    std::string description, std::optional<core::Cid> onnx_cid) {
  auto pkg = model::load_package(model_dir);
  if (!pkg.ok()) return pkg.status().with_context(model_dir.string());
  // Only what serving needs travels: checkpoints and other training leftovers stay local.
  IDN_ASSIGN_OR_RETURN(auto left_out, model::non_serving_entries(model_dir));
  auto imported = store::import_directory_entries(model_dir, model::serving_files(), store);
  if (!imported.ok()) return imported.status().with_context("import " + model_dir.string());
  IDN_RETURN_IF_ERROR(store.pin(imported->cid));
  if (description.empty()) description = fmt::format("{} model", pkg->spec.name);
  IDN_ASSIGN_OR_RETURN(auto desc,
                       descriptor_from_model(pkg->spec, imported->cid.to_string(), description));
  if (onnx_cid) desc.onnx_cid = onnx_cid->to_string();
  IDN_ASSIGN_OR_RETURN(std::string text, canonical_json(desc));
  IDN_ASSIGN_OR_RETURN(core::Multihash id, service_id(desc));
  core::Cid dcid = ModelHost::descriptor_cid(id);
  IDN_RETURN_IF_ERROR(store.put_block(dcid, as_bytes(text)));
  IDN_RETURN_IF_ERROR(store.pin(dcid));
  return Published{imported->cid, id, std::move(desc), std::move(left_out)};
}

namespace {

Result<std::vector<std::string>> read_hosted(const fs::path& data_dir) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::exists(data_dir / "hosted", ec)) return out;
  IDN_ASSIGN_OR_RETURN(std::string text, read_text(data_dir / "hosted"));
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line))
    if (!line.empty()) out.push_back(line);
  return out;
}

Status write_hosted(const fs::path& data_dir, const std::vector<std::string>& ids) {
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  std::string text;
  for (const auto& id : ids) text += id + "\n";
  return model::write_file_atomic(data_dir / "hosted", as_bytes(text));
}

}  // namespace

Status add_hosted(const fs::path& data_dir, const core::Multihash& id) {
  IDN_ASSIGN_OR_RETURN(auto ids, read_hosted(data_dir));
  std::string text = service_id_text(id);
  if (std::find(ids.begin(), ids.end(), text) == ids.end()) ids.push_back(text);
  return write_hosted(data_dir, ids);
}

awaitable<Result<Published>> ModelHost::publish(fs::path model_dir, std::string description,
                                                std::optional<fs::path> onnx_dir) {
  std::optional<core::Cid> onnx_cid;
  if (onnx_dir) {
    std::vector<std::string> files;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(*onnx_dir, ec))
      if (e.is_regular_file()) files.push_back(e.path().filename().string());
    if (ec) co_return Status::io_error(fmt::format("{}: {}", onnx_dir->string(), ec.message()));
    std::sort(files.begin(), files.end());
    auto imported = store::import_directory_entries(*onnx_dir, files, p_.store);
    if (!imported.ok()) co_return imported.status().with_context("import " + onnx_dir->string());
    if (Status st = p_.store.pin(imported->cid); !st.is_ok()) co_return st;
    onnx_cid = imported->cid;
  }
  auto pub = store_publication(p_.store, model_dir, std::move(description), onnx_cid);
  if (!pub.ok()) co_return pub.status();
  Status hosted = co_await host_local(pub->service_id, pub->descriptor, true);
  if (!hosted.is_ok()) co_return hosted;
  co_await announce(pub->service_id);
  co_await announce(pub->model_cid.hash());
  if (onnx_cid) co_await announce(onnx_cid->hash());
  co_return std::move(*pub);
}

awaitable<Status> ModelHost::init_model(core::Multihash id, bool pin) {
  if (hosts(id)) {
    if (pin && !pinned_.contains(id)) {
      pinned_.insert(id);
      co_return add_hosted(p_.data_dir, id);
    }
    co_return Status::ok();
  }
  const std::string sid = service_id_text(id);
  std::vector<identity::PeerId> peers;
  core::Cid dcid = descriptor_cid(id);
  auto desc = co_await fetch_descriptor(id, peers);
  if (!desc.ok()) co_return desc.status();
  auto model_cid = core::Cid::parse(desc->model_cid);
  if (!model_cid.ok()) co_return model_cid.status().with_context("descriptor model.cid");
  // Pinning succeeds only when every block of the package is already here.
  if (!p_.store.pin(*model_cid).is_ok()) {
    // The descriptor's providers have the package; without them (the descriptor was here, e.g.
    // sent with an InitRequest for a service nobody provides yet) whoever provides the model.
    Status s = co_await fetch(*model_cid, peers.empty() ? model_cid->hash() : id, peers);
    if (!s.is_ok()) co_return s.with_context("model package of service " + sid);
    if (Status p = p_.store.pin(*model_cid); !p.is_ok()) co_return p;
  }
  if (Status p = p_.store.pin(dcid); !p.is_ok()) co_return p;
  Status hosted = co_await host_local(id, *desc, pin);
  if (!hosted.is_ok()) co_return hosted;
  co_await announce(id);
  co_await announce(model_cid->hash());
  if (desc->onnx_cid) co_await host_onnx(*desc->onnx_cid, id, peers);
  spdlog::info("hosting service {} ({})", sid, desc->name);
  co_return Status::ok();
}

awaitable<void> ModelHost::host_onnx(const std::string& cid_text, const core::Multihash& id,
                                     std::vector<identity::PeerId>& peers) {
  auto cid = core::Cid::parse(cid_text);  // validated with the descriptor
  if (!cid.ok()) co_return;
  // Pinning succeeds only when every block is already here.
  Status s = p_.store.pin(*cid);
  if (!s.is_ok()) {
    s = co_await fetch(*cid, id, peers);
    if (s.is_ok()) s = p_.store.pin(*cid);
  }
  if (!s.is_ok()) {
    spdlog::warn("ONNX form {} of service {} not fetched: {}", cid_text, service_id_text(id),
                 s.to_string());
    co_return;
  }
  co_await announce(cid->hash());
}

awaitable<Result<ServiceDescriptor>> ModelHost::descriptor(core::Multihash id) {
  std::vector<identity::PeerId> peers;
  co_return co_await fetch_descriptor(id, peers);
}

awaitable<Result<ServiceDescriptor>> ModelHost::fetch_descriptor(
    const core::Multihash& id, std::vector<identity::PeerId>& peers) {
  if (!p_.store.has(descriptor_cid(id))) {
    Status s = co_await fetch(descriptor_cid(id), id, peers);
    if (!s.is_ok()) co_return s.with_context("descriptor of service " + service_id_text(id));
  }
  co_return local_descriptor(id);
}

awaitable<Status> ModelHost::restore() {
  auto ids = read_hosted(p_.data_dir);
  if (!ids.ok()) co_return ids.status();
  Status first_error = Status::ok();
  for (const auto& text : *ids) {
    auto id = parse_service_id(text);
    if (!id.ok()) {
      spdlog::warn("{}: skipping bad service ID '{}'", (p_.data_dir / "hosted").string(), text);
      continue;
    }
    Status s = co_await init_model(*id);
    if (!s.is_ok()) {
      spdlog::warn("could not re-host service {}: {}", text, s.to_string());
      if (first_error.is_ok()) first_error = s;
    }
  }
  co_return first_error;
}

awaitable<Status> ModelHost::teardown(core::Multihash id) {
  if (!hosts(id)) co_return Status::ok();
  const std::string sid = service_id_text(id);
  if (pinned_.contains(id))
    co_return Status::invalid_argument("service " + sid + " is pinned by the operator");
  hosted_.erase(id);
  p_.executor.unload(id);
  if (p_.on_hosted_changed) p_.on_hosted_changed();
  if (p_.routing) {
    Status s = co_await p_.routing->withdraw(id);
    if (!s.is_ok()) spdlog::warn("withdraw {}: {}", sid, s.to_string());
  }
  spdlog::info("stopped hosting service {}", sid);
  co_return Status::ok();
}

awaitable<Status> ModelHost::host_local(const core::Multihash& id, const ServiceDescriptor& d,
                                        bool pin) {
  auto model_cid = core::Cid::parse(d.model_cid);
  if (!model_cid.ok()) co_return model_cid.status();
  fs::path dir = p_.data_dir / "models" / model_cid->to_string();
  std::error_code ec;
  if (!fs::exists(dir / "model.json", ec)) {
    // Export next to the final place and rename, so a crash never leaves half a package
    // where the next start would look for a whole one.
    fs::path tmp = dir;
    tmp += ".tmp";
    fs::remove_all(tmp, ec);
    fs::create_directories(dir.parent_path(), ec);
    if (Status s = store::export_to(p_.store, *model_cid, tmp); !s.is_ok()) co_return s;
    fs::remove_all(dir, ec);
    fs::rename(tmp, dir, ec);
    if (ec) co_return Status::io_error(fmt::format("rename {}: {}", tmp.string(), ec.message()));
  }
  auto model_json = read_text(dir / "model.json");
  if (!model_json.ok()) co_return model_json.status();
  if (model_hash_of(*model_json) != d.model_hash) {
    co_return Status::corruption(
        fmt::format("model.json of {} hashes to {}, the service descriptor says {}", d.model_cid,
                    model_hash_of(*model_json), d.model_hash));
  }
  if (!p_.executor.loaded(id)) {
    if (Status s = p_.executor.load(id, d, dir); !s.is_ok())
      co_return s.with_context("load " + dir.string());
  }
  bool added = !hosted_.contains(id);
  hosted_.insert_or_assign(id, HostedService{id, d, dir});
  if (added && p_.on_hosted_changed) p_.on_hosted_changed();
  if (!pin) co_return Status::ok();
  pinned_.insert(id);
  co_return add_hosted(p_.data_dir, id);
}

awaitable<void> ModelHost::announce(const core::Multihash& key) {
  if (!p_.routing) co_return;
  Status s = co_await p_.routing->provide(key);
  if (!s.is_ok()) spdlog::warn("provide {}: {}", service_id_text(key), s.to_string());
}

awaitable<Status> ModelHost::fetch(const core::Cid& root, const core::Multihash& provider_key,
                                   std::vector<identity::PeerId>& peers) {
  if (peers.empty()) {
    auto found = co_await providers(provider_key, kFetchProviders, {});
    if (!found.ok()) co_return found.status();
    peers = std::move(*found);
  }
  co_return co_await p_.bitswap.fetch_dag(root, peers);
}

awaitable<Result<std::vector<identity::PeerId>>> ModelHost::providers(
    core::Multihash service, size_t n, std::vector<identity::PeerId> exclude) {
  if (!p_.routing) co_return Status::unavailable("this node runs without a DHT");
  auto found = co_await p_.routing->find_providers(service, n + exclude.size() + 1);
  if (!found.ok()) co_return found.status();
  // Dial the candidates in parallel (a stale record's peer costs a dial timeout), then keep
  // the DHT's order: nearest first.
  struct Dials {
    explicit Dials(p2p::asio::any_io_executor ex) : done(std::move(ex)) {}
    std::vector<std::optional<identity::PeerId>> ok;
    size_t pending = 0;
    p2p::Signal done;
  };
  auto st = std::make_shared<Dials>(p_.io);
  std::vector<routing::PeerInfo> candidates;
  for (auto& info : *found) {
    if (info.id == p_.host.id()) continue;
    if (std::find(exclude.begin(), exclude.end(), info.id) != exclude.end()) continue;
    candidates.push_back(std::move(info));
  }
  st->ok.resize(candidates.size());
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (p_.host.is_connected(candidates[i].id)) {
      st->ok[i] = candidates[i].id;
      continue;
    }
    ++st->pending;
    asio::co_spawn(
        p_.io,
        [st, i, info = candidates[i], host = &p_.host]() -> awaitable<void> {
          for (const auto& a : info.addrs) {
            core::Multiaddr addr = a;
            if (!addr.peer_multihash()) {
              auto p2p = core::Multiaddr::parse("/p2p/" + info.id.to_string());
              if (!p2p.ok()) continue;
              addr = addr.encapsulate(*p2p);
            }
            auto r = co_await host->dial(addr);
            if (r.ok() && *r == info.id) {
              st->ok[i] = info.id;
              break;
            }
          }
          --st->pending;
          st->done.notify_all();
        },
        asio::detached);
  }
  while (st->pending > 0) co_await st->done.wait();
  std::vector<identity::PeerId> out;
  for (auto& p : st->ok) {
    if (p && out.size() < n) out.push_back(*p);
  }
  if (out.empty()) {
    co_return Status::not_found(fmt::format("no reachable provider of {} ({} found in the DHT)",
                                            service_id_text(service), found->size()));
  }
  co_return out;
}

}  // namespace idn::ise
