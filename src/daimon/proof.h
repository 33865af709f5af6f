// Proof-of-improvement (dissertation §6.5): a prover's signed claim {digest(M), f(M(Z)), pk}
// and a verifier's signed verdict on it, in a canonical, versioned encoding. The signed bytes
// are binary and fixed by this header (not the JSON text, whose number formatting varies):
//
//   proof v1:        "idn-daimon-proof/1\0" || lp(problem) || lp(model) || u32(n) ||
//                    n x f32 (y, little-endian IEEE 754) || lp(public key)
//   verification v1: "idn-daimon-verification/1\0" || lp(proof digest) || lp(model) ||
//                    f64(distance) || f64(d_c) || f64(delta) || u8(holds) || lp(public key)
//
// lp(b) = u32(len(b)) || b; integers little-endian. problem: the problem's ID (hex SHA-256 of
// its problem.json); model: the package's root CID text; public key: the libp2p protobuf
// encoding (Ed25519); proof digest: SHA-256 of the proof's signed bytes and signature. The
// JSON forms carry the same fields (floats printed with 9 significant digits, which round-trip
// a float32 exactly). Pure functions: any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/bytes.h"
#include "core/status.h"
#include "identity/keys.h"

namespace idn::daimon {

inline constexpr uint32_t kProofVersion = 1;

struct Proof {
  std::string problem;   // hex SHA-256 of problem.json
  std::string model;     // root CID of the model package (its serving files)
  std::vector<float> y;  // f(M(Z)), unit length
  Bytes public_key;      // the prover's, libp2p protobuf encoding
  Bytes signature;       // Ed25519 over signed_bytes()
};

struct Verification {
  Bytes proof_digest;  // SHA-256 of the proof's signed bytes || signature
  std::string model;
  double distance = 0;  // d(proof.y, y_t)
  double d_c = 0, delta = 0;
  bool holds = false;  // distance < d_c - delta and every other check passed
  Bytes public_key;    // the verifier's
  Bytes signature;
};

Bytes signed_bytes(const Proof& p);
Bytes signed_bytes(const Verification& v);
// SHA-256 of signed_bytes(p) || p.signature.
Bytes digest(const Proof& p);

// PROVE's last step: fills public_key and signature.
void sign(Proof& p, const identity::KeyPair& key);
void sign(Verification& v, const identity::KeyPair& key);
// PeerMisbehaved naming what is wrong: an unusable public key, a bad signature.
Status check_signature(const Proof& p);
Status check_signature(const Verification& v);

nlohmann::json to_json(const Proof& p);
nlohmann::json to_json(const Verification& v);
// Strict: unknown format or version, missing or extra fields, bad hex, non-finite values are
// InvalidArgument naming the field. Signatures are not checked here.
Result<Proof> proof_from_json(const nlohmann::json& j);
Result<Verification> verification_from_json(const nlohmann::json& j);

}  // namespace idn::daimon
