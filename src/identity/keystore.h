// The node's private key on disk (dissertation §7.1: "a node stores its public and encrypted
// private keys"): encrypted PKCS#8 PEM that stock OpenSSL can read, written atomically, mode 0600.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"
#include "identity/keys.h"

namespace idn::identity {

// Environment variable read for the key passphrase when no passphrase file is given.
inline constexpr const char* kPassphraseEnv = "IDN_PASSPHRASE";

// PEM text for `key`. With a passphrase: "ENCRYPTED PRIVATE KEY" (PKCS#8 PBES2, scrypt
// N=2^14 r=8 p=1 with a random 16-byte salt, AES-256-CBC), the same parameters as
// `openssl pkcs8 -topk8 -scrypt`, so `openssl pkey` can open it. Without: plain
// "PRIVATE KEY". Either way the PEM is preceded by a `peer-id:` line, checked on load so a
// damaged or swapped key is noticed (CBC has no MAC of its own).
Result<std::string> encode_key_pem(const KeyPair& key, std::optional<std::string_view> passphrase);
// Errors: InvalidArgument (encrypted but no passphrase given, or a wrong passphrase, or a
// damaged ciphertext: PKCS#8 cannot tell these apart), Corruption (not a PEM key, or the key
// does not match the recorded peer-id), Unsupported (not an Ed25519 key).
Result<KeyPair> decode_key_pem(std::string_view pem, std::optional<std::string_view> passphrase);
// True when `pem` holds an encrypted key.
bool is_encrypted_key_pem(std::string_view pem);

// Writes atomically (temporary file, fsync, rename) with permissions 0600. Refuses to replace an
// existing file unless `overwrite`. Errors: IOError, InvalidArgument (exists).
Status save_key(const std::filesystem::path& path, const KeyPair& key,
                std::optional<std::string_view> passphrase, bool overwrite = false);
// Errors: NotFound (no file), IOError, and those of decode_key_pem, prefixed with the path.
Result<KeyPair> load_key(const std::filesystem::path& path,
                         std::optional<std::string_view> passphrase);

// The passphrase to use: the first line of `passphrase_file` when given, else $IDN_PASSPHRASE,
// else nullopt when `allow_none` (loading a key that may be unencrypted, or the explicit
// --insecure-no-passphrase). Errors: InvalidArgument (nothing given and !allow_none, or an
// empty passphrase), NotFound/IOError (passphrase file).
Result<std::optional<std::string>> resolve_passphrase(const std::filesystem::path& passphrase_file,
                                                      bool allow_none);

}  // namespace idn::identity
