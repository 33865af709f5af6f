#include "identity/keystore.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "identity/peer_id.h"

namespace idn::identity {
namespace {

// scrypt cost: 2^14 * 8 * 128 = 16 MiB and ~50 ms per attempt, OpenSSL's own -scrypt default;
// it also stays under OpenSSL's default 32 MiB scrypt memory cap, so other tools can decrypt.
constexpr uint64_t kScryptN = uint64_t{1} << 14;
constexpr uint64_t kScryptR = 8;
constexpr uint64_t kScryptP = 1;
constexpr int kSaltLen = 16;
constexpr std::string_view kPeerIdLabel = "peer-id: ";
constexpr std::string_view kEncryptedBegin = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
constexpr std::string_view kPlainBegin = "-----BEGIN PRIVATE KEY-----";

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "no OpenSSL detail";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// A PEM block with encryption headers would otherwise make OpenSSL prompt on the terminal.
int no_password(char*, int, int, void*) {
  return -1;
}

using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;

std::string bio_to_string(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

// The peer ID recorded above the PEM block, if any.
std::optional<std::string> recorded_peer_id(std::string_view pem) {
  size_t pos = 0;
  while (pos < pem.size()) {
    size_t end = pem.find('\n', pos);
    if (end == std::string_view::npos) end = pem.size();
    std::string_view line = pem.substr(pos, end - pos);
    if (line.starts_with("-----BEGIN")) break;
    if (line.starts_with(kPeerIdLabel)) {
      std::string_view v = line.substr(kPeerIdLabel.size());
      while (!v.empty() && (v.back() == '\r' || v.back() == ' ')) v.remove_suffix(1);
      return std::string(v);
    }
    pos = end + 1;
  }
  return std::nullopt;
}

Status write_file_0600_atomic(const std::filesystem::path& path, std::string_view data,
                              bool overwrite) {
  std::error_code ec;
  if (!overwrite && std::filesystem::exists(path, ec)) {
    return Status::invalid_argument(path.string() + " already exists; refusing to overwrite a key");
  }
  std::filesystem::path dir = path.parent_path().empty() ? "." : path.parent_path();
  std::string tmp_name = ".";
  tmp_name.append(path.filename().string()).append(".tmp.XXXXXX");
  std::string tmpl = (dir / tmp_name).string();
  // mkstemp creates the file with mode 0600, so the key is never readable by others.
  int fd = ::mkstemp(tmpl.data());
  if (fd < 0) {
    return Status::io_error("cannot create a temporary file in " + dir.string() + ": " +
                            std::strerror(errno));
  }
  auto fail = [&](const std::string& what) {
    int err = errno;
    ::close(fd);
    ::unlink(tmpl.c_str());
    return Status::io_error(what + " " + tmpl + ": " + std::strerror(err));
  };
  if (::fchmod(fd, 0600) != 0) return fail("cannot chmod");
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("cannot write");
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("cannot fsync");
  if (::close(fd) != 0) {
    ::unlink(tmpl.c_str());
    return Status::io_error("cannot close " + tmpl + ": " + std::strerror(errno));
  }
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmpl.c_str());
    return Status::io_error("cannot rename " + tmpl + " to " + path.string() + ": " +
                            std::strerror(err));
  }
  // Make the rename itself durable.
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::ok();
}

}  // namespace

bool is_encrypted_key_pem(std::string_view pem) {
  return pem.find(kEncryptedBegin) != std::string_view::npos;
}

Result<std::string> encode_key_pem(const KeyPair& key, std::optional<std::string_view> passphrase) {
  BioPtr bio(BIO_new(BIO_s_mem()), BIO_free);
  if (!bio) return Status::internal("BIO_new failed");
  PKCS8_PRIV_KEY_INFO* p8inf = EVP_PKEY2PKCS8(key.evp());
  if (!p8inf) return Status::internal("cannot convert key to PKCS#8: " + openssl_error());
  std::unique_ptr<PKCS8_PRIV_KEY_INFO, decltype(&PKCS8_PRIV_KEY_INFO_free)> p8inf_guard(
      p8inf, PKCS8_PRIV_KEY_INFO_free);
  if (passphrase) {
    if (passphrase->empty()) return Status::invalid_argument("empty passphrase");
    unsigned char salt[kSaltLen];
    if (RAND_bytes(salt, kSaltLen) != 1) return Status::internal("RAND_bytes failed");
    X509_ALGOR* pbe = PKCS5_pbe2_set_scrypt(EVP_aes_256_cbc(), salt, kSaltLen, nullptr, kScryptN,
                                            kScryptR, kScryptP);
    if (!pbe) return Status::internal("cannot set up scrypt PBES2: " + openssl_error());
    X509_SIG* p8 =
        PKCS8_set0_pbe(passphrase->data(), static_cast<int>(passphrase->size()), p8inf, pbe);
    if (!p8) {
      X509_ALGOR_free(pbe);
      return Status::internal("PKCS#8 encryption failed: " + openssl_error());
    }
    int ok = PEM_write_bio_PKCS8(bio.get(), p8);
    X509_SIG_free(p8);
    if (ok != 1) return Status::internal("PEM encoding failed: " + openssl_error());
  } else if (PEM_write_bio_PKCS8_PRIV_KEY_INFO(bio.get(), p8inf) != 1) {
    return Status::internal("PEM encoding failed: " + openssl_error());
  }
  std::string out = "IDN node key (Ed25519, PKCS#8";
  out += passphrase ? ", encrypted: scrypt + AES-256-CBC)\n" : ", NOT encrypted)\n";
  out += std::string(kPeerIdLabel) + PeerId::from_public_key(key.public_key()).to_base58() + "\n";
  std::string pem = bio_to_string(bio.get());
  out += pem;
  OPENSSL_cleanse(pem.data(), pem.size());
  return out;
}

