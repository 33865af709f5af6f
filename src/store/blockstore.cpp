#include "store/blockstore.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <random>
#include <set>

#include "db/sqlite.h"
#include "store/exporter.h"

namespace idn::store {

namespace fs = std::filesystem;

namespace {

Status write_durably(const fs::path& tmp_dir, const fs::path& final_path, ByteView data,
                     bool sync) {
  static std::atomic<uint64_t> counter{0};
  fs::path tmp = tmp_dir / (std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".tmp");
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::io_error(tmp.string() + ": cannot create: " + std::strerror(errno));
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      Status st = Status::io_error(tmp.string() + ": write failed: " + std::strerror(errno));
      ::close(fd);
      ::unlink(tmp.c_str());
      return st;
    }
    off += size_t(n);
  }
  if ((sync && ::fsync(fd) != 0) || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return Status::io_error(tmp.string() + ": fsync/close failed");
  }
  std::error_code ec;
  fs::create_directories(final_path.parent_path(), ec);
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return Status::io_error(final_path.string() + ": rename failed: " + std::strerror(errno));
  }
  int dfd =
      sync ? ::open(final_path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::ok();
}

Result<Bytes> read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return Status::not_found(p.string() + ": missing");
  Bytes b((std::istreambuf_iterator<char>(f)), {});
  if (f.bad()) return Status::io_error(p.string() + ": read failed");
  return b;
}

}  // namespace

Result<std::unique_ptr<Blockstore>> Blockstore::open(const fs::path& dir, BlockstoreOptions o) {
  std::unique_ptr<Blockstore> bs(new Blockstore(dir, o));
  IDN_RETURN_IF_ERROR(bs->init());
  return bs;
}

Blockstore::~Blockstore() = default;

fs::path Blockstore::block_path(const core::Cid& cid) const {
  std::string name = cid.to_string();
  return dir_ / "blocks" / name.substr(name.size() - 2) / name;
}

uint64_t Blockstore::next_tick() {
  return ++tick_;
}

Status Blockstore::init() {
  std::error_code ec;
  fs::create_directories(dir_ / "blocks", ec);
  fs::create_directories(dir_ / "tmp", ec);
  if (ec) return Status::io_error(dir_.string() + ": cannot create store: " + ec.message());
  // A temp file is by construction unfinished: the writer renames it away when complete.
  for (fs::directory_iterator it(dir_ / "tmp", ec), end; !ec && it != end; it.increment(ec)) {
    fs::remove(it->path(), ec);
    ++stale_temp_removed_;
  }
  IDN_ASSIGN_OR_RETURN(db_, db::Database::open(dir_ / "index.sqlite"));
  IDN_RETURN_IF_ERROR(
      db_->exec("CREATE TABLE IF NOT EXISTS blocks(cid BLOB PRIMARY KEY, size INTEGER NOT NULL,"
                " last_access INTEGER NOT NULL);"
                "CREATE INDEX IF NOT EXISTS blocks_lru ON blocks(last_access);"
                "CREATE TABLE IF NOT EXISTS pins(root BLOB PRIMARY KEY);"
                "CREATE TABLE IF NOT EXISTS pinned(root BLOB NOT NULL, cid BLOB NOT NULL,"
                " PRIMARY KEY(root, cid));"
                "CREATE INDEX IF NOT EXISTS pinned_cid ON pinned(cid);"));
  {
    IDN_ASSIGN_OR_RETURN(auto s, db_->prepare("SELECT COALESCE(MAX(last_access), 0) FROM blocks"));
    IDN_ASSIGN_OR_RETURN(bool row, s.step());
    if (row) tick_ = s.u64(0);
  }
  // Index rows whose file is gone (deleted by hand, or lost in a crash) are dropped.
  std::set<Bytes> indexed;
  {
    std::vector<Bytes> gone;
    IDN_ASSIGN_OR_RETURN(auto s, db_->prepare("SELECT cid FROM blocks"));
    for (;;) {
      IDN_ASSIGN_OR_RETURN(bool row, s.step());
      if (!row) break;
      Bytes key = s.blob(0);
      auto cid = core::Cid::from_bytes(key);
      if (!cid.ok() || !fs::exists(block_path(*cid))) {
        gone.push_back(key);
      } else {
        indexed.insert(key);
      }
    }
    IDN_ASSIGN_OR_RETURN(auto d, db_->prepare("DELETE FROM blocks WHERE cid = ?"));
    for (auto& k : gone) {
      IDN_RETURN_IF_ERROR(d.bind(1, k).run("drop missing block"));
      d.reset();
    }
  }
  // Files the index misses (a crash between rename and insert) are verified and indexed.
  IDN_ASSIGN_OR_RETURN(
      auto ins,
      db_->prepare("INSERT OR IGNORE INTO blocks(cid, size, last_access) VALUES(?, ?, ?)"));
  for (fs::recursive_directory_iterator it(dir_ / "blocks", ec), end; !ec && it != end;
       it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    auto cid = core::Cid::parse(it->path().filename().string());
    if (cid.ok() && indexed.count(cid->to_bytes())) continue;
    auto data = read_all(it->path());
    if (cid.ok() && data.ok() && cid->verifies(*data)) {
      IDN_RETURN_IF_ERROR(ins.bind(1, cid->to_bytes())
                              .bind(2, int64_t(data->size()))
                              .bind(3, int64_t(next_tick()))
                              .run("index orphan block"));
      ins.reset();
    } else {
      std::error_code rm;
      fs::remove(it->path(), rm);
      ++corrupt_dropped_;
    }
  }
  return Status::ok();
}

