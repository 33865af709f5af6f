// Where importers put blocks and exporters get them: the blockstore, an in-memory map in
// tests, or a network fetcher all implement these two small interfaces.
#pragma once

#include <map>

#include "core/bytes.h"
#include "core/cid.h"
#include "core/status.h"

namespace idn::store {

class BlockSink {
 public:
  virtual ~BlockSink() = default;
  // Stores `data` under `cid`. Implementations may assume cid.verifies(data).
  virtual Status put_block(const core::Cid& cid, ByteView data) = 0;
};

class BlockSource {
 public:
  virtual ~BlockSource() = default;
  // The block's bytes. Errors: NotFound when absent; readers still verify the hash.
  virtual Result<Bytes> get_block(const core::Cid& cid) = 0;
};

// An in-memory block map (tests, dry-run CID computation).
class MemoryBlocks : public BlockSink, public BlockSource {
 public:
  Status put_block(const core::Cid& cid, ByteView data) override {
    blocks_.insert_or_assign(cid, Bytes(data.begin(), data.end()));
    return Status::ok();
  }
  Result<Bytes> get_block(const core::Cid& cid) override {
    auto it = blocks_.find(cid);
    if (it == blocks_.end())
      return Status::not_found("block " + cid.to_string() + " not in memory");
    return it->second;
  }
  const std::map<core::Cid, Bytes>& blocks() const { return blocks_; }
  std::map<core::Cid, Bytes>& mutable_blocks() { return blocks_; }

 private:
  std::map<core::Cid, Bytes> blocks_;
};

// Discards blocks: computing a CID without storing anything.
class NullSink : public BlockSink {
 public:
  Status put_block(const core::Cid&, ByteView) override { return Status::ok(); }
};

}  // namespace idn::store
