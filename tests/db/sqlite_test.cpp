// The shared SQLite wrapper: WAL on open, statements that bind and read back every type,
// transactions that commit or roll back as a whole, errors as Status.
#include "db/sqlite.h"

#include <gtest/gtest.h>
#include <unistd.h>

namespace idn::db {
namespace {

namespace fs = std::filesystem;

fs::path fresh_file(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("idn_db_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d / "t.sqlite";
}

int64_t count(Database& db) {
  auto s = db.prepare("SELECT COUNT(*) FROM t");
  EXPECT_TRUE(s.ok());
  auto row = s->step();
  EXPECT_TRUE(row.ok() && *row);
  return s->i64(0);
}

TEST(Sqlite, OpensInWalModeAndRoundTripsValues) {
  auto path = fresh_file("roundtrip");
  {
    auto db = Database::open(path);
    ASSERT_TRUE(db.ok()) << db.status().to_string();
    auto mode = (*db)->prepare("PRAGMA journal_mode");
    ASSERT_TRUE(mode.ok());
    ASSERT_TRUE(*mode->step());
    EXPECT_EQ(mode->text(0), "wal");
    ASSERT_TRUE((*db)->exec("CREATE TABLE t(b BLOB, i INTEGER, s TEXT)").is_ok());
    auto ins = (*db)->prepare("INSERT INTO t VALUES(?, ?, ?)");
    ASSERT_TRUE(ins.ok());
    Bytes blob{0, 1, 2, 255};
    ASSERT_TRUE(ins->bind(1, blob).bind(2, int64_t(-7)).bind_text(3, "x").run("insert").is_ok());
    ins->reset();
    // A reset statement runs again; an empty blob stays a (zero-length) value, not NULL.
    ASSERT_TRUE(ins->bind(1, ByteView{}).bind(2, ~uint64_t(0)).bind_null(3).run("insert").is_ok());
  }
  auto db = Database::open(path);
  ASSERT_TRUE(db.ok());
  auto s = (*db)->prepare("SELECT b, i, s FROM t ORDER BY rowid");
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(*s->step());
  EXPECT_EQ(s->blob(0), (Bytes{0, 1, 2, 255}));
  EXPECT_EQ(s->i64(1), -7);
  EXPECT_EQ(s->text(2), "x");
  ASSERT_TRUE(*s->step());
  EXPECT_FALSE(s->is_null(0));
  EXPECT_TRUE(s->blob(0).empty());
  EXPECT_EQ(s->u64(1), ~uint64_t(0));
  EXPECT_TRUE(s->is_null(2));
  EXPECT_FALSE(*s->step());
  EXPECT_EQ(*(*db)->integrity_check(), "ok");
}

TEST(Sqlite, TransactionRollsBackUnlessCommitted) {
  auto db = Database::open(fresh_file("tx"));
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE((*db)->exec("CREATE TABLE t(i INTEGER)").is_ok());
  {
    auto tx = Transaction::begin(**db);
    ASSERT_TRUE(tx.ok());
    ASSERT_TRUE((*db)->exec("INSERT INTO t VALUES(1)").is_ok());
  }  // dropped: rolled back
  EXPECT_EQ(count(**db), 0);
  {
    auto tx = Transaction::begin(**db);
    ASSERT_TRUE(tx.ok());
    ASSERT_TRUE((*db)->exec("INSERT INTO t VALUES(1); INSERT INTO t VALUES(2)").is_ok());
    ASSERT_TRUE(tx->commit().is_ok());
    EXPECT_FALSE(tx->commit().is_ok());  // a transaction finishes once
  }
  EXPECT_EQ(count(**db), 2);
}

TEST(Sqlite, ErrorsNameTheFileAndTheProblem) {
  auto path = fresh_file("errors");
  auto db = Database::open(path);
  ASSERT_TRUE(db.ok());
  auto bad = (*db)->prepare("SELEC nonsense");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kIOError);
  EXPECT_NE(bad.status().message().find(path.string()), std::string::npos);
  EXPECT_NE(bad.status().message().find("syntax error"), std::string::npos);
  ASSERT_TRUE((*db)->exec("CREATE TABLE t(i INTEGER PRIMARY KEY)").is_ok());
  ASSERT_TRUE((*db)->exec("INSERT INTO t VALUES(1)").is_ok());
  auto dup = (*db)->prepare("INSERT INTO t VALUES(1)");
  ASSERT_TRUE(dup.ok());
  Status st = dup->run("insert duplicate");
  EXPECT_EQ(st.code(), Code::kIOError);
  EXPECT_NE(st.message().find("UNIQUE"), std::string::npos);
  EXPECT_EQ(Database::open(path, {.synchronous = "OFF"}).status().code(), Code::kInvalidArgument);
}

TEST(Sqlite, NotADatabaseIsCorruption) {
  auto path = fresh_file("garbage");
  {
    FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::string junk(4096, 'x');
    std::fwrite(junk.data(), 1, junk.size(), f);
    std::fclose(f);
  }
  auto db = Database::open(path);
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), Code::kCorruption) << db.status().to_string();
}

}  // namespace
}  // namespace idn::db
