// Blockstore: durable verified blocks, crash leftovers cleaned at open, recursive pins and
// least-recently-used eviction of unpinned blocks past the storage limit.
#include <gtest/gtest.h>

#include <fstream>

#include "store/blockstore.h"
#include "store/exporter.h"
#include "store/importer.h"

namespace idn::store {
namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("idn_bs_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}

core::Cid raw_cid(std::string_view s) {
  return core::Cid::of(core::Multicodec::kRaw, as_bytes(s));
}

TEST(Blockstore, StoresVerifiesAndSurvivesReopen) {
  fs::path d = fresh_dir("basic");
  {
    auto bs = Blockstore::open(d);
    ASSERT_TRUE(bs.ok()) << bs.status().to_string();
    ASSERT_TRUE((*bs)->put_block(raw_cid("hello"), as_bytes("hello")).is_ok());
    // A block that does not match its CID is refused.
    EXPECT_EQ((*bs)->put_block(raw_cid("hello"), as_bytes("hellO")).code(), Code::kCorruption);
    EXPECT_FALSE((*bs)->has(raw_cid("hellO")));
  }
  auto bs = Blockstore::open(d);
  ASSERT_TRUE(bs.ok());
  auto got = (*bs)->get_block(raw_cid("hello"));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(to_string(*got), "hello");
  EXPECT_EQ((*bs)->get_block(raw_cid("nope")).status().code(), Code::kNotFound);
  EXPECT_EQ((*bs)->stats().blocks, 1u);
  fs::remove_all(d);
}

TEST(Blockstore, BitRotOnDiskIsDetectedAndTheBlockDropped) {
  fs::path d = fresh_dir("rot");
  auto bs = Blockstore::open(d);
  ASSERT_TRUE(bs.ok());
  core::Cid c = raw_cid("precious");
  ASSERT_TRUE((*bs)->put_block(c, as_bytes("precious")).is_ok());
  for (auto& e : fs::recursive_directory_iterator(d / "blocks")) {
    if (e.is_regular_file()) std::ofstream(e.path(), std::ios::binary) << "tampered";
  }
  EXPECT_EQ((*bs)->get_block(c).status().code(), Code::kCorruption);
  EXPECT_FALSE((*bs)->has(c));
  EXPECT_EQ((*bs)->stats().corrupt_dropped, 1u);
  fs::remove_all(d);
}

TEST(Blockstore, CrashLeftoversAreIgnoredAndCleanedAtOpen) {
  fs::path d = fresh_dir("crash");
  core::Cid good = raw_cid("good block");
  core::Cid orphan = raw_cid("renamed but not indexed");
  {
    auto bs = Blockstore::open(d);
    ASSERT_TRUE(bs.ok());
    ASSERT_TRUE((*bs)->put_block(good, as_bytes("good block")).is_ok());
  }
  // Simulated crash 1: a half-written temp file (the writer died before fsync + rename).
  std::ofstream(d / "tmp" / "1234-0.tmp", std::ios::binary) << "half a blo";
  // Simulated crash 2: a block file renamed into place, crash before the index insert.
  std::string name = orphan.to_string();
  fs::create_directories(d / "blocks" / name.substr(name.size() - 2));
  std::ofstream(d / "blocks" / name.substr(name.size() - 2) / name, std::ios::binary)
      << "renamed but not indexed";
  // Simulated crash 3: a file under a CID name whose bytes are garbage (torn write on a
  // filesystem without rename atomicity) is deleted, never served.
  core::Cid torn = raw_cid("torn");
  std::string tn = torn.to_string();
  fs::create_directories(d / "blocks" / tn.substr(tn.size() - 2));
  std::ofstream(d / "blocks" / tn.substr(tn.size() - 2) / tn, std::ios::binary) << "to";

  auto bs = Blockstore::open(d);
  ASSERT_TRUE(bs.ok()) << bs.status().to_string();
  EXPECT_FALSE(fs::exists(d / "tmp" / "1234-0.tmp"));
  EXPECT_EQ((*bs)->stats().stale_temp_removed, 1u);
  EXPECT_TRUE((*bs)->get_block(good).ok());
  EXPECT_TRUE((*bs)->get_block(orphan).ok());
  EXPECT_FALSE((*bs)->has(torn));
  EXPECT_EQ((*bs)->stats().corrupt_dropped, 1u);
  fs::remove_all(d);
}

TEST(Blockstore, EvictsLeastRecentlyUsedUnpinnedBlocksAtTheLimit) {
  fs::path d = fresh_dir("lru");
  auto bs = Blockstore::open(d, BlockstoreOptions{300});
  ASSERT_TRUE(bs.ok());
  auto& s = **bs;
  Bytes a(100, 'a'), b(100, 'b'), c(100, 'c'), e(100, 'e');
  auto cid = [](const Bytes& x) { return core::Cid::of(core::Multicodec::kRaw, x); };
  ASSERT_TRUE(s.put_block(cid(a), a).is_ok());
  ASSERT_TRUE(s.put_block(cid(b), b).is_ok());
  ASSERT_TRUE(s.put_block(cid(c), c).is_ok());
  ASSERT_TRUE(s.get_block(cid(a)).ok());  // a is now more recent than b
  ASSERT_TRUE(s.put_block(cid(e), e).is_ok());
  EXPECT_TRUE(s.has(cid(a)));
  EXPECT_FALSE(s.has(cid(b)));  // least recently used
  EXPECT_TRUE(s.has(cid(c)));
  EXPECT_TRUE(s.has(cid(e)));
  EXPECT_LE(s.stats().bytes, 300u);
  EXPECT_EQ(s.stats().evicted, 1u);
  fs::remove_all(d);
}

TEST(Blockstore, RecursivePinProtectsTheWholeDagFromEviction) {
  fs::path d = fresh_dir("pin");
  auto bs = Blockstore::open(d);
  ASSERT_TRUE(bs.ok());
  auto& s = **bs;
  Bytes data(1000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = uint8_t(i);
  ImportOptions o;
  o.chunk_size = 100;
  auto r = import_bytes(data, s, o);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(s.put_block(raw_cid("loose"), as_bytes("loose")).is_ok());
  ASSERT_TRUE(s.pin(r->cid).is_ok());
  EXPECT_EQ(s.pins().size(), 1u);
  ASSERT_TRUE(s.evict_to(0).is_ok());
  EXPECT_FALSE(s.has(raw_cid("loose")));
  auto back = cat(s, r->cid);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, data);
  ASSERT_TRUE(s.unpin(r->cid).is_ok());
  EXPECT_EQ(s.unpin(r->cid).code(), Code::kNotFound);
  ASSERT_TRUE(s.evict_to(0).is_ok());
  EXPECT_EQ(s.stats().blocks, 0u);
  // Pinning an incomplete DAG fails and names the root.
  auto st = s.pin(r->cid);
  EXPECT_EQ(st.code(), Code::kNotFound);
  EXPECT_NE(st.message().find(r->cid.to_string()), std::string::npos);
  fs::remove_all(d);
}

}  // namespace
}  // namespace idn::store
