// Interop with a stock helia node (interop/helia_peer.mjs): helia fetches a model package IDN
// added, by its root CID over Bitswap, byte for byte; IDN fetches files helia added; and both
// importers give equal CIDs for equal bytes and chunker settings. Skipped when node or
// interop/node_modules is missing.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "support/json_lines_child.h"

#include "p2p/p2p_test_util.h"
#include "store/bitswap.h"
#include "store/exporter.h"
#include "store/importer.h"

extern char** environ;

namespace idn::store {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using json = nlohmann::json;
using p2p::testing::Loop;

std::string interop_dir() {
  return std::string(IDN_SOURCE_DIR) + "/interop";
}

bool have_helia() {
  if (!fs::exists(interop_dir() + "/node_modules/helia")) return false;
  return std::system("node --version > /dev/null 2>&1") == 0;
}

// Same bytes as helia_peer.mjs's pattern().
Bytes pattern(size_t n, unsigned seed) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i)
    b[i] = static_cast<uint8_t>((i * 7 + (i / 256) * 13 + seed) & 0xff);
  return b;
}

using Child = idn::testing::JsonLinesChild;

std::string sha256_hex(ByteView b) {
  auto d = core::sha256(b);
  return hex_encode(ByteView(d.data(), d.size()));
}

struct CidCase {
  size_t chunk, max_links;
  std::vector<size_t> sizes;
};

TEST(HeliaInterop, CidsEqualHeliaImporterForTheSameChunkerSettings) {
  if (!have_helia()) GTEST_SKIP() << "node or interop/node_modules missing (run scripts/setup)";
  std::vector<CidCase> cases = {
      // kubo / ipfs-unixfs-importer defaults: empty, < 1 chunk, exactly 1, just over, several.
      {262144, 174, {0, 1000, 262144, 262145, 1000000}},
      // small chunks: exactly one chunk, more than 174 chunks (two tree levels).
      {100, 174, {100, 17400, 17500, 40000}},
      // @helia/unixfs's own defaults (1 MiB chunks, 1024 links).
      {1048576, 1024, {3000000}},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"node",
                                     interop_dir() + "/helia_peer.mjs",
                                     "cids",
                                     "--chunk",
                                     std::to_string(c.chunk),
                                     "--max-links",
                                     std::to_string(c.max_links)};
    for (size_t s : c.sizes) args.push_back(std::to_string(s));
    Child js(args);
    ASSERT_TRUE(js.ok());
    ImportOptions o;
    o.chunk_size = c.chunk;
    o.max_links = c.max_links;
    for (size_t s : c.sizes) {
      auto j = js.next(60s);
      ASSERT_TRUE(j.has_value()) << "helia printed nothing for size " << s;
      ASSERT_EQ((*j)["event"], "cid") << j->dump();
      NullSink null;
      auto ours = import_bytes(pattern(s, 0), null, o);
      ASSERT_TRUE(ours.ok());
      EXPECT_EQ(ours->cid.to_string(), (*j)["cid"].get<std::string>())
          << "size " << s << " chunk " << c.chunk << " links " << c.max_links;
    }
  }
}

