// UnixFS import/export: CIDs equal the reference importer's (golden values printed by
// ipfs-unixfs-importer 17.1.1, helia 7's, with default options and the chunk sizes named), the
// dag-pb encoding is canonical, and export reproduces the bytes and checks every block.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "store/dag_pb.h"
#include "store/exporter.h"
#include "store/importer.h"
#include "store/unixfs.h"

namespace idn::store {
namespace {

namespace fs = std::filesystem;

// Same pattern as the JS script that produced the golden CIDs.
Bytes pattern(size_t n) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>((i * 7 + (i >> 8) * 13) & 0xff);
  return b;
}

struct Golden {
  size_t size, chunk;
  const char* cid;
  uint64_t dag_size;
};

class ImporterGolden : public ::testing::TestWithParam<Golden> {};

TEST_P(ImporterGolden, CidAndSizeEqualReferenceImporterAndExportRoundTrips) {
  const Golden& g = GetParam();
  MemoryBlocks blocks;
  ImportOptions o;
  o.chunk_size = g.chunk;
  Bytes data = pattern(g.size);
  auto r = import_bytes(data, blocks, o);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->cid.to_string(), g.cid);
  EXPECT_EQ(r->dag_size, g.dag_size);
  EXPECT_EQ(r->content_size, g.size);
  auto back = cat(blocks, r->cid);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, data);
}

INSTANTIATE_TEST_SUITE_P(
    Sizes, ImporterGolden,
    ::testing::Values(
        Golden{0, 262144, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", 0},
        Golden{1000, 262144, "bafkreigqg7ims43ah5sw7mbnygno54elevfr4ckqppgrshf6aycce5ukza", 1000},
        Golden{262144, 262144, "bafkreigqnljze2cqjsyeaomodnf6twbuqjmdzuuqqsbzw322aqpa3bszhy",
               262144},
        Golden{262145, 262144, "bafybeigqwswj3pdynomghcvku7cat46kg5a2zg3k3qdux2my6vezyzh7rm",
               262249},
        Golden{1000000, 262144, "bafybeihsx33w2gdnace2dhkfopsfoezqy23jlk6npun5c4axs7ltmzc33m",
               1000208},
        Golden{17400, 100, "bafybeiaapzr72gdsmmhk7foerbpyh5kzh6j646tsuzblfovix5x6w2om3u", 25413},
        Golden{17505, 100, "bafybeif2hpsh3k3k5ovntatb44utjbbtceld5wvgvnro3ipry75whllnpu", 25721},
        // 30277 chunks: three levels of the balanced tree.
        Golden{174 * 174 * 10 + 10, 10,
               "bafybeidelllha4jkhdde6ixrd45nx4skmdnzjldrewdnm4im77f3joyw5u", 1705427}));

void write_file(const fs::path& p, ByteView b) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("idn_store_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

TEST(Importer, DirectoryCidEqualsReferenceAndExportsByteIdentical) {
  fs::path d = temp_dir("dir");
  write_file(d / "pkg/model.json", as_bytes("{\"a\":1}"));
  write_file(d / "pkg/weights.safetensors", pattern(300000));
  write_file(d / "pkg/empty", {});
  write_file(d / "pkg/sub/b.txt", as_bytes("hello"));
  MemoryBlocks blocks;
  auto r = import_path(d / "pkg", blocks);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->cid.to_string(), "bafybeibjvgpsced733jyrmq57fhojm7x6npvau2dbskplhdpk3sh574sky");
  EXPECT_EQ(r->dag_size, 300392u);

  auto entries = list_directory(blocks, r->cid);
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->size(), 4u);
  EXPECT_EQ((*entries)[0].name, "empty");
  EXPECT_EQ((*entries)[3].name, "weights.safetensors");

  ASSERT_TRUE(export_to(blocks, r->cid, d / "out").is_ok());
  auto read = [](const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(f), {});
  };
  EXPECT_EQ(read(d / "out/weights.safetensors"), pattern(300000));
  EXPECT_EQ(read(d / "out/model.json"), to_bytes("{\"a\":1}"));
  EXPECT_TRUE(fs::exists(d / "out/empty"));
  EXPECT_EQ(fs::file_size(d / "out/empty"), 0u);
  EXPECT_EQ(read(d / "out/sub/b.txt"), to_bytes("hello"));
  fs::remove_all(d);
}

