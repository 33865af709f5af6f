#include "store/exporter.h"

#include <cstdio>
#include <fstream>

#include "store/dag_pb.h"
#include "store/unixfs.h"

namespace idn::store {

namespace fs = std::filesystem;

namespace {

// Bounds recursion on hostile DAGs (a balanced 174-ary tree of depth 8 already holds
// petabytes at 256 KiB chunks).
constexpr int kMaxDepth = 32;

struct Node {
  PbNode pb;
  UnixfsData unixfs;
};

Result<Node> load_unixfs(BlockSource& source, const core::Cid& cid) {
  IDN_ASSIGN_OR_RETURN(Bytes block, get_verified(source, cid));
  if (cid.codec() != uint64_t(core::Multicodec::kDagPb)) {
    return Status::unsupported(cid.to_string() + ": expected a dag-pb node, codec is " +
                               core::multicodec_name(cid.codec()));
  }
  IDN_ASSIGN_OR_RETURN(PbNode pb, decode_dag_pb(block));
  if (!pb.data) return Status::corruption(cid.to_string() + ": dag-pb node without UnixFS data");
  auto u = decode_unixfs(*pb.data);
  if (!u.ok()) return u.status().with_context(cid.to_string());
  return Node{std::move(pb), std::move(*u)};
}

bool safe_name(const std::string& n) {
  return !n.empty() && n != "." && n != ".." && n.find('/') == std::string::npos &&
         n.find('\0') == std::string::npos && n.find('\\') == std::string::npos;
}

// Emits the file under `cid`; returns the number of bytes emitted.
Result<uint64_t> emit(BlockSource& source, const core::Cid& cid,
                      const std::function<Status(ByteView)>& out, int depth) {
  if (depth > kMaxDepth) return Status::corruption(cid.to_string() + ": file DAG too deep");
  if (cid.codec() == uint64_t(core::Multicodec::kRaw)) {
    IDN_ASSIGN_OR_RETURN(Bytes block, get_verified(source, cid));
    IDN_RETURN_IF_ERROR(out(block));
    return uint64_t(block.size());
  }
  IDN_ASSIGN_OR_RETURN(Node n, load_unixfs(source, cid));
  if (n.unixfs.type != UnixfsType::kFile && n.unixfs.type != UnixfsType::kRaw) {
    return Status::corruption(cid.to_string() + ": expected a file node inside a file");
  }
  if (n.unixfs.blocksizes.size() != n.pb.links.size()) {
    return Status::corruption(cid.to_string() + ": " + std::to_string(n.pb.links.size()) +
                              " links but " + std::to_string(n.unixfs.blocksizes.size()) +
                              " blocksizes");
  }
  uint64_t total = 0;
  if (n.unixfs.data && !n.unixfs.data->empty()) {
    IDN_RETURN_IF_ERROR(out(*n.unixfs.data));
    total += n.unixfs.data->size();
  }
  for (size_t i = 0; i < n.pb.links.size(); ++i) {
    IDN_ASSIGN_OR_RETURN(uint64_t got, emit(source, n.pb.links[i].cid, out, depth + 1));
    if (got != n.unixfs.blocksizes[i]) {
      return Status::corruption(cid.to_string() + ": child " + std::to_string(i) + " holds " +
                                std::to_string(got) + " bytes, blocksizes says " +
                                std::to_string(n.unixfs.blocksizes[i]));
    }
    total += got;
  }
  if (n.unixfs.filesize && *n.unixfs.filesize != total) {
    return Status::corruption(cid.to_string() + ": filesize " + std::to_string(*n.unixfs.filesize) +
                              " but content is " + std::to_string(total) + " bytes");
  }
  return total;
}

Status export_file(BlockSource& source, const core::Cid& cid, const fs::path& out) {
  fs::path tmp = out;
  tmp += ".idn-partial";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return Status::io_error(tmp.string() + ": cannot create");
    Status st = read_file(source, cid, [&](ByteView b) -> Status {
      f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
      return f ? Status::ok() : Status::io_error(tmp.string() + ": write failed");
    });
    f.close();
    if (st.is_ok() && !f) st = Status::io_error(tmp.string() + ": write failed");
    if (!st.is_ok()) {
      std::error_code ec;
      fs::remove(tmp, ec);
      return st;
    }
  }
  std::error_code ec;
  fs::rename(tmp, out, ec);
  if (ec) return Status::io_error(out.string() + ": cannot rename into place: " + ec.message());
  return Status::ok();
}

Status export_rec(BlockSource& source, const core::Cid& cid, const fs::path& out, int depth) {
  if (depth > kMaxDepth) return Status::corruption(cid.to_string() + ": directories too deep");
  IDN_ASSIGN_OR_RETURN(EntryKind kind, entry_kind(source, cid));
  if (kind == EntryKind::kFile) return export_file(source, cid, out);
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) return Status::io_error(out.string() + ": cannot create directory: " + ec.message());
  IDN_ASSIGN_OR_RETURN(auto entries, list_directory(source, cid));
  for (const auto& e : entries)
    IDN_RETURN_IF_ERROR(export_rec(source, e.cid, out / e.name, depth + 1));
  return Status::ok();
}

}  // namespace