Status Blockstore::put_block(const core::Cid& cid, ByteView data) {
  if (!cid.verifies(data)) {
    return Status::corruption("refusing block " + cid.to_string() + ": data does not match hash");
  }
  if (!has(cid) || !fs::exists(block_path(cid))) {
    IDN_RETURN_IF_ERROR(write_durably(dir_ / "tmp", block_path(cid), data, options_.sync_writes));
  }
  IDN_ASSIGN_OR_RETURN(auto s, db_->prepare("INSERT INTO blocks(cid, size, last_access)"
                                            " VALUES(?, ?, ?) ON CONFLICT(cid) DO UPDATE SET"
                                            " last_access = excluded.last_access"));
  IDN_RETURN_IF_ERROR(s.bind(1, cid.to_bytes())
                          .bind(2, int64_t(data.size()))
                          .bind(3, int64_t(next_tick()))
                          .run("insert block"));
  if (options_.max_bytes > 0 && stats().bytes > options_.max_bytes) {
    IDN_RETURN_IF_ERROR(evict_to(options_.max_bytes));
  }
  return Status::ok();
}

Result<Bytes> Blockstore::get_block(const core::Cid& cid) {
  if (!has(cid)) return Status::not_found("block " + cid.to_string() + " not in the store");
  auto data = read_all(block_path(cid));
  if (!data.ok()) {
    (void)remove(cid);
    return Status::not_found("block " + cid.to_string() + " is indexed but its file is gone");
  }
  if (!cid.verifies(*data)) {
    ++corrupt_dropped_;
    (void)remove(cid);
    return Status::corruption("block " + cid.to_string() +
                              " on disk does not match its hash; deleted it");
  }
  IDN_ASSIGN_OR_RETURN(auto s, db_->prepare("UPDATE blocks SET last_access = ? WHERE cid = ?"));
  IDN_RETURN_IF_ERROR(s.bind(1, int64_t(next_tick())).bind(2, cid.to_bytes()).run("touch"));
  return data;
}

bool Blockstore::row_exists(const char* sql, const core::Cid& cid) {
  auto s = db_->prepare(sql);
  if (!s.ok()) return false;
  auto row = s->bind(1, cid.to_bytes()).step();
  return row.ok() && *row;
}

bool Blockstore::has(const core::Cid& cid) {
  return row_exists("SELECT 1 FROM blocks WHERE cid = ?", cid);
}

Status Blockstore::remove(const core::Cid& cid) {
  IDN_ASSIGN_OR_RETURN(auto s, db_->prepare("DELETE FROM blocks WHERE cid = ?"));
  IDN_RETURN_IF_ERROR(s.bind(1, cid.to_bytes()).run("remove"));
  std::error_code ec;
  fs::remove(block_path(cid), ec);
  return Status::ok();
}

