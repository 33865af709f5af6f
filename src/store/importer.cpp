#include "store/importer.h"

#include <algorithm>
#include <fstream>
#include <optional>
#include <vector>

#include "store/dag_pb.h"
#include "store/unixfs.h"

namespace idn::store {

namespace fs = std::filesystem;

namespace {

// One node of a file DAG as the layout sees it.
struct Entry {
  core::Cid cid;
  uint64_t size = 0;        // Tsize: block bytes of the subtree
  uint64_t file_bytes = 0;  // content bytes under it (the parent's blocksize)
};

// Builds one file's DAG from its chunks, in the order ipfs-unixfs-importer's balanced layout
// does: groups of max_links leaves become parents, then groups of those, up to one root.
class FileBuilder {
 public:
  FileBuilder(BlockSink& sink, const ImportOptions& o) : sink_(sink), o_(o) {}

  Status add_chunk(ByteView chunk) {
    Entry leaf{core::Cid::of(core::Multicodec::kRaw, {}), 0, chunk.size()};
    if (o_.raw_leaves) {
      leaf.cid = core::Cid::of(core::Multicodec::kRaw, chunk);
      leaf.size = chunk.size();
      IDN_RETURN_IF_ERROR(put(leaf.cid, chunk));
    } else {
      UnixfsData u;
      u.type = UnixfsType::kFile;
      u.data = Bytes(chunk.begin(), chunk.end());
      Bytes block = encode_dag_pb(PbNode{{}, encode_unixfs(u)});
      leaf.cid = core::Cid::of(core::Multicodec::kDagPb, block);
      leaf.size = block.size();
      IDN_RETURN_IF_ERROR(put(leaf.cid, block));
    }
    ++chunks_;
    group_.push_back(std::move(leaf));
    if (group_.size() == o_.max_links) {
      IDN_ASSIGN_OR_RETURN(Entry parent, reduce(group_));
      level1_.push_back(std::move(parent));
      group_.clear();
    }
    return Status::ok();
  }

  Result<ImportResult> finish() {
    if (chunks_ == 0) IDN_RETURN_IF_ERROR(add_chunk({}));  // an empty file is one empty chunk
    if (chunks_ == 1 && o_.reduce_single_leaf_to_self) {
      const Entry& leaf = group_.at(0);
      return ImportResult{leaf.cid, leaf.size, leaf.file_bytes, blocks_};
    }
    if (!group_.empty()) {
      IDN_ASSIGN_OR_RETURN(Entry parent, reduce(group_));
      level1_.push_back(std::move(parent));
      group_.clear();
    }
    std::vector<Entry> level = std::move(level1_);
    while (level.size() > 1) {
      std::vector<Entry> next;
      for (size_t i = 0; i < level.size(); i += o_.max_links) {
        std::vector<Entry> g(level.begin() + i,
                             level.begin() + std::min(level.size(), i + o_.max_links));
        IDN_ASSIGN_OR_RETURN(Entry parent, reduce(g));
        next.push_back(std::move(parent));
      }
      level = std::move(next);
    }
    const Entry& root = level.at(0);
    return ImportResult{root.cid, root.size, root.file_bytes, blocks_};
  }

 private:
  Status put(const core::Cid& cid, ByteView data) {
    ++blocks_;
    return sink_.put_block(cid, data);
  }

  Result<Entry> reduce(const std::vector<Entry>& children) {
    UnixfsData u;
    u.type = UnixfsType::kFile;
    PbNode node;
    uint64_t file_bytes = 0, tsizes = 0;
    for (const Entry& c : children) {
      if (c.file_bytes == 0) continue;  // the reference importer drops empty children
      u.blocksizes.push_back(c.file_bytes);
      node.links.push_back(PbLink{c.cid, std::string(), c.size});
      file_bytes += c.file_bytes;
      tsizes += c.size;
    }
    node.data = encode_unixfs(u);
    Bytes block = encode_dag_pb(node);
    core::Cid cid = core::Cid::of(core::Multicodec::kDagPb, block);
    IDN_RETURN_IF_ERROR(put(cid, block));
    return Entry{cid, block.size() + tsizes, file_bytes};
  }