struct IdnNode {
  Loop& loop;
  fs::path dir;
  p2p::testing::HostPtr host;
  std::unique_ptr<Blockstore> store;
  std::unique_ptr<bitswap::Bitswap> bs;
  explicit IdnNode(Loop& l, const std::string& name) : loop(l), host(p2p::testing::make_host(l)) {
    dir = fs::temp_directory_path() / ("idn_helia_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    BlockstoreOptions o;
    o.sync_writes = false;
    store = std::move(*Blockstore::open(dir / "store", o));
    loop.call([&] {
      bs = std::make_unique<bitswap::Bitswap>(loop.ex(), *host, *store);
      bs->start();
      return host->listen(p2p::testing::loopback()).ok();
    });
  }
  ~IdnNode() {
    loop.call([&] {
      bs->stop();
      bs.reset();
      host->stop();
      return 0;
    });
    fs::remove_all(dir);
  }
};

TEST(HeliaInterop, HeliaFetchesAPackageIdnAddedByItsRootCid) {
  if (!have_helia()) GTEST_SKIP() << "node or interop/node_modules missing (run scripts/setup)";
  Loop loop;
  IdnNode idn(loop, "serve");
  fs::path pkg = idn.dir / "pkg";
  fs::create_directories(pkg);
  Bytes model_json = to_bytes("{\"format\":\"idn-model\",\"layers\":[]}\n");
  Bytes weights = pattern(700000, 9);  // three 256 KiB chunks
  std::ofstream(pkg / "model.json", std::ios::binary)
      .write(reinterpret_cast<const char*>(model_json.data()), std::streamsize(model_json.size()));
  std::ofstream(pkg / "weights.safetensors", std::ios::binary)
      .write(reinterpret_cast<const char*>(weights.data()), std::streamsize(weights.size()));
  auto root = import_path(pkg, *idn.store);
  ASSERT_TRUE(root.ok()) << root.status().to_string();
  ASSERT_TRUE(idn.store->pin(root->cid).is_ok());
  std::string addr = loop.call([&] { return idn.host->listen_addrs().at(0).to_string(); });

  Child js({"node", interop_dir() + "/helia_peer.mjs", "fetch", addr, root->cid.to_string()});
  ASSERT_TRUE(js.ok());
  auto lines = js.until("done", 90s);
  ASSERT_FALSE(lines.empty());
  ASSERT_EQ(lines.back()["event"], "done") << lines.back().dump();
  std::map<std::string, json> files;
  for (auto& j : lines) {
    if (j["event"] == "file") files[j["path"]] = j;
  }
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files["model.json"]["sha256"], sha256_hex(model_json));
  EXPECT_EQ(files["weights.safetensors"]["size"], weights.size());
  EXPECT_EQ(files["weights.safetensors"]["sha256"], sha256_hex(weights));
  // The pattern repeats every 256 KiB, so the DAG has fewer distinct blocks than it has links.
  EXPECT_GT(loop.call([&] { return idn.bs->stats().blocks_sent; }), 0u);
}

TEST(HeliaInterop, IdnFetchesFilesHeliaAddedByCid) {
  if (!have_helia()) GTEST_SKIP() << "node or interop/node_modules missing (run scripts/setup)";
  // One file with IDN's (kubo's) chunking, one with helia's own 1 MiB defaults.
  Child js({"node", interop_dir() + "/helia_peer.mjs", "serve", "--file", "700000:5", "--file",
            "2500000:3"});
  ASSERT_TRUE(js.ok());
  auto ready = js.next(60s);
  ASSERT_TRUE(ready.has_value());
  ASSERT_EQ((*ready)["event"], "listening") << ready->dump();
  Loop loop;
  IdnNode idn(loop, "fetch");
  auto ma = core::Multiaddr::parse((*ready)["addrs"][0].get<std::string>());
  ASSERT_TRUE(ma.ok());
  auto peer = loop.run([&]() { return idn.host->dial(*ma); });
  ASSERT_TRUE(peer.ok()) << peer.status().to_string();
  for (auto& f : (*ready)["files"]) {
    auto cid = core::Cid::parse(f["cid"].get<std::string>());
    ASSERT_TRUE(cid.ok());
    Status st = loop.run([&]() { return idn.bs->fetch_dag(*cid, {*peer}); }, 90s);
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    auto bytes = cat(*idn.store, *cid);
    ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
    EXPECT_EQ(*bytes, pattern(f["size"].get<size_t>(), f["seed"].get<unsigned>()));
  }
  EXPECT_EQ(loop.call([&] { return idn.bs->stats().bad_blocks; }), 0u);
}

}  // namespace
}  // namespace idn::store
