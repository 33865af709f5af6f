// idn providers SERVICE_ID: joins IDN's DHT (through --bootstrap, e.g. a running node's DHT
// port) with a throwaway identity and lists the peers that provide a service.
// idn bench routing: findProviders latency (median, p99) in an N-node loopback DHT.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cli.h"
#include "ise/service_descriptor.h"
#include "routing/dht_routing.h"

namespace idn::cli {
namespace {

using Ms = std::chrono::milliseconds;

struct ProvidersArgs {
  std::string service;
  std::vector<std::string> bootstrap;
  bool lan = false;
  size_t n = 20;
  double timeout_s = 20;
  std::string listen = "0.0.0.0";
};

int run_providers(const ProvidersArgs& a) {
  auto sid = ise::parse_service_id(a.service);
  if (!sid.ok()) return report(sid.status());
  if (a.bootstrap.empty() && !a.lan)
    return report(Status::invalid_argument(
        "no way into the DHT: pass --bootstrap HOST:PORT (a node's DHT UDP port) or --lan"));
  if (!(a.timeout_s > 0)) return report(Status::invalid_argument("--timeout must be > 0"));
  auto key = identity::KeyPair::generate();
  if (!key.ok()) return report(key.status());
  routing::RoutingConfig cfg;
  cfg.listen_address = a.listen;
  cfg.bootstrap = a.bootstrap;
  cfg.lan_discovery = a.lan;
  auto timeout = Ms(static_cast<int64_t>(a.timeout_s * 1000));
  auto r = routing::DhtRouting::start(std::move(*key), cfg);
  if (!r.ok()) return report(r.status());
  auto& dht = **r;
  if (Status s = dht.wait_connected(timeout); !s.is_ok()) return report(s);
  auto found = routing::find_providers_sync(dht, *sid, a.n, timeout);
  dht.shutdown(false);
  if (!found.ok()) return report(found.status());
  if (found->empty()) {
    std::printf("no providers of %s found\n", ise::service_id_text(*sid).c_str());
    return 3;
  }
  std::printf("%-54s %s\n", "PEER", "ADDRESSES");
  for (const auto& p : *found) {
    std::string addrs;
    for (const auto& m : p.addrs) addrs += (addrs.empty() ? "" : " ") + m.to_string();
    std::printf("%-54s %s\n", p.id.to_base58().c_str(), addrs.empty() ? "-" : addrs.c_str());
  }
  return 0;
}

}  // namespace

int run_routing_bench(const RoutingBenchArgs& a) {
  if (a.nodes < 2 || a.nodes > 200)
    return report(Status::invalid_argument("--nodes must be 2..200"));
  if (a.services < 1 || a.queries < 1 || a.providers_per_service < 1 ||
      a.providers_per_service > a.nodes)
    return report(
        Status::invalid_argument("--services and --queries must be >= 1, --providers 1..--nodes"));
  const auto op = Ms(20000);
  std::vector<std::unique_ptr<routing::DhtRouting>> net;
  std::mt19937_64 rng(a.seed);
  for (size_t i = 0; i < a.nodes; ++i) {
    routing::RoutingConfig cfg;
    cfg.listen_address = "127.0.0.1";
    if (!net.empty()) cfg.bootstrap.push_back(net.front()->endpoint());
    if (net.size() > 1) cfg.bootstrap.push_back(net[rng() % net.size()]->endpoint());
    auto key = identity::KeyPair::generate();
    if (!key.ok()) return report(key.status());
    auto r = routing::DhtRouting::start(std::move(*key), cfg);
    if (!r.ok()) return report(r.status());
    net.push_back(std::move(*r));
  }
  for (auto& n : net)
    if (Status s = n->wait_connected(op); !s.is_ok()) return report(s);
  std::vector<core::Multihash> keys;
  for (size_t s = 0; s < a.services; ++s) {
    keys.push_back(core::Multihash::sha2_256(as_bytes("bench service " + std::to_string(s))));
    for (size_t p = 0; p < a.providers_per_service; ++p) {
      auto& provider = *net[(s * 7 + p * 3 + 1) % net.size()];
      if (Status st = routing::provide_sync(provider, keys.back(), op); !st.is_ok())
        return report(st.with_context("provide"));
    }
  }
  std::filesystem::path out(a.out);
  std::error_code ec;
  if (out.has_parent_path()) std::filesystem::create_directories(out.parent_path(), ec);
  std::ofstream csv(out);
  if (!csv) return report(Status::io_error("cannot write " + a.out));
  csv << "query,node,service,providers_found,latency_ms\n";
  std::vector<double> lat;
  size_t complete = 0;
  for (size_t q = 0; q < a.queries; ++q) {
    size_t node = rng() % net.size(), svc = rng() % keys.size();
    auto t0 = std::chrono::steady_clock::now();
    auto r = routing::find_providers_sync(*net[node], keys[svc], a.providers_per_service, op);
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    size_t found = r.ok() ? r->size() : 0;
    if (found == a.providers_per_service) ++complete;
    lat.push_back(ms);
    csv << q << ',' << node << ',' << svc << ',' << found << ',' << ms << '\n';
  }
  for (auto& n : net) n->shutdown(false);
  std::printf("findProviders latency, %zu-node DHT on 127.0.0.1 (%zu services x %zu providers)\n",
              a.nodes, a.services, a.providers_per_service);
  std::printf("%-10s %-10s %-12s %-12s %-12s %-12s\n", "queries", "complete", "median_ms", "p90_ms",
              "p99_ms", "max_ms");
  std::printf("%-10zu %-10zu %-12.2f %-12.2f %-12.2f %-12.2f\n", lat.size(), complete,
              percentile(lat, 0.5), percentile(lat, 0.9), percentile(lat, 0.99),
              percentile(lat, 1.0));
  std::printf("per-query rows: %s\n", a.out.c_str());
  return complete == lat.size() ? 0 : 1;
}

namespace {

CLI::App* bench_parent(CLI::App& app) {
  for (auto* s : app.get_subcommands([](CLI::App* c) { return c->get_name() == "bench"; }))
    return s;
  auto* b = app.add_subcommand("bench", "Benchmarks: each prints a table and writes CSV");
  b->require_subcommand(1);
  return b;
}

}  // namespace

void register_routing(CLI::App& app) {
  auto pa = std::make_shared<ProvidersArgs>();
  auto* prov = app.add_subcommand("providers",
                                  "List the peers providing a service, found through IDN's DHT");
  prov->add_option("SERVICE_ID", pa->service, "Service ID (base58 'Qm...' or multibase)")
      ->required();
  prov->add_option("--bootstrap", pa->bootstrap,
                   "HOST:PORT of a DHT node to join through (a running node's DHT UDP port)");
  prov->add_flag("--lan", pa->lan, "Also discover DHT nodes on the local network");
  prov->add_option("-n,--max", pa->n, "Most providers to list")->check(CLI::Range(1, 1000));
  prov->add_option("--timeout", pa->timeout_s, "Seconds to wait for the DHT");
  prov->add_option("--listen", pa->listen, "IPv4 address to bind the DHT's UDP socket to");
  prov->callback([pa] { run_or_exit(run_providers(*pa)); });

  auto ba = std::make_shared<RoutingBenchArgs>();
  auto* b = bench_parent(app)->add_subcommand(
      "routing", "findProviders latency (median, p99) in a loopback DHT of --nodes nodes");
  b->add_option("--nodes", ba->nodes, "DHT nodes to start on 127.0.0.1");
  b->add_option("--services", ba->services, "Distinct services provided");
  b->add_option("--providers", ba->providers_per_service, "Providers per service");
  b->add_option("--queries", ba->queries, "findProviders calls to time");
  b->add_option("--seed", ba->seed, "Seed for picking querying nodes and services");
  b->add_option("--out", ba->out, "CSV of per-query latencies");
  b->callback([ba] { run_or_exit(run_routing_bench(*ba)); });
}

}  // namespace idn::cli