  BlockSink& sink_;
  const ImportOptions& o_;
  uint64_t chunks_ = 0, blocks_ = 0;
  std::vector<Entry> group_;
  std::vector<Entry> level1_;
};

Result<ImportResult> import_dir(const fs::path& dir, BlockSink& sink, const ImportOptions& o,
                                int depth);

// One UnixFS directory node over `names` (entries of `dir`), each imported recursively.
Result<ImportResult> import_entries(const fs::path& dir, std::vector<std::string> names,
                                    BlockSink& sink, const ImportOptions& o, int depth) {
  std::error_code ec;
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  PbNode node;
  ImportResult total{core::Cid::of(core::Multicodec::kRaw, {}), 0, 0, 0};
  uint64_t tsizes = 0;
  for (const auto& name : names) {
    IDN_ASSIGN_OR_RETURN(ImportResult child, [&]() -> Result<ImportResult> {
      fs::path p = dir / name;
      auto st = fs::symlink_status(p, ec);
      if (ec) return Status::io_error(p.string() + ": " + ec.message());
      if (fs::is_directory(st)) return import_dir(p, sink, o, depth + 1);
      if (fs::is_regular_file(st)) return import_file(p, sink, o);
      return Status::invalid_argument(p.string() +
                                      ": not a regular file or directory (symlinks and special "
                                      "files cannot be imported)");
    }());
    node.links.push_back(PbLink{child.cid, name, child.dag_size});
    tsizes += child.dag_size;
    total.content_size += child.content_size;
    total.blocks += child.blocks;
  }
  sort_links_by_name(node.links);
  UnixfsData u;
  u.type = UnixfsType::kDirectory;
  node.data = encode_unixfs(u);
  Bytes block = encode_dag_pb(node);
  total.cid = core::Cid::of(core::Multicodec::kDagPb, block);
  IDN_RETURN_IF_ERROR(sink.put_block(total.cid, block));
  total.blocks += 1;
  total.dag_size = block.size() + tsizes;
  return total;
}

Result<ImportResult> import_dir(const fs::path& dir, BlockSink& sink, const ImportOptions& o,
                                int depth) {
  if (depth > 64) return Status::invalid_argument(dir.string() + ": directories nested too deep");
  std::error_code ec;
  std::vector<std::string> names;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    names.push_back(it->path().filename().string());
  }
  if (ec) return Status::io_error(dir.string() + ": cannot list directory: " + ec.message());
  return import_entries(dir, std::move(names), sink, o, depth);
}

}  // namespace

Status validate(const ImportOptions& o) {
  if (o.chunk_size == 0 || o.chunk_size > kMaxChunkSize) {
    return Status::invalid_argument("chunk size must be 1.." + std::to_string(kMaxChunkSize) +
                                    " bytes, got " + std::to_string(o.chunk_size));
  }
  if (o.max_links < 2) {
    return Status::invalid_argument("max links per node must be at least 2, got " +
                                    std::to_string(o.max_links));
  }
  return Status::ok();
}

Result<ImportResult> import_bytes(ByteView data, BlockSink& sink, const ImportOptions& o) {
  IDN_RETURN_IF_ERROR(validate(o));
  FileBuilder b(sink, o);
  for (size_t off = 0; off < data.size(); off += o.chunk_size) {
    IDN_RETURN_IF_ERROR(b.add_chunk(data.subspan(off, std::min(o.chunk_size, data.size() - off))));
  }
  return b.finish();
}

Result<ImportResult> import_file(const fs::path& file, BlockSink& sink, const ImportOptions& o) {
  IDN_RETURN_IF_ERROR(validate(o));
  std::ifstream in(file, std::ios::binary);
  if (!in) return Status::not_found(file.string() + ": cannot open for reading");
  FileBuilder b(sink, o);
  Bytes buf(o.chunk_size);
  while (true) {
    size_t got = 0;
    while (got < buf.size() && in) {
      in.read(reinterpret_cast<char*>(buf.data() + got), std::streamsize(buf.size() - got));
      got += static_cast<size_t>(in.gcount());
    }
    if (in.bad()) return Status::io_error(file.string() + ": read failed");
    if (got > 0) IDN_RETURN_IF_ERROR(b.add_chunk(ByteView(buf.data(), got)));
    if (got < buf.size()) break;
  }
  return b.finish();
}

Result<ImportResult> import_path(const fs::path& path, BlockSink& sink, const ImportOptions& o) {
  IDN_RETURN_IF_ERROR(validate(o));
  std::error_code ec;
  auto st = fs::symlink_status(path, ec);
  if (ec) return Status::not_found(path.string() + ": " + ec.message());
  if (fs::is_directory(st)) return import_dir(path, sink, o, 0);
  if (fs::is_regular_file(st)) return import_file(path, sink, o);
  return Status::invalid_argument(path.string() + ": not a regular file or directory");
}

Result<ImportResult> import_directory_entries(const fs::path& dir,
                                              const std::vector<std::string>& names,
                                              BlockSink& sink, const ImportOptions& o) {
  IDN_RETURN_IF_ERROR(validate(o));
  std::error_code ec;
  if (!fs::is_directory(fs::symlink_status(dir, ec))) {
    return Status::invalid_argument(dir.string() + ": not a directory");
  }
  for (const auto& name : names) {
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
      return Status::invalid_argument(dir.string() + ": '" + name + "' is not a plain entry name");
    }
    if (!fs::exists(fs::symlink_status(dir / name, ec))) {
      return Status::not_found((dir / name).string() + ": no such file or directory");
    }
  }
  return import_entries(dir, names, sink, o, 0);
}

}  // namespace idn::store
