// Bitswap on loopback: message codec round trips; a DAG fetched from several IDN providers is
// byte-identical; a provider serving a corrupted block is detected, counted as faulty, and the
// fetch completes elsewhere with the corrupt bytes never stored; a fetch resumes without
// re-fetching stored blocks; a missing DAG fails with NotFound naming the block.
#include <gtest/gtest.h>

#include <filesystem>

#include "p2p/p2p_test_util.h"
#include "store/bitswap.h"
#include "store/exporter.h"
#include "store/importer.h"

namespace idn::store::bitswap {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using p2p::testing::Loop;
using p2p::testing::make_host;

Bytes pattern(size_t n, uint8_t seed) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>((i * 31 + seed + (i >> 9)) & 0xff);
  return b;
}

TEST(BitswapMessage, RoundTripsEveryField) {
  Message m;
  core::Cid a = core::Cid::of(core::Multicodec::kRaw, as_bytes("a"));
  m.wants.push_back(WantEntry{a, 5, false, WantType::kHave, true});
  m.wants.push_back(WantEntry{a, 1, true});
  m.full_wantlist = true;
  m.blocks.push_back(Block{a, to_bytes("a")});
  m.presences.push_back(Presence{a, PresenceType::kDontHave});
  auto back = decode(encode(m));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  ASSERT_EQ(back->wants.size(), 2u);
  EXPECT_EQ(back->wants[0].type, WantType::kHave);
  EXPECT_TRUE(back->wants[0].send_dont_have);
  EXPECT_EQ(back->wants[0].priority, 5);
  EXPECT_TRUE(back->wants[1].cancel);
  EXPECT_TRUE(back->full_wantlist);
  ASSERT_EQ(back->blocks.size(), 1u);
  EXPECT_EQ(back->blocks[0].cid, a);
  ASSERT_EQ(back->presences.size(), 1u);
  EXPECT_EQ(back->presences[0].type, PresenceType::kDontHave);
  // The prefix names the CID; tampered data yields a different CID, never `a`.
  Bytes enc = encode(Message{{}, false, {Block{a, to_bytes("a")}}, {}});
  enc.back() ^= 1;
  auto t = decode(enc);
  ASSERT_TRUE(t.ok());
  EXPECT_NE(t->blocks.at(0).cid, a);
  EXPECT_FALSE(decode(Bytes{0x0a, 0x05, 0x01}).ok());
}

// One IDN node: host + store + bitswap, all on the loop thread.
struct Node {
  Loop& loop;
  fs::path dir;
  p2p::testing::HostPtr host;
  std::unique_ptr<Blockstore> store;
  std::unique_ptr<Bitswap> bitswap;

  Node(Loop& l, const std::string& name, bool serve_bitswap = true) : loop(l), host(make_host(l)) {
    dir = fs::temp_directory_path() / ("idn_bsw_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    BlockstoreOptions o;
    o.sync_writes = false;  // speed; durability is covered by blockstore_test
    store = std::move(*Blockstore::open(dir, o));
    loop.call([&] {
      bitswap = std::make_unique<Bitswap>(loop.ex(), *host, *store);
      if (serve_bitswap) bitswap->start();
      return host->listen(p2p::testing::loopback()).ok();
    });
  }
  ~Node() {
    loop.call([&] {
      bitswap->stop();
      bitswap.reset();
      host->stop();
      return 0;
    });
    fs::remove_all(dir);
  }
  core::Multiaddr addr() {
    return loop.call([&] { return host->listen_addrs().at(0); });
  }
  identity::PeerId connect(Node& other) {
    auto a = other.addr();
    auto r = loop.run([&]() { return host->dial(a); });
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return *r;
  }
  Status fetch(const core::Cid& root, std::vector<identity::PeerId> from) {
    return loop.run([&]() { return bitswap->fetch_dag(root, from); }, std::chrono::seconds(60));
  }
};

ImportResult add(Node& n, ByteView data, size_t chunk = 1000) {
  ImportOptions o;
  o.chunk_size = chunk;
  auto r = import_bytes(data, *n.store, o);
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(n.store->pin(r->cid).is_ok());
  return *r;
}

TEST(Bitswap, FetchesADagFromSeveralProvidersInParallel) {
  Loop loop;
  Node a(loop, "a"), b(loop, "b"), c(loop, "c");
  Bytes data = pattern(400000, 1);  // 400 blocks of 1000 bytes + 3 parents
  auto r = add(a, data);
  ASSERT_TRUE(add(b, data).cid == r.cid);
  auto pa = c.connect(a), pb = c.connect(b);
  Status st = c.fetch(r.cid, {pa, pb});
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  auto back = cat(*c.store, r.cid);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, data);
  // Both providers served part of it.
  uint64_t sa = loop.call([&] { return a.bitswap->stats().blocks_sent; });
  uint64_t sb = loop.call([&] { return b.bitswap->stats().blocks_sent; });
  EXPECT_GT(sa, 0u);
  EXPECT_GT(sb, 0u);
  EXPECT_GE(sa + sb, r.blocks);
  EXPECT_EQ(loop.call([&] { return c.bitswap->stats().bad_blocks; }), 0u);
}