Result<Bytes> get_verified(BlockSource& source, const core::Cid& cid) {
  IDN_ASSIGN_OR_RETURN(Bytes b, source.get_block(cid));
  if (!cid.verifies(b)) {
    return Status::corruption("block " + cid.to_string() + " does not match its hash");
  }
  return b;
}

Result<std::vector<core::Cid>> block_links(const core::Cid& cid, ByteView block) {
  if (cid.codec() == uint64_t(core::Multicodec::kRaw)) return std::vector<core::Cid>{};
  if (cid.codec() != uint64_t(core::Multicodec::kDagPb)) {
    return Status::unsupported(cid.to_string() + ": cannot walk codec " +
                               core::multicodec_name(cid.codec()));
  }
  auto pb = decode_dag_pb(block);
  if (!pb.ok()) return pb.status().with_context(cid.to_string());
  std::vector<core::Cid> out;
  out.reserve(pb->links.size());
  for (auto& l : pb->links) out.push_back(l.cid);
  return out;
}

Result<EntryKind> entry_kind(BlockSource& source, const core::Cid& cid) {
  if (cid.codec() == uint64_t(core::Multicodec::kRaw)) return EntryKind::kFile;
  IDN_ASSIGN_OR_RETURN(Node n, load_unixfs(source, cid));
  switch (n.unixfs.type) {
    case UnixfsType::kFile:
    case UnixfsType::kRaw:
      return EntryKind::kFile;
    case UnixfsType::kDirectory:
      return EntryKind::kDirectory;
    case UnixfsType::kHamtShard:
      return Status::unsupported(cid.to_string() + ": HAMT-sharded directories are not supported");
    default:
      return Status::unsupported(cid.to_string() + ": UnixFS type " +
                                 std::to_string(uint64_t(n.unixfs.type)) + " is not supported");
  }
}

Result<std::vector<DirEntry>> list_directory(BlockSource& source, const core::Cid& cid) {
  IDN_ASSIGN_OR_RETURN(Node n, load_unixfs(source, cid));
  if (n.unixfs.type != UnixfsType::kDirectory) {
    return Status::invalid_argument(cid.to_string() + " is not a UnixFS directory");
  }
  std::vector<DirEntry> out;
  for (auto& l : n.pb.links) {
    std::string name = l.name.value_or("");
    if (!safe_name(name)) {
      return Status::corruption(cid.to_string() + ": unsafe directory entry name '" + name + "'");
    }
    for (auto& e : out) {
      if (e.name == name) return Status::corruption(cid.to_string() + ": duplicate entry " + name);
    }
    out.push_back(DirEntry{name, l.cid, l.tsize.value_or(0)});
  }
  return out;
}

Status read_file(BlockSource& source, const core::Cid& cid,
                 const std::function<Status(ByteView)>& out) {
  IDN_ASSIGN_OR_RETURN(EntryKind kind, entry_kind(source, cid));
  if (kind != EntryKind::kFile) {
    return Status::invalid_argument(cid.to_string() + " is a directory, not a file");
  }
  auto n = emit(source, cid, out, 0);
  return n.ok() ? Status::ok() : n.status();
}

Result<Bytes> cat(BlockSource& source, const core::Cid& cid, uint64_t max_size) {
  Bytes all;
  IDN_RETURN_IF_ERROR(read_file(source, cid, [&](ByteView b) -> Status {
    if (all.size() + b.size() > max_size) {
      return Status::limit_exceeded(cid.to_string() + ": file larger than " +
                                    std::to_string(max_size) + " bytes");
    }
    all.insert(all.end(), b.begin(), b.end());
    return Status::ok();
  }));
  return all;
}

Status export_to(BlockSource& source, const core::Cid& cid, const fs::path& out) {
  return export_rec(source, cid, out, 0);
}

}  // namespace idn::store
