// idn bench content: model distribution on loopback, in one run — the time to fetch a package of
// --size-mib from 1 provider vs from --providers providers (found through the DHT, fetched over
// Bitswap, every block verified and stored), then findProviders latency in a --dht-nodes DHT.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "cli.h"
#include "node/node.h"
#include "node/node_thread.h"
#include "routing/dht_routing.h"
#include "store/bitswap.h"
#include "store/blockstore.h"
#include "store/importer.h"

namespace idn::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct ContentBenchArgs {
  size_t size_mib = 50;
  size_t providers = 3;
  size_t trials = 3;
  RoutingBenchArgs routing;
  std::string out = "bench/out/content.csv";
};

Result<std::unique_ptr<node::NodeThread>> start(const std::vector<core::Multiaddr>& bootstrap) {
  return node::NodeThread::start(node::loopback_config(bootstrap));
}

int run_content_bench(const ContentBenchArgs& a) {
  if (a.size_mib < 1 || a.size_mib > 4096)
    return report(Status::invalid_argument("--size-mib must be 1..4096"));
  if (a.providers < 2 || a.providers > 16)
    return report(Status::invalid_argument("--providers must be 2..16"));
  if (a.trials < 1) return report(Status::invalid_argument("--trials must be >= 1"));
  spdlog::set_level(spdlog::level::warn);

  // The package: pseudo-random bytes (incompressible, reproducible).
  fs::path tmp = fs::temp_directory_path() / ("idn-bench-content-" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  fs::path file = tmp / "weights.bin";
  {
    std::mt19937_64 rng(42);
    std::vector<uint64_t> buf(1 << 17);  // 1 MiB
    std::ofstream out(file, std::ios::binary);
    for (size_t m = 0; m < a.size_mib; ++m) {
      for (auto& w : buf) w = rng();
      out.write(reinterpret_cast<const char*>(buf.data()), buf.size() * sizeof(uint64_t));
    }
    if (!out) return report(Status::io_error("cannot write " + file.string()));
  }

  std::vector<std::unique_ptr<node::NodeThread>> providers;
  std::vector<core::Multiaddr> boot;
  std::optional<core::Cid> root;
  // Everyone joins the DHT first: a provider record needs other nodes to land on.
  for (size_t i = 0; i < a.providers; ++i) {
    auto p = start(boot);
    if (!p.ok()) return report(p.status().with_context("provider " + std::to_string(i)));
    if (boot.empty()) boot = (**p)->listen_addrs();
    providers.push_back(std::move(*p));
  }
  for (auto& p : providers) {
    node::Node& n = **p;
    auto imported = n.block_on([&]() -> p2p::awaitable<Result<store::ImportResult>> {
      auto r = store::import_path(file, n.blockstore());
      if (r.ok()) {
        Status pinned = n.blockstore().pin(r->cid);
        if (!pinned.is_ok()) co_return pinned;
      }
      co_return r;
    });
    if (!imported.ok()) return report(imported.status());
    root = imported->cid;
    Status s = routing::provide_sync(*n.routing(), root->hash(), std::chrono::seconds(20));
    if (!s.is_ok()) return report(s.with_context("provide"));
  }
  std::fprintf(stderr, "%zu providers hold %s (%zu MiB)\n", a.providers, root->to_string().c_str(),
               a.size_mib);

  fs::path out(a.out);
  std::error_code ec;
  if (out.has_parent_path()) fs::create_directories(out.parent_path(), ec);
  std::ofstream csv(out);
  if (!csv) return report(Status::io_error("cannot write " + a.out));
  csv << "trial,providers,seconds,mib_per_s,blocks,bad_blocks\n";
  std::vector<double> t1, tn;
  for (size_t trial = 0; trial < a.trials; ++trial) {
    for (size_t k : {size_t{1}, a.providers}) {
      auto c = start(boot);
      if (!c.ok()) return report(c.status().with_context("client"));
      node::Node& n = ***c;
      auto peers = n.block_on([&] { return n.models().providers(root->hash(), k, {}); });
      if (!peers.ok()) return report(peers.status());
      if (peers->size() < k) {
        return report(Status::not_found("the DHT lists only " + std::to_string(peers->size()) +
                                        " providers of the package"));
      }
      auto t0 = Clock::now();
      Status st = n.block_on([&] { return n.bitswap().fetch_dag(*root, *peers); });
      double s = std::chrono::duration<double>(Clock::now() - t0).count();
      if (!st.is_ok()) return report(st.with_context("fetch"));
      auto stats = n.block_on(
          [&]() -> p2p::awaitable<store::bitswap::BitswapStats> { co_return n.bitswap().stats(); });
      (k == 1 ? t1 : tn).push_back(s);
      csv << trial << ',' << k << ',' << s << ',' << a.size_mib / s << ',' << stats.blocks_received
          << ',' << stats.bad_blocks << '\n';
      std::fprintf(stderr, "trial %zu: %zu provider(s) %.3f s\n", trial, k, s);
    }
  }
  providers.clear();
  fs::remove_all(tmp, ec);

  double m1 = percentile(t1, 0.5), mn = percentile(tn, 0.5);
  std::printf("fetch of a %zu MiB package over Bitswap on 127.0.0.1 (median of %zu trials)\n",
              a.size_mib, a.trials);
  std::printf("%-10s %-12s %-10s\n", "providers", "seconds", "MiB/s");
  std::printf("%-10d %-12.3f %-10.1f\n", 1, m1, a.size_mib / m1);
  std::printf("%-10zu %-12.3f %-10.1f\n", a.providers, mn, a.size_mib / mn);
  std::printf("ratio (1 provider / %zu providers): %.2fx\n", a.providers, m1 / mn);
  std::printf("per-trial rows: %s\n\n", a.out.c_str());
  return run_routing_bench(a.routing);
}

}  // namespace

void register_bench_content(CLI::App& bench) {
  auto a = std::make_shared<ContentBenchArgs>();
  auto* b = bench.add_subcommand(
      "content",
      "Model distribution: fetch time of a package from 1 vs N providers found in the DHT, "
      "then findProviders latency in a loopback DHT");
  b->add_option("--size-mib", a->size_mib, "Package size")->capture_default_str();
  b->add_option("--providers", a->providers, "Providers in the multi-provider case")
      ->capture_default_str();
  b->add_option("--trials", a->trials, "Fetches timed per case")->capture_default_str();
  b->add_option("--dht-nodes", a->routing.nodes, "Nodes of the findProviders DHT")
      ->capture_default_str();
  b->add_option("--queries", a->routing.queries, "findProviders calls to time")
      ->capture_default_str();
  b->add_option("--out", a->out, "CSV of the fetch trials")->capture_default_str();
  b->callback([a] { run_or_exit(run_content_bench(*a)); });
}

}  // namespace idn::cli