TEST(Bitswap, ResumedFetchDoesNotRefetchStoredBlocks) {
  Loop loop;
  Node a(loop, "ra"), c(loop, "rc");
  Bytes data = pattern(50000, 2);
  auto r = add(a, data);
  // An earlier, interrupted fetch left some leaves in c's store.
  MemoryBlocks all;
  ImportOptions o;
  o.chunk_size = 1000;
  ASSERT_TRUE(import_bytes(data, all, o).ok());
  size_t preloaded = 0;
  for (auto& [cid, bytes] : all.blocks()) {
    if (cid.codec() == uint64_t(core::Multicodec::kRaw) && preloaded < 20) {
      ASSERT_TRUE(c.store->put_block(cid, bytes).is_ok());
      ++preloaded;
    }
  }
  auto pa = c.connect(a);
  ASSERT_TRUE(c.fetch(r.cid, {pa}).is_ok());
  EXPECT_EQ(loop.call([&] { return c.bitswap->stats().blocks_received; }),
            all.blocks().size() - preloaded);
  auto back = cat(*c.store, r.cid);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, data);
  // Everything local now: a second fetch sends nothing.
  uint64_t sent = loop.call([&] { return a.bitswap->stats().blocks_sent; });
  ASSERT_TRUE(c.fetch(r.cid, {pa}).is_ok());
  EXPECT_EQ(loop.call([&] { return a.bitswap->stats().blocks_sent; }), sent);
}

TEST(Bitswap, MissingContentFailsWithNotFound) {
  Loop loop;
  Node a(loop, "na"), c(loop, "nc");
  auto pa = c.connect(a);
  core::Cid absent = core::Cid::of(core::Multicodec::kRaw, as_bytes("nobody has this"));
  Status st = c.fetch(absent, {pa});
  EXPECT_EQ(st.code(), Code::kNotFound) << st.to_string();
}

// A provider that says HAVE to everything and answers every want-block for a raw leaf with
// corrupted bytes under the leaf's prefix (so they hash to a CID nobody asked for).
void serve_corrupt(Node& n) {
  n.loop.call([&n] {
    auto h = [&n](std::shared_ptr<p2p::Stream> s) -> p2p::awaitable<void> {
      identity::PeerId peer = s->remote_peer();
      while (true) {
        auto msg = co_await p2p::read_length_prefixed(*s, 4 << 20);
        if (!msg.ok()) co_return;
        auto m = decode(*msg);
        if (!m.ok()) co_return;
        Message out;
        for (auto& w : m->wants) {
          if (w.cancel) continue;
          if (w.type == WantType::kHave) {
            out.presences.push_back(Presence{w.cid, PresenceType::kHave});
            continue;
          }
          auto data = n.store->get_block(w.cid);
          if (!data.ok()) continue;
          if (w.cid.codec() == uint64_t(core::Multicodec::kRaw)) data->at(0) ^= 0xff;
          out.blocks.push_back(Block{w.cid, *data});
        }
        n.bitswap->send(peer, out);
      }
    };
    n.host->set_handler(std::string(kProtocol120), h);
    return 0;
  });
}

TEST(Bitswap, CorruptProviderIsDetectedAndTheFetchCompletesElsewhere) {
  Loop loop;
  Node good(loop, "good"), evil(loop, "evil", /*serve_bitswap=*/false), c(loop, "client");
  Bytes data = pattern(30000, 3);
  auto r = add(good, data);
  add(evil, data);
  serve_corrupt(evil);
  MemoryBlocks all;
  ImportOptions o;
  o.chunk_size = 1000;
  ASSERT_TRUE(import_bytes(data, all, o).ok());
  auto pe = c.connect(evil), pg = c.connect(good);
  // Want-blocks are spread over both providers, so the evil one is asked for leaves.
  Status st = c.fetch(r.cid, {pe, pg});
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  auto back = cat(*c.store, r.cid);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, data);
  // Every stored block is one of the DAG's and verifies: corrupt bytes never became a block.
  EXPECT_EQ(c.store->stats().blocks, all.blocks().size());
  for (auto& [cid, b] : all.blocks()) EXPECT_TRUE(c.store->get_block(cid).ok()) << cid.to_string();
  EXPECT_GE(loop.call([&] { return c.bitswap->faulty_count(pe); }), 1u);
  EXPECT_EQ(loop.call([&] { return c.bitswap->faulty_count(pg); }), 0u);
  EXPECT_GE(loop.call([&] { return c.bitswap->stats().bad_blocks; }), 1u);

  // Alone, the evil provider cannot complete the fetch, and nothing it sent is stored.
  Node c2(loop, "client2");
  auto pe2 = c2.connect(evil);
  Status st2 = c2.fetch(r.cid, {pe2});
  EXPECT_EQ(st2.code(), Code::kNotFound) << st2.to_string();
  EXPECT_GE(loop.call([&] { return c2.bitswap->faulty_count(pe2); }), 1u);
  for (auto& [cid, b] : all.blocks()) {
    if (c2.store->has(cid)) EXPECT_TRUE(c2.store->get_block(cid).ok());
  }
}

}  // namespace
}  // namespace idn::store::bitswap
