#include "db/sqlite.h"

#include <sqlite3.h>

#include <mutex>

namespace idn::db {

Statement& Statement::operator=(Statement&& o) noexcept {
  if (this != &o) {
    sqlite3_finalize(s_);
    db_ = o.db_;
    s_ = o.s_;
    o.s_ = nullptr;
  }
  return *this;
}

Statement::~Statement() {
  sqlite3_finalize(s_);
}

Statement& Statement::bind(int i, ByteView v) {
  // A zero-length blob, not NULL: an empty value is still a value.
  static const uint8_t kEmpty = 0;
  sqlite3_bind_blob(s_, i, v.empty() ? &kEmpty : v.data(), int(v.size()), SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::bind(int i, int64_t v) {
  sqlite3_bind_int64(s_, i, v);
  return *this;
}

Statement& Statement::bind_text(int i, std::string_view v) {
  sqlite3_bind_text(s_, i, v.data(), int(v.size()), SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::bind_null(int i) {
  sqlite3_bind_null(s_, i);
  return *this;
}

Result<bool> Statement::step() {
  int rc = sqlite3_step(s_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return db_->error(sqlite3_sql(s_), rc);
}

Status Statement::run(std::string_view what) {
  for (;;) {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) {
      Status st = db_->error(what, rc);
      sqlite3_reset(s_);
      return st;
    }
  }
  return Status::ok();
}

void Statement::reset() {
  sqlite3_reset(s_);
  sqlite3_clear_bindings(s_);
}

int64_t Statement::i64(int col) const {
  return sqlite3_column_int64(s_, col);
}

Bytes Statement::blob(int col) const {
  auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(s_, col));
  return p ? Bytes(p, p + sqlite3_column_bytes(s_, col)) : Bytes{};
}

std::string Statement::text(int col) const {
  auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, col));
  return p ? std::string(p, size_t(sqlite3_column_bytes(s_, col))) : std::string{};
}

bool Statement::is_null(int col) const {
  return sqlite3_column_type(s_, col) == SQLITE_NULL;
}

Result<std::unique_ptr<Database>> Database::open(const std::filesystem::path& path,
                                                 OpenOptions options) {
  if (options.synchronous != "NORMAL" && options.synchronous != "FULL") {
    return Status::invalid_argument("sqlite synchronous must be NORMAL or FULL, not '" +
                                    options.synchronous + "'");
  }
  // SQLite counts every allocation under one process-wide mutex unless told not to; nothing
  // here reads those counts, and threads that each use their own databases (the simulator's
  // partitions, a node's stores) then contend on that lock for nothing. Must precede SQLite's
  // initialisation; if something initialised it first, the call fails and changes nothing.
  static std::once_flag configured;
  std::call_once(configured, [] { (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
  std::unique_ptr<Database> db(new Database(path));
  if (sqlite3_open(path.c_str(), &db->db_) != SQLITE_OK) {
    return Status::io_error(
        path.string() + ": cannot open: " + (db->db_ ? sqlite3_errmsg(db->db_) : "out of memory"));
  }
  sqlite3_busy_timeout(db->db_, options.busy_timeout_ms);
  // Exclusive locking before WAL: the WAL index then lives in heap memory, not a -shm file.
  if (options.exclusive) IDN_RETURN_IF_ERROR(db->exec("PRAGMA locking_mode=EXCLUSIVE;"));
  IDN_RETURN_IF_ERROR(
      db->exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=" + options.synchronous + ";"));
  return db;
}

Database::~Database() {
  for (auto& st : tx_) st.reset();  // finalized before the connection closes
  if (db_) sqlite3_close_v2(db_);
}

Status Database::tx_step(TxStep step) {
  static constexpr std::string_view kSql[] = {"BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"};
  std::optional<Statement>& st = tx_[step];
  if (!st) {
    IDN_ASSIGN_OR_RETURN(auto prepared, prepare(kSql[step]));
    st.emplace(std::move(prepared));
  }
  st->reset();
  return st->run(kSql[step]);
}

Status Database::error(std::string_view what, int rc) const {
  std::string m = path_.string() + ": " + std::string(what) + ": " + sqlite3_errmsg(db_);
  int primary = rc & 0xff;
  if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) return Status::corruption(m);
  return Status::io_error(m);
}

Status Database::exec(std::string_view sql) {
  char* err = nullptr;
  std::string s(sql);
  int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string m = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    int primary = rc & 0xff;
    std::string full = path_.string() + ": " + m;
    return primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB ? Status::corruption(full)
                                                                 : Status::io_error(full);
  }
  return Status::ok();
}

Result<Statement> Database::prepare(std::string_view sql) {
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.data(), int(sql.size()), &s, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(s);
    return error("prepare '" + std::string(sql) + "'", rc);
  }
  return Statement(this, s);
}

int64_t Database::changes() const {
  return sqlite3_changes(db_);
}

Result<std::string> Database::integrity_check() {
  IDN_ASSIGN_OR_RETURN(auto s, prepare("PRAGMA integrity_check"));
  std::string out;
  for (;;) {
    IDN_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    if (!out.empty()) out += "; ";
    out += s.text(0);
  }
  return out;
}

Result<Transaction> Transaction::begin(Database& db) {
  IDN_RETURN_IF_ERROR(db.tx_step(Database::kBegin));
  return Transaction(&db);
}

Transaction::~Transaction() {
  if (db_) (void)db_->tx_step(Database::kRollback);
}

Status Transaction::commit() {
  if (!db_) return Status::internal("transaction already finished");
  Database* db = db_;
  db_ = nullptr;
  Status st = db->tx_step(Database::kCommit);
  if (!st.is_ok()) (void)db->tx_step(Database::kRollback);
  return st;
}

}  // namespace idn::db
