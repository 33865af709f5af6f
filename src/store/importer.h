// UnixFS importer: bytes, a file or a directory tree -> blocks and a root CID, with the same
// choices as helia / ipfs-unixfs-importer's defaults (CIDv1, sha2-256, raw leaves, fixed-size
// 256 KiB chunks, balanced layout with at most 174 links per node, a single-chunk file is its
// own raw leaf), so IDN and IPFS compute equal CIDs for equal bytes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/cid.h"
#include "store/block_io.h"

namespace idn::store {

// The reference importers' defaults (ipfs-unixfs-importer constants, kubo's size-262144).
inline constexpr size_t kDefaultChunkSize = 262144;
inline constexpr size_t kDefaultMaxLinks = 174;
// Largest chunk we accept: Bitswap peers refuse blocks above 2 MiB (go/js bitswap limit).
inline constexpr size_t kMaxChunkSize = 1 << 20;

struct ImportOptions {
  size_t chunk_size = kDefaultChunkSize;
  size_t max_links = kDefaultMaxLinks;  // balanced layout fan-out
  bool raw_leaves = true;               // leaves are raw (0x55) blocks, not UnixFS nodes
  bool reduce_single_leaf_to_self = true;
};

struct ImportResult {
  core::Cid cid;
  uint64_t dag_size = 0;      // the Tsize a parent link records: all block bytes of the DAG
  uint64_t content_size = 0;  // file bytes (sum over files for a directory)
  uint64_t blocks = 0;        // blocks written (duplicates counted each time)
};

Status validate(const ImportOptions& options);

// Errors: InvalidArgument (options), or whatever the sink returns.
Result<ImportResult> import_bytes(ByteView data, BlockSink& sink,
                                  const ImportOptions& options = {});
// Streams the file in chunk-sized reads. Errors: IOError, NotFound.
Result<ImportResult> import_file(const std::filesystem::path& file, BlockSink& sink,
                                 const ImportOptions& options = {});
// A regular file, or a directory imported recursively as UnixFS directories (entries sorted by
// name bytes). Errors: InvalidArgument for symlinks, devices and other special files.
Result<ImportResult> import_path(const std::filesystem::path& path, BlockSink& sink,
                                 const ImportOptions& options = {});
// A directory holding only the named entries of `dir` (plain names, each a file or a directory
// imported recursively): what import_path(dir) would give had `dir` held nothing else.
// Errors: InvalidArgument (not a directory, a name with '/' or "..", a special file),
// NotFound (a named entry is missing).
Result<ImportResult> import_directory_entries(const std::filesystem::path& dir,
                                              const std::vector<std::string>& names,
                                              BlockSink& sink, const ImportOptions& options = {});

}  // namespace idn::store
