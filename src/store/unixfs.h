// UnixFS v1 Data message (the Data field of a dag-pb node): file, directory and raw node types
// with file sizes and per-child block sizes, encoded field for field as ipfs-unixfs does.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"

namespace idn::store {

enum class UnixfsType : uint64_t {
  kRaw = 0,
  kDirectory = 1,
  kFile = 2,
  kMetadata = 3,
  kSymlink = 4,
  kHamtShard = 5,
};

struct UnixfsData {
  UnixfsType type = UnixfsType::kFile;
  std::optional<Bytes> data;                  // inline file bytes (omitted when empty)
  std::optional<uint64_t> filesize;           // files and raw: data size + sum(blocksizes)
  std::vector<uint64_t> blocksizes;           // file bytes under each link, in link order
  std::optional<uint64_t> hash_type, fanout;  // HAMT shards only (read, never written by us)
  std::optional<uint32_t> mode;               // POSIX permission bits when recorded
};

// Fields 1..4 (and mode, 7) in order; filesize is always written for File and Raw, as
// ipfs-unixfs's marshal() does, so our nodes hash identically.
Bytes encode_unixfs(const UnixfsData& d);

// Lenient on unknown fields (mtime and future additions are skipped), strict on structure:
// Type is required and must be known. Errors: Corruption.
Result<UnixfsData> decode_unixfs(ByteView bytes);

// For File/Raw nodes: the file size the fields imply (data + blocksizes).
uint64_t unixfs_content_size(const UnixfsData& d);

}  // namespace idn::store