TEST(Importer, ChosenEntriesEqualADirectoryHoldingOnlyThem) {
  fs::path d = temp_dir("entries");
  for (const char* dir : {"full", "only"}) {
    write_file(d / dir / "model.json", as_bytes("{\"a\":1}"));
    write_file(d / dir / "weights.safetensors", pattern(300000));
  }
  write_file(d / "full/checkpoint/optimizer.pt", pattern(5000));
  write_file(d / "full/notes.txt", as_bytes("x"));
  MemoryBlocks blocks;
  auto chosen = import_directory_entries(d / "full", {"weights.safetensors", "model.json"}, blocks);
  auto only = import_path(d / "only", blocks);
  ASSERT_TRUE(chosen.ok() && only.ok()) << chosen.status().to_string();
  EXPECT_EQ(chosen->cid, only->cid);
  EXPECT_EQ(chosen->dag_size, only->dag_size);
  auto entries = list_directory(blocks, chosen->cid);
  ASSERT_TRUE(entries.ok());
  EXPECT_EQ(entries->size(), 2u);

  NullSink null;
  EXPECT_EQ(import_directory_entries(d / "full", {"missing"}, null).status().code(),
            Code::kNotFound);
  for (const char* bad : {"", ".", "..", "checkpoint/optimizer.pt"}) {
    EXPECT_EQ(import_directory_entries(d / "full", {bad}, null).status().code(),
              Code::kInvalidArgument)
        << bad;
  }
  EXPECT_EQ(import_directory_entries(d / "full/model.json", {"x"}, null).status().code(),
            Code::kInvalidArgument);
  fs::remove_all(d);
}

TEST(Importer, FileStreamingEqualsInMemoryImport) {
  fs::path d = temp_dir("file");
  Bytes data = pattern(700001);
  write_file(d / "f", data);
  NullSink null;
  auto a = import_file(d / "f", null);
  auto b = import_bytes(data, null);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->cid, b->cid);
  EXPECT_EQ(a->blocks, 4u);  // three full chunks + one partial, one parent
  fs::remove_all(d);
}

TEST(Importer, RejectsBadOptionsAndSpecialFiles) {
  NullSink null;
  ImportOptions o;
  o.chunk_size = 0;
  EXPECT_EQ(import_bytes(as_bytes("x"), null, o).status().code(), Code::kInvalidArgument);
  o.chunk_size = 10;
  o.max_links = 1;
  EXPECT_EQ(import_bytes(as_bytes("x"), null, o).status().code(), Code::kInvalidArgument);
  fs::path d = temp_dir("special");
  write_file(d / "a", as_bytes("a"));
  fs::create_symlink(d / "a", d / "link");
  EXPECT_EQ(import_path(d, null).status().code(), Code::kInvalidArgument);
  fs::remove_all(d);
}

TEST(DagPb, LinksAreWrittenBeforeDataAndDecodeStrictly) {
  PbNode n;
  n.data = Bytes{0x08, 0x01};
  n.links.push_back(PbLink{core::Cid::of(core::Multicodec::kRaw, as_bytes("x")), "b", 1});
  n.links.push_back(PbLink{core::Cid::of(core::Multicodec::kRaw, as_bytes("y")), "a", 1});
  sort_links_by_name(n.links);
  EXPECT_EQ(*n.links[0].name, "a");
  Bytes enc = encode_dag_pb(n);
  EXPECT_EQ(enc[0], 0x12);               // field 2 (Links) first
  EXPECT_EQ(enc[enc.size() - 4], 0x0a);  // field 1 (Data) last: 0a 02 08 01
  auto dec = decode_dag_pb(enc);
  ASSERT_TRUE(dec.ok());
  EXPECT_EQ(encode_dag_pb(*dec), enc);

  // Data before Links is not canonical and is refused.
  Bytes bad = {0x0a, 0x00};
  bad.insert(bad.end(), enc.begin(), enc.end() - 4);
  EXPECT_EQ(decode_dag_pb(bad).status().code(), Code::kCorruption);
  // Unknown field, truncated input, link without Hash.
  EXPECT_FALSE(decode_dag_pb(Bytes{0x1a, 0x00}).ok());
  EXPECT_FALSE(decode_dag_pb(Bytes{0x12, 0x05, 0x0a}).ok());
  EXPECT_FALSE(decode_dag_pb(Bytes{0x12, 0x02, 0x18, 0x01}).ok());
}

