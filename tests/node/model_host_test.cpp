// initModel end to end on five real nodes on 127.0.0.1: a service published on one node is
// found through the DHT (never through an address the host was given), fetched and verified
// over Bitswap, loaded and provided by a second node; a provider that serves corrupted blocks
// is detected while the fetch completes from an honest one; restarting keeps store and hosting.
#include "node/model_host.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "node/node_test_util.h"
#include "routing/dht_routing.h"
#include "serve/infer_server.h"
#include "store/bitswap.h"
#include "store/bitswap_message.h"
#include "store/blockstore.h"
#include "store/exporter.h"
#include "support/tiny_model.h"

namespace idn::node {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::RunningNode;

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / (name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

Config node_config(const fs::path& data_dir, const std::string& dht_bootstrap = {}) {
  Config c;
  c.listen = {core::Multiaddr::parse("/ip4/127.0.0.1/tcp/0").value()};
  c.data_dir = data_dir;
  if (!dht_bootstrap.empty()) c.dht.bootstrap = {dht_bootstrap};
  c.dht.record_ttl = 60s;
  return c;
}

// Makes `n`'s Bitswap server lie: HAVE for everything, and raw blocks with a flipped byte.
void serve_corrupt(RunningNode& n) {
  n.on_io<int>([&n]() -> p2p::awaitable<int> {
    Node* node = &*n;
    auto h = [node](std::shared_ptr<p2p::Stream> s) -> p2p::awaitable<void> {
      identity::PeerId peer = s->remote_peer();
      while (true) {
        auto msg = co_await p2p::read_length_prefixed(*s, 4 << 20);
        if (!msg.ok()) co_return;
        auto m = store::bitswap::decode(*msg);
        if (!m.ok()) co_return;
        store::bitswap::Message out;
        for (auto& w : m->wants) {
          if (w.cancel) continue;
          if (w.type == store::bitswap::WantType::kHave) {
            out.presences.push_back({w.cid, store::bitswap::PresenceType::kHave});
            continue;
          }
          auto data = node->blockstore().get_block(w.cid);
          if (!data.ok()) continue;
          if (w.cid.codec() == uint64_t(core::Multicodec::kRaw) && !data->empty())
            data->at(0) ^= 0xff;
          out.blocks.push_back({w.cid, *data});
        }
        node->bitswap().send(peer, out);
      }
    };
    node->host().set_handler(std::string(store::bitswap::kProtocol120), h);
    co_return 0;
  });
}

TEST(ModelHost, ServiceIsFoundThroughTheDhtFetchedVerifiedLoadedAndProvidedAgain) {
  fs::path pkg = idn::testing::tiny_package("b-lenet");
  TempDir da("idn_mh_a"), db("idn_mh_b"), dc("idn_mh_c"), dd("idn_mh_d"), de("idn_mh_evil");
  // C is everyone's way into the DHT; A (the publisher) is nobody's bootstrap peer.
  RunningNode c(node_config(dc.path));
  ASSERT_TRUE(c);
  std::string boot = c->dht_endpoint();
  RunningNode a(node_config(da.path, boot)), b(node_config(db.path, boot)),
      d(node_config(dd.path, boot)), evil(node_config(de.path, boot));
  ASSERT_TRUE(a && b && d && evil);
  for (RunningNode* n : {&a, &b, &d, &evil})
    ASSERT_TRUE((*n)->routing()->wait_connected(20s).is_ok());

  auto pub = a.on_io<Result<Published>>(
      [&]() { return a->models().publish(pkg, "tiny B-LeNet for tests"); });
  ASSERT_TRUE(pub.ok()) << pub.status().to_string();
  EXPECT_TRUE(a.on_io<bool>(
      [&]() -> p2p::awaitable<bool> { co_return a->models().hosts(pub->service_id); }));
  // The liar holds the same package and announces the same service.
  auto pub_evil = evil.on_io<Result<Published>>(
      [&]() { return evil->models().publish(pkg, "tiny B-LeNet for tests"); });
  ASSERT_TRUE(pub_evil.ok()) << pub_evil.status().to_string();
  ASSERT_EQ(pub_evil->service_id, pub->service_id);
  serve_corrupt(evil);

  // B was given no address of A and is not connected to it before initModel.
  EXPECT_FALSE(
      b.on_io<bool>([&]() -> p2p::awaitable<bool> { co_return b->host().is_connected(a->id()); }));
  Status st = b.on_io<Status>([&]() { return b->models().init_model(pub->service_id); });
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_TRUE(b.on_io<bool>([&]() -> p2p::awaitable<bool> {
    co_return b->models().hosts(pub->service_id) && b->server().hosts(pub->service_id);
  }));
  // Fetched from providers found in the DHT; the liar's blocks were caught and dropped.
  auto faulty = b.on_io<uint64_t>(
      [&]() -> p2p::awaitable<uint64_t> { co_return b->bitswap().faulty_count(evil->id()); });
  auto bad = b.on_io<uint64_t>(
      [&]() -> p2p::awaitable<uint64_t> { co_return b->bitswap().stats().bad_blocks; });
  EXPECT_GE(faulty, 1u);
  EXPECT_GE(bad, 1u);
  // Every block B stored verifies (a corrupt one would fail its hash on read).
  auto model_cid = pub->model_cid;
  EXPECT_TRUE(b.on_io<bool>([&]() -> p2p::awaitable<bool> {
    co_return b->blockstore().pin(model_cid).is_ok() &&
        b->blockstore().stats().corrupt_dropped == 0;
  }));

  // D now finds both honest providers (and the liar) through the DHT.
  auto found = d.on_io<Result<std::vector<identity::PeerId>>>(
      [&]() { return d->models().providers(pub->service_id, 5, {}); });
  ASSERT_TRUE(found.ok()) << found.status().to_string();
  auto has = [&](const identity::PeerId& p) {
    return std::find(found->begin(), found->end(), p) != found->end();
  };
  EXPECT_TRUE(has(a->id()));
  EXPECT_TRUE(has(b->id()));
}

TEST(ModelHost, RestartKeepsStoreIdentityAndHostedServices) {
  fs::path pkg = idn::testing::tiny_package("b-lenet");
  TempDir dir("idn_mh_restart");
  auto key = identity::KeyPair::generate();
  ASSERT_TRUE(key.ok());
  std::optional<core::Multihash> sid;
  {
    auto n = Node::create(node_config(dir.path), *key);
    ASSERT_TRUE(n.ok()) << n.status().to_string();
    RunningNode r(std::move(*n));
    auto pub = r.on_io<Result<Published>>([&]() { return r->models().publish(pkg, ""); });
    ASSERT_TRUE(pub.ok()) << pub.status().to_string();
    sid = pub->service_id;
  }
  auto n = Node::create(node_config(dir.path), *key);
  ASSERT_TRUE(n.ok()) << n.status().to_string();
  RunningNode r(std::move(*n));
  EXPECT_EQ(r->id(), identity::PeerId::from_public_key(key->public_key()));
  // Re-hosting runs at start from the local store, with no peer to fetch from.
  Status st = r.on_io<Status>([&]() { return r->models().init_model(*sid); });
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_TRUE(r.on_io<bool>([&]() -> p2p::awaitable<bool> { co_return r->server().hosts(*sid); }));
}

// Every block reachable from `root`, in bytes: what a peer fetches to host the package.
uint64_t dag_bytes(store::Blockstore& bs, const core::Cid& root, std::vector<std::string>& names) {
  uint64_t total = 0;
  std::set<std::string> seen;
  std::vector<core::Cid> todo{root};
  while (!todo.empty()) {
    core::Cid c = todo.back();
    todo.pop_back();
    if (!seen.insert(c.to_string()).second) continue;
    auto block = store::get_verified(bs, c);
    EXPECT_TRUE(block.ok()) << block.status().to_string();
    if (!block.ok()) return 0;
    total += block->size();
    auto links = store::block_links(c, *block);
    EXPECT_TRUE(links.ok());
    if (!links.ok()) return 0;
    for (auto& l : *links) todo.push_back(l);
  }
  auto entries = store::list_directory(bs, root);
  EXPECT_TRUE(entries.ok());
  if (entries.ok())
    for (auto& e : *entries) names.push_back(e.name);
  return total;
}

TEST(ModelHost, PublishShipsOnlyWhatServingNeeds) {
  fs::path tiny = idn::testing::tiny_package("b-lenet");
  TempDir dir("idn_mh_pubfiles"), pkg("idn_mh_pubfiles_pkg");
  fs::create_directories(pkg.path / "checkpoint");
  fs::copy(tiny / "model.json", pkg.path / "model.json");
  fs::copy(tiny / "weights.safetensors", pkg.path / "weights.safetensors");
  // What `idn train` leaves beside the package: a checkpoint (weights again plus optimizer
  // state) and evaluation output.
  fs::copy(tiny / "weights.safetensors", pkg.path / "checkpoint" / "weights.safetensors");
  { std::ofstream(pkg.path / "checkpoint" / "optimizer.pt") << std::string(100000, 'o'); }
  { std::ofstream(pkg.path / "eval.csv") << "exit,accuracy\n0,0.8\n"; }

  auto bs = store::Blockstore::open(dir.path / "store");
  ASSERT_TRUE(bs.ok()) << bs.status().to_string();
  auto pub = store_publication(**bs, pkg.path, "");
  ASSERT_TRUE(pub.ok()) << pub.status().to_string();
  EXPECT_EQ(pub->left_out, (std::vector<std::string>{"checkpoint/", "eval.csv"}));

  std::vector<std::string> names;
  uint64_t bytes = dag_bytes(**bs, pub->model_cid, names);
  EXPECT_EQ(names, (std::vector<std::string>{"model.json", "weights.safetensors"}));
  const double files = double(fs::file_size(pkg.path / "model.json") +
                              fs::file_size(pkg.path / "weights.safetensors"));
  EXPECT_GE(double(bytes), files);
  EXPECT_LE(double(bytes), files * 1.01) << bytes << " DAG bytes for " << files << " file bytes";

  // The same package without the leftovers has the same CID: leftovers change nothing.
  TempDir clean("idn_mh_pubfiles_clean");
  fs::create_directories(clean.path);
  fs::copy(tiny / "model.json", clean.path / "model.json");
  fs::copy(tiny / "weights.safetensors", clean.path / "weights.safetensors");
  auto pub2 = store_publication(**bs, clean.path, "");
  ASSERT_TRUE(pub2.ok()) << pub2.status().to_string();
  EXPECT_EQ(pub2->model_cid, pub->model_cid);
  EXPECT_TRUE(pub2->left_out.empty());
}

TEST(ModelHost, CorruptPackageIsRefusedWithAClearError) {
  TempDir dir("idn_mh_bad"), pkg("idn_mh_badpkg");
  fs::create_directories(pkg.path);
  { std::ofstream(pkg.path / "model.json") << "{not json"; }
  auto n = Node::create(node_config(dir.path));
  ASSERT_TRUE(n.ok());
  RunningNode r(std::move(*n));
  auto pub = r.on_io<Result<Published>>([&]() { return r->models().publish(pkg.path, ""); });
  ASSERT_FALSE(pub.ok());
  EXPECT_NE(pub.status().to_string().find(pkg.path.string()), std::string::npos)
      << pub.status().to_string();
}

}  // namespace
}  // namespace idn::node
