// idn add|publish|fetch|cat|share: the content store from the command line. Content is
// ordinary IPFS UnixFS (CIDv1, raw leaves, 256 KiB chunks), kept in a local blockstore
// (--store, default $IDN_HOME/store or ~/.idn/store) and exchanged over Bitswap 1.2.0.
// Providers are given with --from, or found in IDN's DHT (--bootstrap a running node).
#include <utility>  // Boost 1.74 awaitable.hpp uses std::exchange without including it

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli.h"
#include "ise/service_descriptor.h"
#include "model/package.h"
#include "node/model_host.h"
#include "p2p/host.h"
#include "routing/dht_routing.h"
#include "store/bitswap.h"
#include "store/blockstore.h"
#include "store/exporter.h"
#include "store/importer.h"

namespace idn::cli {
namespace {

namespace fs = std::filesystem;
namespace asio = boost::asio;

std::string default_store() {
  return (fs::path(default_data_dir()) / "store").string();
}

struct StoreArgs {
  std::string store = default_store();
  uint64_t max_bytes = 0;
  Result<std::unique_ptr<store::Blockstore>> open() const {
    store::BlockstoreOptions o;
    o.max_bytes = max_bytes;
    return store::Blockstore::open(store, o);
  }
};

void add_store_options(CLI::App* cmd, StoreArgs& a) {
  cmd->add_option("--store", a.store, "Blockstore directory")->capture_default_str();
  cmd->add_option("--max-bytes", a.max_bytes,
                  "Storage limit; unpinned blocks are evicted least recently used first (0: none)");
}

int import_and_pin(const StoreArgs& s, const std::string& path, size_t chunk) {
  auto bs = s.open();
  if (!bs.ok()) return report(bs.status());
  store::ImportOptions o;
  o.chunk_size = chunk;
  auto r = store::import_path(path, **bs, o);
  if (!r.ok()) return report(r.status());
  Status st = (*bs)->pin(r->cid);
  if (!st.is_ok()) return report(st);
  std::printf("%s\n", r->cid.to_string().c_str());
  std::fprintf(stderr, "added %s: %llu bytes in %llu blocks, pinned\n", path.c_str(),
               static_cast<unsigned long long>(r->content_size),
               static_cast<unsigned long long>(r->blocks));
  return 0;
}

// "host:port" of the DHT of the node at `text`: HOST:PORT itself, or a multiaddr of an IDN
// node (its DHT listens on its TCP port's number over UDP).
Result<std::string> dht_endpoint_of(const std::string& text) {
  if (!text.starts_with('/')) {
    if (text.rfind(':') == std::string::npos)
      return Status::invalid_argument("--bootstrap '" + text +
                                      "' is neither HOST:PORT nor a multiaddr");
    return text;
  }
  IDN_ASSIGN_OR_RETURN(auto ma, core::Multiaddr::parse(text));
  auto ip = ma.ip();
  auto port = ma.tcp_port();
  if (!ip || !port)
    return Status::invalid_argument("--bootstrap " + text + " has no /ip4|ip6/.../tcp/PORT");
  return *ip + ":" + std::to_string(*port);
}

// Joins the DHT through `bootstrap` with a throwaway identity and returns the provider
// addresses of `cid`, nearest first.
Result<std::vector<core::Multiaddr>> find_content_providers(const core::Cid& cid,
                                                            const std::vector<std::string>& boot,
                                                            int timeout_s) {
  routing::RoutingConfig cfg;
  for (const auto& b : boot) {
    IDN_ASSIGN_OR_RETURN(std::string ep, dht_endpoint_of(b));
    cfg.bootstrap.push_back(ep);
  }
  cfg.listen_address = cfg.bootstrap.front().starts_with("127.") ? "127.0.0.1" : "0.0.0.0";
  IDN_ASSIGN_OR_RETURN(auto key, identity::KeyPair::generate());
  IDN_ASSIGN_OR_RETURN(auto dht, routing::DhtRouting::start(std::move(key), cfg));
  auto timeout = std::chrono::seconds(timeout_s);
  IDN_RETURN_IF_ERROR(dht->wait_connected(timeout));
  auto found = routing::find_providers_sync(*dht, cid.hash(), 8, timeout);
  dht->shutdown(false);
  if (!found.ok()) return found.status();
  std::vector<core::Multiaddr> out;
  for (const auto& p : *found) {
    for (const auto& a : p.addrs) {
      auto id = core::Multiaddr::parse("/p2p/" + p.id.to_string());
      if (!id.ok()) continue;
      out.push_back(a.peer_multihash() ? a : a.encapsulate(*id));
    }
  }
  if (out.empty())
    return Status::not_found("no provider of " + cid.to_string() + " found in the DHT");
  return out;
}

// Dials every provider (given, or found in the DHT), fetches the DAG under `cid` into the
// store and pins it.
int fetch_into(store::Blockstore& bs, const core::Cid& cid, const std::vector<std::string>& from,
               const std::vector<std::string>& bootstrap, int timeout_s) {
  std::vector<core::Multiaddr> addrs;
  for (auto& f : from) {
    auto ma = core::Multiaddr::parse(f);
    if (!ma.ok()) return report(ma.status().with_context("--from " + f));
    addrs.push_back(*ma);
  }
  if (!bootstrap.empty()) {
    auto found = find_content_providers(cid, bootstrap, timeout_s);
    if (!found.ok()) return report(found.status());
    for (auto& a : *found) {
      std::fprintf(stderr, "provider %s\n", a.to_string().c_str());
      addrs.push_back(std::move(a));
    }
  }
  if (addrs.empty())
    return report(Status::invalid_argument("say where to fetch from: --from or --bootstrap"));
  auto key = identity::KeyPair::generate();
  if (!key.ok()) return report(key.status());
  asio::io_context ioc;
  auto host = std::make_unique<p2p::Host>(ioc.get_executor(), *key);
  auto swap = std::make_unique<store::bitswap::Bitswap>(ioc.get_executor(), *host, bs);
  swap->start();
  Status result = Status::internal("fetch did not run");
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        std::vector<identity::PeerId> peers;
        for (auto& a : addrs) {
          auto p = co_await host->dial(a);
          if (p.ok()) {
            peers.push_back(*p);
          } else {
            std::fprintf(stderr, "idn: warning: %s: %s\n", a.to_string().c_str(),
                         p.status().to_string().c_str());
          }
        }
        if (peers.empty()) {
          result = Status::unavailable("could not reach any provider");
        } else {
          result = co_await swap->fetch_dag(cid, peers);
        }
        swap->stop();
        host->stop();
      },
      asio::detached);
  ioc.run_for(std::chrono::seconds(timeout_s));
  if (!ioc.stopped())
    result = Status::timeout("fetch did not finish within " + std::to_string(timeout_s) +
                             " s (--timeout)");
  ioc.stop();
  auto stats = swap->stats();
  swap.reset();
  host.reset();
  if (!result.is_ok()) return report(result.with_context("fetch " + cid.to_string()));
  Status st = bs.pin(cid);
  if (!st.is_ok()) return report(st);
  std::fprintf(stderr, "fetched %s: %llu blocks (%llu bytes) received, %llu bad blocks discarded\n",
               cid.to_string().c_str(), static_cast<unsigned long long>(stats.blocks_received),
               static_cast<unsigned long long>(stats.bytes_received),
               static_cast<unsigned long long>(stats.bad_blocks));
  return 0;
}

