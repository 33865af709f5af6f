#include "identity/keystore.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "identity/peer_id.h"

namespace idn::identity {
namespace {

namespace fs = std::filesystem;

class KeystoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("idn_keystore_test_" + std::to_string(rd()));
    fs::create_directories(dir_);
    key_ = std::make_unique<KeyPair>(*KeyPair::generate());
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  void write(const fs::path& p, const std::string& s) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << s;
  }

  fs::path dir_;
  std::unique_ptr<KeyPair> key_;
};

TEST_F(KeystoreTest, EncryptedRoundTripWithOwnerOnlyPermissions) {
  fs::path p = dir_ / "node.key";
  ASSERT_TRUE(save_key(p, *key_, "correct horse").is_ok());
  struct stat st {};
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string text = read(p);
  EXPECT_TRUE(is_encrypted_key_pem(text));
  EXPECT_NE(text.find("-----BEGIN ENCRYPTED PRIVATE KEY-----"), std::string::npos);
  EXPECT_NE(text.find(PeerId::from_public_key(key_->public_key()).to_base58()), std::string::npos);
  // The seed must not appear in clear.
  auto seed = key_->seed();
  EXPECT_EQ(text.find(hex_encode(seed)), std::string::npos);
  auto loaded = load_key(p, "correct horse");
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  EXPECT_EQ(loaded->public_key(), key_->public_key());
  EXPECT_EQ(loaded->seed(), key_->seed());
  // No leftover temporary files.
  int files = 0;
  for (auto& e : fs::directory_iterator(dir_)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
}

TEST_F(KeystoreTest, WrongOrMissingPassphraseIsAClearError) {
  fs::path p = dir_ / "node.key";
  ASSERT_TRUE(save_key(p, *key_, "right").is_ok());
  auto wrong = load_key(p, "wrong");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), Code::kInvalidArgument);
  EXPECT_NE(wrong.status().message().find("wrong passphrase"), std::string::npos)
      << wrong.status().message();
  auto none = load_key(p, std::nullopt);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("IDN_PASSPHRASE"), std::string::npos);
}

TEST_F(KeystoreTest, TamperedFilesAreRefusedNeverLoadedAsAnotherKey) {
  fs::path p = dir_ / "node.key";
  ASSERT_TRUE(save_key(p, *key_, "pw").is_ok());
  std::string good = read(p);
  size_t body = good.find("-----BEGIN ENCRYPTED PRIVATE KEY-----");
  body = good.find('\n', body) + 1;
  size_t end = good.find("-----END");
  // Flip every base64 character of the body in turn (to another valid base64 character).
  int refused = 0, total = 0;
  for (size_t i = body; i < end; i += 23) {
    if (good[i] == '\n') continue;
    std::string bad = good;
    bad[i] = bad[i] == 'A' ? 'B' : 'A';
    write(p, bad);
    auto r = load_key(p, "pw");
    ++total;
    if (!r.ok()) {
      ++refused;
      EXPECT_TRUE(r.status().code() == Code::kInvalidArgument ||
                  r.status().code() == Code::kCorruption)
          << r.status().to_string();
    } else {
      // A flip in an ignorable place (e.g. base64 padding bits) may still load, but only ever
      // as the original key.
      EXPECT_EQ(r->public_key(), key_->public_key());
    }
  }
  EXPECT_GT(refused, total / 2);
  // Swapping in another key under the same peer-id line is caught.
  auto other = KeyPair::generate();
  std::string other_pem = *encode_key_pem(*other, "pw");
  std::string spliced =
      good.substr(0, good.find("-----BEGIN")) + other_pem.substr(other_pem.find("-----BEGIN"));
  write(p, spliced);
  auto r = load_key(p, "pw");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  write(p, "garbage");
  EXPECT_EQ(load_key(p, "pw").status().code(), Code::kCorruption);
  write(p, "-----BEGIN ENCRYPTED PRIVATE KEY-----\n!!!!\n-----END ENCRYPTED PRIVATE KEY-----\n");
  EXPECT_EQ(load_key(p, "pw").status().code(), Code::kCorruption);
}

TEST_F(KeystoreTest, UnencryptedOnlyWhenAskedAndStillChecked) {
  fs::path p = dir_ / "plain.key";
  ASSERT_TRUE(save_key(p, *key_, std::nullopt).is_ok());
  std::string text = read(p);
  EXPECT_FALSE(is_encrypted_key_pem(text));
  EXPECT_NE(text.find("NOT encrypted"), std::string::npos);
  auto loaded = load_key(p, std::nullopt);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->public_key(), key_->public_key());
}

TEST_F(KeystoreTest, RefusesToOverwriteUnlessAsked) {
  fs::path p = dir_ / "node.key";
  ASSERT_TRUE(save_key(p, *key_, "a").is_ok());
  auto other = KeyPair::generate();
  EXPECT_EQ(save_key(p, *other, "a").code(), Code::kInvalidArgument);
  EXPECT_EQ(load_key(p, "a")->public_key(), key_->public_key());
  EXPECT_TRUE(save_key(p, *other, "a", /*overwrite=*/true).is_ok());
  EXPECT_EQ(load_key(p, "a")->public_key(), other->public_key());
  EXPECT_EQ(load_key(dir_ / "missing.key", "a").status().code(), Code::kNotFound);
  EXPECT_EQ(save_key(dir_ / "no_such_dir" / "k", *key_, "a").code(), Code::kIOError);
}

TEST_F(KeystoreTest, PassphraseComesFromFileThenEnvironment) {
  fs::path pf = dir_ / "pass.txt";
  write(pf, "from-file\nsecond line ignored\n");
  ::setenv(kPassphraseEnv, "from-env", 1);
  auto a = resolve_passphrase(pf, false);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(**a, "from-file");
  auto b = resolve_passphrase({}, false);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(**b, "from-env");
  ::unsetenv(kPassphraseEnv);
  auto c = resolve_passphrase({}, false);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("--insecure-no-passphrase"), std::string::npos);
  auto d = resolve_passphrase({}, true);
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d->has_value());
  write(pf, "\n");
  EXPECT_EQ(resolve_passphrase(pf, true).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(resolve_passphrase(dir_ / "nope", true).status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace idn::identity