Result<KeyPair> decode_key_pem(std::string_view pem, std::optional<std::string_view> passphrase) {
  if (pem.size() > (1 << 20)) return Status::corruption("key file is implausibly large");
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  if (!bio) return Status::internal("BIO_new_mem_buf failed");
  PKCS8_PRIV_KEY_INFO* p8inf = nullptr;
  if (is_encrypted_key_pem(pem)) {
    if (!passphrase) {
      return Status::invalid_argument(std::string("key is encrypted: set ") + kPassphraseEnv +
                                      " or pass --passphrase-file");
    }
    X509_SIG* p8 = PEM_read_bio_PKCS8(bio.get(), nullptr, no_password, nullptr);
    if (!p8) return Status::corruption("malformed encrypted PKCS#8 PEM: " + openssl_error());
    p8inf = PKCS8_decrypt(p8, passphrase->data(), static_cast<int>(passphrase->size()));
    X509_SIG_free(p8);
    if (!p8inf) {
      return Status::invalid_argument(
          "cannot decrypt key: wrong passphrase, or the file is "
          "damaged (" +
          openssl_error() + ")");
    }
  } else if (pem.find(kPlainBegin) != std::string_view::npos) {
    p8inf = PEM_read_bio_PKCS8_PRIV_KEY_INFO(bio.get(), nullptr, no_password, nullptr);
    if (!p8inf) return Status::corruption("malformed PKCS#8 PEM: " + openssl_error());
  } else {
    return Status::corruption("no PKCS#8 private key PEM block found");
  }
  EVP_PKEY* pkey = EVP_PKCS82PKEY(p8inf);
  PKCS8_PRIV_KEY_INFO_free(p8inf);
  if (!pkey) return Status::corruption("PKCS#8 content is not a private key: " + openssl_error());
  auto kp = KeyPair::from_evp(pkey);
  EVP_PKEY_free(pkey);
  if (!kp.ok()) return kp.status();
  if (auto recorded = recorded_peer_id(pem)) {
    std::string actual = PeerId::from_public_key(kp->public_key()).to_base58();
    if (*recorded != actual) {
      return Status::corruption("key does not match the recorded peer-id " + *recorded +
                                " (it is " + actual + "): the file was modified or damaged");
    }
  }
  return kp;
}

Status save_key(const std::filesystem::path& path, const KeyPair& key,
                std::optional<std::string_view> passphrase, bool overwrite) {
  IDN_ASSIGN_OR_RETURN(std::string pem, encode_key_pem(key, passphrase));
  Status s = write_file_0600_atomic(path, pem, overwrite);
  OPENSSL_cleanse(pem.data(), pem.size());
  return s;
}

Result<KeyPair> load_key(const std::filesystem::path& path,
                         std::optional<std::string_view> passphrase) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return Status::not_found("no key file " + path.string());
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::io_error("cannot open " + path.string() + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::io_error("cannot read " + path.string());
  std::string pem = ss.str();
  auto kp = decode_key_pem(pem, passphrase);
  OPENSSL_cleanse(pem.data(), pem.size());
  if (!kp.ok()) return kp.status().with_context(path.string());
  return kp;
}

Result<std::optional<std::string>> resolve_passphrase(const std::filesystem::path& passphrase_file,
                                                      bool allow_none) {
  std::string pass;
  if (!passphrase_file.empty()) {
    std::ifstream in(passphrase_file);
    if (!in) {
      std::error_code ec;
      if (!std::filesystem::exists(passphrase_file, ec)) {
        return Status::not_found("no passphrase file " + passphrase_file.string());
      }
      return Status::io_error("cannot read passphrase file " + passphrase_file.string());
    }
    std::getline(in, pass);
    if (!pass.empty() && pass.back() == '\r') pass.pop_back();
    if (pass.empty()) {
      return Status::invalid_argument("passphrase file " + passphrase_file.string() +
                                      " has an empty first line");
    }
    return std::optional<std::string>(std::move(pass));
  }
  if (const char* env = std::getenv(kPassphraseEnv); env != nullptr) {
    if (*env == '\0') return Status::invalid_argument(std::string(kPassphraseEnv) + " is empty");
    return std::optional<std::string>(env);
  }
  if (allow_none) return std::optional<std::string>();
  return Status::invalid_argument(std::string("no passphrase: set ") + kPassphraseEnv +
                                  ", pass --passphrase-file FILE, or explicitly "
                                  "--insecure-no-passphrase");
}

}  // namespace idn::identity
