// The node's block store: one file per block (named by CID) written temp -> fsync -> rename, so
// a crash never leaves a block that fails its hash under its own name; an SQLite (WAL) index of
// blocks, sizes, last access and recursive pins; LRU eviction of unpinned blocks past a limit.
// Every read re-verifies the hash. Not thread-safe: one owner (a node's io thread).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <vector>

#include "core/cid.h"
#include "db/sqlite.h"
#include "store/block_io.h"

namespace idn::store {

struct BlockstoreOptions {
  // Bytes of block data kept on disk; above it unpinned blocks are evicted, least recently used
  // first. 0 = unlimited.
  uint64_t max_bytes = 0;
  // fsync each block file (and its directory) before it is indexed. Turning it off trades
  // durability for speed (tests, scratch stores): every read still verifies the hash, so a
  // block lost in a crash is at worst missing, never wrong.
  bool sync_writes = true;
};

struct BlockstoreStats {
  uint64_t blocks = 0, bytes = 0, pinned_roots = 0, evicted = 0, corrupt_dropped = 0,
           stale_temp_removed = 0;
};

class Blockstore : public BlockSink, public BlockSource {
 public:
  // Opens (creating) the store in `dir`: removes half-written temp files left by a crash,
  // drops index rows whose file is gone and indexes verified files the index missed.
  // Errors: IOError, Corruption (unreadable index).
  static Result<std::unique_ptr<Blockstore>> open(const std::filesystem::path& dir,
                                                  BlockstoreOptions options = {});
  ~Blockstore() override;
  Blockstore(const Blockstore&) = delete;
  Blockstore& operator=(const Blockstore&) = delete;

  // Stores a block after checking it against `cid` (Corruption if it does not match). Storing
  // an existing block only refreshes its access time. May evict unpinned blocks.
  Status put_block(const core::Cid& cid, ByteView data) override;
  // Reads and verifies; a file that fails its hash is deleted and reported as Corruption.
  Result<Bytes> get_block(const core::Cid& cid) override;
  bool has(const core::Cid& cid);
  Status remove(const core::Cid& cid);

  // Recursive pin: every block reachable from `root` (all must be present: NotFound names the
  // first missing one) is protected from eviction until unpin.
  Status pin(const core::Cid& root);
  Status unpin(const core::Cid& root);
  std::vector<core::Cid> pins();
  bool is_pinned_block(const core::Cid& cid);

  // Evicts unpinned blocks, least recently used first, until at most `target` bytes remain.
  Status evict_to(uint64_t target);

  BlockstoreStats stats();
  const std::filesystem::path& dir() const { return dir_; }

 private:
  Blockstore(std::filesystem::path dir, BlockstoreOptions options)
      : dir_(std::move(dir)), options_(options) {}
  Status init();
  bool row_exists(const char* sql, const core::Cid& cid);
  std::filesystem::path block_path(const core::Cid& cid) const;
  uint64_t next_tick();

  std::filesystem::path dir_;
  BlockstoreOptions options_;
  std::unique_ptr<db::Database> db_;
  uint64_t tick_ = 0;
  uint64_t evicted_ = 0, corrupt_dropped_ = 0, stale_temp_removed_ = 0;
};

}  // namespace idn::store
