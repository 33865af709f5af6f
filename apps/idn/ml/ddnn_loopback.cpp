#include "ddnn_loopback.h"

#include <algorithm>

#include "demo_util.h"
#include "node/node.h"

namespace idn::cli {

Result<std::unique_ptr<LoopbackDdnn>> LoopbackDdnn::start(
    const std::filesystem::path& package, std::shared_ptr<const data::MultiViewDataset> replay,
    const OnHosted& on_hosted) {
  auto info = serve::read_ddnn_info(package);
  if (!info.ok()) return info.status();
  if (info->devices != 6 || info->letter != 'c')
    return Status::invalid_argument(
        "a loopback deployment takes a six-device configuration (c) DDNN; " + package.string() +
        " is not one");
  std::unique_ptr<LoopbackDdnn> d(new LoopbackDdnn);
  std::vector<core::Multiaddr> boot;
  for (int i = 0; i <= 6; ++i) {
    auto p = node::NodeThread::start(node::loopback_config(boot));
    if (!p.ok()) return p.status();
    for (const auto& addr : (**p)->listen_addrs()) boot.push_back(addr);
    d->peers_.push_back(std::move(*p));
  }
  for (int i = 0; i <= 6; ++i) {
    node::Node& n = **d->peers_[static_cast<size_t>(i)];
    const std::string section = i < 6 ? "device" + std::to_string(i) : "cloud";
    auto hosted = n.block_on([&] { return node::host_ddnn_section(n, package, section, replay); });
    if (!hosted.ok()) return hosted.status().with_context(section);
    if (on_hosted)
      on_hosted(section, n, i < 6 ? hosted->devices[static_cast<size_t>(i)] : hosted->cloud);
  }
  auto agg = node::NodeThread::start(node::loopback_config(boot));
  if (!agg.ok()) return agg.status();
  d->aggregator_ = std::move(*agg);
  node::Node& a = d->aggregator();
  auto services = a.block_on([&]() -> p2p::awaitable<Result<node::DdnnServices>> {
    co_return node::store_ddnn(a, package);
  });
  if (!services.ok()) return services.status();
  d->services_ = std::move(*services);
  return d;
}

LoopbackDdnn::~LoopbackDdnn() {
  if (aggregator_) aggregator_->stop();
  stop_newest_first(peers_);
}

Result<std::shared_ptr<client::DdnnSession>> LoopbackDdnn::session(
    const node::DdnnSessionOptions& o) {
  node::Node& a = aggregator();
  return a.block_on([&]() -> p2p::awaitable<Result<std::shared_ptr<client::DdnnSession>>> {
    co_return node::ddnn_session(a, *services_, o);
  });
}

Result<client::DdnnAnswer> LoopbackDdnn::infer(client::DdnnSession& session, uint64_t i) {
  return aggregator().block_on([&] { return session.infer(i); });
}

void LoopbackDdnn::stop_device(int d) {
  peers_.at(static_cast<size_t>(d))->stop();
}

const identity::PeerId& LoopbackDdnn::device_id(int d) const {
  return (*peers_.at(static_cast<size_t>(d)))->id();
}

void DdnnWireTally::add(const client::DdnnAnswer& a, int label) {
  ++answered;
  const bool ok = a.predicted == label;
  const bool at_local = a.exit == client::DdnnAnswer::Exit::kLocal;
  correct += ok;
  local += at_local;
  local_correct += at_local && ok;
  scores += a.device_scores_bytes;
  features += a.device_features_bytes;
  cloud += a.cloud_bytes;
  payload += a.payload_bytes;
  raw += a.raw_bytes;
  present += static_cast<uint64_t>(__builtin_popcountll(a.present));
  latency_ms.push_back(static_cast<double>(a.latency.count()) / 1000.0);
}

double DdnnWireTally::wire_per_sample() const {
  return static_cast<double>(scores + features + cloud) / std::max(answered, 1);
}

double DdnnWireTally::raw_per_sample() const {
  return static_cast<double>(raw) / std::max(answered, 1);
}

}  // namespace idn::cli