struct FetchArgs {
  StoreArgs store;
  std::string cid;
  std::vector<std::string> from;
  std::vector<std::string> bootstrap;
  std::string out;
  int timeout_s = 600;
};

int run_fetch(const FetchArgs& a) {
  auto cid = core::Cid::parse(a.cid);
  if (!cid.ok()) return report(cid.status());
  auto bs = a.store.open();
  if (!bs.ok()) return report(bs.status());
  if (int rc = fetch_into(**bs, *cid, a.from, a.bootstrap, a.timeout_s); rc != 0) return rc;
  if (!a.out.empty()) {
    Status st = store::export_to(**bs, *cid, a.out);
    if (!st.is_ok()) return report(st);
  }
  std::printf("%s\n", cid->to_string().c_str());
  return 0;
}

int run_cat(const FetchArgs& a) {
  auto cid = core::Cid::parse(a.cid);
  if (!cid.ok()) return report(cid.status());
  auto bs = a.store.open();
  if (!bs.ok()) return report(bs.status());
  if (!a.from.empty() || !a.bootstrap.empty()) {
    if (int rc = fetch_into(**bs, *cid, a.from, a.bootstrap, a.timeout_s); rc != 0) return rc;
  }
  Status st = store::read_file(**bs, *cid, [](ByteView b) -> Status {
    if (std::fwrite(b.data(), 1, b.size(), stdout) != b.size()) {
      return Status::io_error("stdout: write failed");
    }
    return Status::ok();
  });
  std::fflush(stdout);
  return st.is_ok() ? 0 : report(st);
}

struct ShareArgs {
  StoreArgs store;
  std::string listen = "/ip4/127.0.0.1/tcp/0";
};

int run_share(const ShareArgs& a) {
  auto ma = core::Multiaddr::parse(a.listen);
  if (!ma.ok()) return report(ma.status().with_context("--listen"));
  auto bs = a.store.open();
  if (!bs.ok()) return report(bs.status());
  auto key = identity::KeyPair::generate();
  if (!key.ok()) return report(key.status());
  asio::io_context ioc;
  auto host = std::make_unique<p2p::Host>(ioc.get_executor(), *key);
  store::bitswap::Bitswap swap(ioc.get_executor(), *host, **bs);
  swap.start();
  auto bound = host->listen(*ma);
  if (!bound.ok()) return report(bound.status());
  for (auto& addr : host->listen_addrs()) std::printf("%s\n", addr.to_string().c_str());
  std::fflush(stdout);
  asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) {
    swap.stop();
    host->stop();
    ioc.stop();
  });
  ioc.run();
  return 0;
}

}  // namespace

