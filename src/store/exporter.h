// UnixFS exporter: root CID -> file bytes or a directory tree on disk. Every block is checked
// against its CID and every file node against its blocksizes/filesize, so a wrong or
// truncated DAG is an error, never silently different output.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/cid.h"
#include "store/block_io.h"

namespace idn::store {

// Gets a block and checks its hash. Errors: the source's (NotFound...), Corruption on mismatch.
Result<Bytes> get_verified(BlockSource& source, const core::Cid& cid);

// CIDs a block links to (dag-pb links; none for raw). Errors: Corruption, Unsupported codec.
Result<std::vector<core::Cid>> block_links(const core::Cid& cid, ByteView block);

enum class EntryKind { kFile, kDirectory };

struct DirEntry {
  std::string name;
  core::Cid cid;
  uint64_t tsize = 0;
};

// What the root is. Errors: Unsupported for HAMT shards, symlinks and other UnixFS types.
Result<EntryKind> entry_kind(BlockSource& source, const core::Cid& cid);

// Entries of a UnixFS directory. Names are checked to be safe path components.
Result<std::vector<DirEntry>> list_directory(BlockSource& source, const core::Cid& cid);

// Streams a file's bytes in order to `out`. Errors: Corruption (size mismatch, bad node), ...
Status read_file(BlockSource& source, const core::Cid& cid,
                 const std::function<Status(ByteView)>& out);
// The whole file in memory. Errors: LimitExceeded above max_size.
Result<Bytes> cat(BlockSource& source, const core::Cid& cid, uint64_t max_size = uint64_t{1} << 32);

// Writes a file to `out` or a directory tree under `out` (created). Files are written to a
// temporary name and renamed, so a failed export leaves no truncated file under its own name.
Status export_to(BlockSource& source, const core::Cid& cid, const std::filesystem::path& out);

}  // namespace idn::store