TEST(Unixfs, EncodesLikeIpfsUnixfsAndDecodes) {
  UnixfsData dir;
  dir.type = UnixfsType::kDirectory;
  EXPECT_EQ(encode_unixfs(dir), (Bytes{0x08, 0x01}));
  UnixfsData file;
  file.blocksizes = {300, 5};
  EXPECT_EQ(encode_unixfs(file),
            (Bytes{0x08, 0x02, 0x18, 0xb1, 0x02, 0x20, 0xac, 0x02, 0x20, 0x05}));
  auto back = decode_unixfs(encode_unixfs(file));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->blocksizes, file.blocksizes);
  EXPECT_EQ(*back->filesize, 305u);
  EXPECT_FALSE(decode_unixfs(Bytes{0x18, 0x01}).ok());  // no Type
  EXPECT_FALSE(decode_unixfs(Bytes{0x08, 0x09}).ok());  // unknown Type
}

TEST(Exporter, DetectsTamperedBlocksAndInconsistentSizes) {
  MemoryBlocks blocks;
  ImportOptions o;
  o.chunk_size = 100;
  auto r = import_bytes(pattern(1000), blocks, o);
  ASSERT_TRUE(r.ok());
  // Flip a byte of one leaf: export fails with Corruption naming the block.
  auto& m = blocks.mutable_blocks();
  auto leaf = std::find_if(m.begin(), m.end(), [](auto& kv) {
    return kv.first.codec() == uint64_t(core::Multicodec::kRaw);
  });
  ASSERT_NE(leaf, m.end());
  leaf->second[0] ^= 1;
  auto bad = cat(blocks, r->cid);
  EXPECT_EQ(bad.status().code(), Code::kCorruption);
  EXPECT_NE(bad.status().message().find(leaf->first.to_string()), std::string::npos);

  // A self-consistent node whose blocksizes lie about its child.
  MemoryBlocks b2;
  core::Cid child = core::Cid::of(core::Multicodec::kRaw, as_bytes("abc"));
  ASSERT_TRUE(b2.put_block(child, as_bytes("abc")).is_ok());
  UnixfsData u;
  u.blocksizes = {4};
  Bytes node = encode_dag_pb(PbNode{{PbLink{child, "", 3}}, encode_unixfs(u)});
  core::Cid root = core::Cid::of(core::Multicodec::kDagPb, node);
  ASSERT_TRUE(b2.put_block(root, node).is_ok());
  EXPECT_EQ(cat(b2, root).status().code(), Code::kCorruption);
  // Missing block: NotFound passes through.
  MemoryBlocks empty;
  EXPECT_EQ(cat(empty, root).status().code(), Code::kNotFound);
}

TEST(Exporter, RefusesUnsafeDirectoryNames) {
  MemoryBlocks blocks;
  core::Cid child = core::Cid::of(core::Multicodec::kRaw, as_bytes("x"));
  ASSERT_TRUE(blocks.put_block(child, as_bytes("x")).is_ok());
  UnixfsData u;
  u.type = UnixfsType::kDirectory;
  for (const char* name : {"..", "a/b", ""}) {
    Bytes node = encode_dag_pb(PbNode{{PbLink{child, std::string(name), 1}}, encode_unixfs(u)});
    core::Cid root = core::Cid::of(core::Multicodec::kDagPb, node);
    ASSERT_TRUE(blocks.put_block(root, node).is_ok());
    EXPECT_EQ(list_directory(blocks, root).status().code(), Code::kCorruption) << name;
  }
}

}  // namespace
}  // namespace idn::store