std::string default_data_dir() {
  if (const char* h = std::getenv("IDN_HOME"); h && *h) return h;
  if (const char* h = std::getenv("HOME"); h && *h) return (fs::path(h) / ".idn").string();
  return ".idn";
}

void register_content(CLI::App& app) {
  {
    auto a = std::make_shared<StoreArgs>();
    auto path = std::make_shared<std::string>();
    auto chunk = std::make_shared<size_t>(store::kDefaultChunkSize);
    auto* cmd = app.add_subcommand(
        "add", "Import a file or directory as IPFS UnixFS content, pin it, print its root CID");
    cmd->add_option("PATH", *path, "File or directory")->required();
    cmd->add_option("--chunk", *chunk, "Chunk size in bytes")->capture_default_str();
    add_store_options(cmd, *a);
    cmd->callback([a, path, chunk] { run_or_exit(import_and_pin(*a, *path, *chunk)); });
  }
  {
    auto data_dir = std::make_shared<std::string>(default_data_dir());
    auto dir = std::make_shared<std::string>();
    auto description = std::make_shared<std::string>();
    auto* cmd = app.add_subcommand(
        "publish",
        "Check a model package (model.json + weights.safetensors), store and pin it with its "
        "service descriptor, print the model CID and service ID; `idn node --data-dir` on the "
        "same directory hosts and provides it");
    cmd->add_option("MODEL_DIR", *dir, "Model package directory")->required();
    cmd->add_option("--data-dir", *data_dir, "The node's data directory")->capture_default_str();
    cmd->add_option("--description", *description, "Service description");
    cmd->callback([data_dir, dir, description] {
      auto bs = store::Blockstore::open(fs::path(*data_dir) / "store");
      if (!bs.ok()) run_or_exit(report(bs.status()));
      auto pub = node::store_publication(**bs, *dir, *description);
      if (!pub.ok()) run_or_exit(report(pub.status()));
      Status st = node::add_hosted(*data_dir, pub->service_id);
      if (!st.is_ok()) run_or_exit(report(st));
      std::printf("model %s\nservice %s\n", pub->model_cid.to_string().c_str(),
                  ise::service_id_text(pub->service_id).c_str());
      if (pub->descriptor.origin)
        std::printf("origin %s\n", ise::describe(*pub->descriptor.origin).c_str());
      if (!pub->left_out.empty()) {
        std::fprintf(stderr, "not published (kept local, not needed to serve): %s\n",
                     fmt::format("{}", fmt::join(pub->left_out, ", ")).c_str());
      }
      std::fprintf(stderr,
                   "stored and pinned in %s; `idn node --data-dir %s` hosts and provides it\n",
                   data_dir->c_str(), data_dir->c_str());
    });
  }
  for (bool is_cat : {false, true}) {
    auto a = std::make_shared<FetchArgs>();
    auto* cmd = is_cat ? app.add_subcommand("cat",
                                            "Write a file's bytes to stdout (fetching it first "
                                            "when --from is given)")
                       : app.add_subcommand("fetch",
                                            "Fetch content by CID over Bitswap (providers given "
                                            "or found in the DHT), verify, store and pin it");
    cmd->add_option("CID", a->cid, "Root CID")->required();
    cmd->add_option("--from", a->from, "Provider multiaddr ending in /p2p/<peer id> (repeatable)");
    cmd->add_option("--bootstrap", a->bootstrap,
                    "Find providers in IDN's DHT through this node (its multiaddr, or HOST:PORT "
                    "of its DHT)");
    if (!is_cat) cmd->add_option("--out", a->out, "Write the file or directory tree here");
    cmd->add_option("--timeout", a->timeout_s, "Give up after this many seconds")
        ->capture_default_str();
    add_store_options(cmd, a->store);
    cmd->callback([a, is_cat] { run_or_exit(is_cat ? run_cat(*a) : run_fetch(*a)); });
  }
  {
    auto a = std::make_shared<ShareArgs>();
    auto* cmd = app.add_subcommand(
        "share",
        "Serve the blockstore over Bitswap; prints the listen addresses, runs until "
        "SIGINT/SIGTERM");
    cmd->add_option("--listen", a->listen, "Listen multiaddr")->capture_default_str();
    add_store_options(cmd, a->store);
    cmd->callback([a] { run_or_exit(run_share(*a)); });
  }
}

}  // namespace idn::cli