Status Blockstore::pin(const core::Cid& root) {
  // Walk first, so a pin is recorded only for a complete DAG.
  std::vector<core::Cid> stack{root};
  std::set<core::Cid> seen;
  while (!stack.empty()) {
    core::Cid c = stack.back();
    stack.pop_back();
    if (!seen.insert(c).second) continue;
    auto data = get_block(c);
    if (!data.ok()) return data.status().with_context("pin " + root.to_string());
    IDN_ASSIGN_OR_RETURN(auto links, block_links(c, *data));
    for (auto& l : links) stack.push_back(l);
  }
  IDN_ASSIGN_OR_RETURN(auto tx, db::Transaction::begin(*db_));
  IDN_ASSIGN_OR_RETURN(auto p, db_->prepare("INSERT OR IGNORE INTO pins(root) VALUES(?)"));
  IDN_RETURN_IF_ERROR(p.bind(1, root.to_bytes()).run("pin"));
  IDN_ASSIGN_OR_RETURN(auto s,
                       db_->prepare("INSERT OR IGNORE INTO pinned(root, cid) VALUES(?, ?)"));
  for (auto& c : seen) {
    IDN_RETURN_IF_ERROR(s.bind(1, root.to_bytes()).bind(2, c.to_bytes()).run("pin block"));
    s.reset();
  }
  return tx.commit();
}

Status Blockstore::unpin(const core::Cid& root) {
  IDN_ASSIGN_OR_RETURN(auto p, db_->prepare("DELETE FROM pins WHERE root = ?"));
  IDN_RETURN_IF_ERROR(p.bind(1, root.to_bytes()).run("unpin"));
  if (db_->changes() == 0) return Status::not_found(root.to_string() + " is not pinned");
  IDN_ASSIGN_OR_RETURN(auto s, db_->prepare("DELETE FROM pinned WHERE root = ?"));
  return s.bind(1, root.to_bytes()).run("unpin blocks");
}

std::vector<core::Cid> Blockstore::pins() {
  std::vector<core::Cid> out;
  auto s = db_->prepare("SELECT root FROM pins ORDER BY root");
  if (!s.ok()) return out;
  for (auto row = s->step(); row.ok() && *row; row = s->step()) {
    auto c = core::Cid::from_bytes(s->blob(0));
    if (c.ok()) out.push_back(*c);
  }
  return out;
}

bool Blockstore::is_pinned_block(const core::Cid& cid) {
  return row_exists("SELECT 1 FROM pinned WHERE cid = ? LIMIT 1", cid);
}

Status Blockstore::evict_to(uint64_t target) {
  uint64_t used = stats().bytes;
  while (used > target) {
    std::vector<std::pair<Bytes, uint64_t>> victims;
    {
      IDN_ASSIGN_OR_RETURN(auto s, db_->prepare("SELECT cid, size FROM blocks WHERE NOT EXISTS"
                                                " (SELECT 1 FROM pinned WHERE pinned.cid ="
                                                " blocks.cid) ORDER BY last_access LIMIT 64"));
      for (;;) {
        IDN_ASSIGN_OR_RETURN(bool row, s.step());
        if (!row) break;
        victims.emplace_back(s.blob(0), s.u64(1));
      }
    }
    if (victims.empty()) break;  // everything left is pinned
    for (auto& [key, size] : victims) {
      if (used <= target) break;
      auto cid = core::Cid::from_bytes(key);
      if (cid.ok()) {
        IDN_RETURN_IF_ERROR(remove(*cid));
      } else {
        IDN_ASSIGN_OR_RETURN(auto d, db_->prepare("DELETE FROM blocks WHERE cid = ?"));
        IDN_RETURN_IF_ERROR(d.bind(1, key).run("evict"));
      }
      used -= std::min(used, size);
      ++evicted_;
    }
  }
  return Status::ok();
}

BlockstoreStats Blockstore::stats() {
  BlockstoreStats st;
  if (auto s = db_->prepare("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM blocks"); s.ok()) {
    if (auto row = s->step(); row.ok() && *row) {
      st.blocks = s->u64(0);
      st.bytes = s->u64(1);
    }
  }
  if (auto s = db_->prepare("SELECT COUNT(*) FROM pins"); s.ok()) {
    if (auto row = s->step(); row.ok() && *row) st.pinned_roots = s->u64(0);
  }
  st.evicted = evicted_;
  st.corrupt_dropped = corrupt_dropped_;
  st.stale_temp_removed = stale_temp_removed_;
  return st;
}

}  // namespace idn::store
