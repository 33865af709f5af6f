// A small SQLite wrapper shared by store/ and swap/: one Database per file (WAL journal,
// synchronous=NORMAL: a committed transaction survives a killed process; only power loss
// can drop the last ones), prepared statements that finalize themselves, RAII transactions,
// errors as Status. Not thread-safe: a Database and its statements belong to one thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/bytes.h"
#include "core/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace idn::db {

class Database;

// A prepared statement. Bind parameters (1-based), step until done, read columns (0-based).
// reset() makes it reusable (keeping it prepared is the cheap way to run it again).
class Statement {
 public:
  Statement(Statement&& o) noexcept : db_(o.db_), s_(o.s_) { o.s_ = nullptr; }
  Statement& operator=(Statement&& o) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  Statement& bind(int i, ByteView v);
  Statement& bind(int i, int64_t v);
  Statement& bind(int i, uint64_t v) { return bind(i, int64_t(v)); }
  Statement& bind_text(int i, std::string_view v);
  Statement& bind_null(int i);

  // true: a row is ready to read; false: done. Errors: IOError (with SQLite's message),
  // Corruption (a damaged database file).
  Result<bool> step();
  // Steps to completion, ignoring rows (INSERT/UPDATE/DELETE). `what` names the action in
  // the error message.
  Status run(std::string_view what);
  // Clears bindings and rewinds, so the statement can run again.
  void reset();

  int64_t i64(int col) const;
  uint64_t u64(int col) const { return uint64_t(i64(col)); }
  Bytes blob(int col) const;
  std::string text(int col) const;
  bool is_null(int col) const;

 private:
  friend class Database;
  Statement(Database* db, sqlite3_stmt* s) : db_(db), s_(s) {}
  Database* db_;
  sqlite3_stmt* s_;
};

struct OpenOptions {
  // busy_timeout for a file another process holds locked.
  int busy_timeout_ms = 5000;
  // "NORMAL" (the default: WAL commits are not fsynced one by one) or "FULL" (each commit
  // fsynced: survives power loss, costs a disk flush per transaction).
  std::string synchronous = "NORMAL";
  // locking_mode=EXCLUSIVE: this connection keeps the file locked until closed, which saves
  // the lock calls of every transaction; other processes cannot read it meanwhile.
  bool exclusive = false;
};

class Database {
 public:
  // Opens (creating) the database file and switches it to WAL. Errors: IOError, Corruption.
  static Result<std::unique_ptr<Database>> open(const std::filesystem::path& path,
                                                OpenOptions options = {});
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs one or more SQL statements without results (schema, pragmas).
  Status exec(std::string_view sql);
  Result<Statement> prepare(std::string_view sql);
  // Rows changed by the last INSERT/UPDATE/DELETE.
  int64_t changes() const;
  // "ok", or SQLite's list of problems (PRAGMA integrity_check).
  Result<std::string> integrity_check();
  const std::filesystem::path& path() const { return path_; }

  // Maps SQLite's last error to a Status: "<file>: <what>: <sqlite message>".
  Status error(std::string_view what, int rc) const;

 private:
  friend class Transaction;
  explicit Database(std::filesystem::path path) : path_(std::move(path)) {}
  // BEGIN IMMEDIATE, COMMIT and ROLLBACK, each prepared once: a group commit per tick would
  // otherwise parse them every time.
  enum TxStep { kBegin = 0, kCommit = 1, kRollback = 2 };
  Status tx_step(TxStep step);
  std::filesystem::path path_;
  sqlite3* db_ = nullptr;
  std::optional<Statement> tx_[3];
};

// BEGIN IMMEDIATE ... COMMIT; rolls back when destroyed uncommitted (an early return on an
// error leaves the database as it was). Transactions do not nest.
class Transaction {
 public:
  static Result<Transaction> begin(Database& db);
  Transaction(Transaction&& o) noexcept : db_(o.db_) { o.db_ = nullptr; }
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  ~Transaction();
  Status commit();

 private:
  explicit Transaction(Database* db) : db_(db) {}
  Database* db_;
};

}  // namespace idn::db
