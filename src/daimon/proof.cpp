#include "daimon/proof.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <set>

#include <fmt/format.h>

#include "core/multihash.h"
#include "identity/peer_id.h"

namespace idn::daimon {
namespace {

static_assert(std::endian::native == std::endian::little, "encodings assume little-endian");

void put_u32(Bytes& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put_lp(Bytes& b, ByteView v) {
  put_u32(b, static_cast<uint32_t>(v.size()));
  b.insert(b.end(), v.begin(), v.end());
}
void put_lp(Bytes& b, std::string_view s) {
  put_lp(b, ByteView(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
}
template <class T>
void put_raw(Bytes& b, T v) {
  uint8_t tmp[sizeof(T)];
  std::memcpy(tmp, &v, sizeof(T));
  b.insert(b.end(), tmp, tmp + sizeof(T));
}
void put_tag(Bytes& b, std::string_view tag) {
  b.insert(b.end(), tag.begin(), tag.end());
  b.push_back(0);
}

Status check_with(ByteView public_key, ByteView message, ByteView signature, const char* what) {
  auto pk = identity::PublicKey::from_protobuf(public_key);
  if (!pk.ok()) {
    return Status::peer_misbehaved(
        fmt::format("{}: the public key is not usable: {}", what, pk.status().message()));
  }
  if (!pk->verify(message, signature)) {
    return Status::peer_misbehaved(fmt::format("{}: the signature does not verify", what));
  }
  return Status::ok();
}

// Field access for the strict readers.
class Reader {
 public:
  Reader(const nlohmann::json& j, std::string what) : j_(j), what_(std::move(what)) {}
  Status header(std::string_view format, std::initializer_list<const char*> fields) {
    if (!j_.is_object()) return bad("not a JSON object");
    for (const auto& [k, v] : j_.items()) {
      bool known = k == "format" || k == "version";
      for (const char* f : fields) known = known || k == f;
      if (!known) return bad(fmt::format("unknown field \"{}\"", k));
    }
    IDN_ASSIGN_OR_RETURN(auto f, string("format"));
    if (f != format) return bad(fmt::format("format \"{}\", expected \"{}\"", f, format));
    if (!j_.contains("version") || !j_["version"].is_number_unsigned() ||
        j_["version"].get<uint64_t>() != kProofVersion) {
      return bad(fmt::format("version must be {}", kProofVersion));
    }
    return Status::ok();
  }
  Result<std::string> string(const char* k) {
    if (!j_.contains(k) || !j_[k].is_string())
      return bad(fmt::format("\"{}\" must be a string", k));
    return j_[k].get<std::string>();
  }
  Result<Bytes> hex(const char* k) {
    IDN_ASSIGN_OR_RETURN(auto s, string(k));
    Bytes out;
    if (!hex_decode(s, out)) return bad(fmt::format("\"{}\" is not hex", k));
    return out;
  }
  Result<double> number(const char* k) {
    if (!j_.contains(k) || !j_[k].is_number())
      return bad(fmt::format("\"{}\" must be a number", k));
    double v = j_[k].get<double>();
    if (!std::isfinite(v)) return bad(fmt::format("\"{}\" is not finite", k));
    return v;
  }
  Result<bool> boolean(const char* k) {
    if (!j_.contains(k) || !j_[k].is_boolean())
      return bad(fmt::format("\"{}\" must be true or false", k));
    return j_[k].get<bool>();
  }
  Result<std::vector<float>> floats(const char* k) {
    if (!j_.contains(k) || !j_[k].is_array() || j_[k].empty()) {
      return bad(fmt::format("\"{}\" must be a non-empty array of numbers", k));
    }
    std::vector<float> out;
    for (const auto& v : j_[k]) {
      if (!v.is_number()) return bad(fmt::format("\"{}\" holds a non-number", k));
      float f = v.get<float>();
      if (!std::isfinite(f)) return bad(fmt::format("\"{}\" holds a non-finite value", k));
      out.push_back(f);
    }
    return out;
  }

 private:
  Status bad(const std::string& msg) const { return Status::invalid_argument(what_ + ": " + msg); }
  const nlohmann::json& j_;
  std::string what_;
};

std::string fmt_float(float f) {
  return fmt::format("{:.9g}", f);
}

// The peer ID text of a public key; empty when the key is unusable.
std::string peer_text(ByteView public_key) {
  auto pk = identity::PublicKey::from_protobuf(public_key);
  return pk.ok() ? identity::PeerId::from_public_key(*pk).to_string() : std::string();
}

// The "prover"/"verifier" field is not signed: it only names the key's peer ID, and must.
Status check_named(const nlohmann::json& j, const char* field, ByteView public_key) {
  auto text = j[field].get<std::string>();
  if (text != peer_text(public_key)) {
    return Status::invalid_argument(
        fmt::format("\"{}\" is \"{}\", not the peer ID of \"public_key\"", field, text));
  }
  return Status::ok();
}

}  // namespace

Bytes signed_bytes(const Proof& p) {
  Bytes b;
  put_tag(b, "idn-daimon-proof/1");
  put_lp(b, p.problem);
  put_lp(b, p.model);
  put_u32(b, static_cast<uint32_t>(p.y.size()));
  for (float f : p.y) put_raw(b, f);
  put_lp(b, p.public_key);
  return b;
}

Bytes signed_bytes(const Verification& v) {
  Bytes b;
  put_tag(b, "idn-daimon-verification/1");
  put_lp(b, v.proof_digest);
  put_lp(b, v.model);
  put_raw(b, v.distance);
  put_raw(b, v.d_c);
  put_raw(b, v.delta);
  b.push_back(v.holds ? 1 : 0);
  put_lp(b, v.public_key);
  return b;
}

Bytes digest(const Proof& p) {
  Bytes b = signed_bytes(p);
  b.insert(b.end(), p.signature.begin(), p.signature.end());
  auto h = core::sha256(b);
  return Bytes(h.begin(), h.end());
}

void sign(Proof& p, const identity::KeyPair& key) {
  p.public_key = key.public_key().to_protobuf();
  p.signature = key.sign(signed_bytes(p));
}

void sign(Verification& v, const identity::KeyPair& key) {
  v.public_key = key.public_key().to_protobuf();
  v.signature = key.sign(signed_bytes(v));
}

Status check_signature(const Proof& p) {
  return check_with(p.public_key, signed_bytes(p), p.signature, "proof");
}

Status check_signature(const Verification& v) {
  return check_with(v.public_key, signed_bytes(v), v.signature, "verification");
}

nlohmann::json to_json(const Proof& p) {
  nlohmann::json y = nlohmann::json::array();
  for (float f : p.y) y.push_back(nlohmann::json::parse(fmt_float(f)));
  std::string prover = peer_text(p.public_key);
  return {{"format", "idn-daimon-proof"},
          {"version", kProofVersion},
          {"problem", p.problem},
          {"model", p.model},
          {"y", y},
          {"prover", prover},
          {"public_key", hex_encode(p.public_key)},
          {"signature", hex_encode(p.signature)}};
}

nlohmann::json to_json(const Verification& v) {
  std::string verifier = peer_text(v.public_key);
  return {{"format", "idn-daimon-verification"},
          {"version", kProofVersion},
          {"proof", hex_encode(v.proof_digest)},
          {"model", v.model},
          {"distance", v.distance},
          {"d_c", v.d_c},
          {"delta", v.delta},
          {"holds", v.holds},
          {"verifier", verifier},
          {"public_key", hex_encode(v.public_key)},
          {"signature", hex_encode(v.signature)}};
}

Result<Proof> proof_from_json(const nlohmann::json& j) {
  Reader r(j, "proof");
  IDN_RETURN_IF_ERROR(
      r.header("idn-daimon-proof", {"problem", "model", "y", "prover", "public_key", "signature"}));
  Proof p;
  IDN_ASSIGN_OR_RETURN(p.problem, r.string("problem"));
  IDN_ASSIGN_OR_RETURN(p.model, r.string("model"));
  IDN_ASSIGN_OR_RETURN(p.y, r.floats("y"));
  IDN_ASSIGN_OR_RETURN(p.public_key, r.hex("public_key"));
  IDN_ASSIGN_OR_RETURN(p.signature, r.hex("signature"));
  IDN_RETURN_IF_ERROR(r.string("prover").status());
  IDN_RETURN_IF_ERROR(check_named(j, "prover", p.public_key).with_context("proof"));
  return p;
}

Result<Verification> verification_from_json(const nlohmann::json& j) {
  Reader r(j, "verification");
  IDN_RETURN_IF_ERROR(
      r.header("idn-daimon-verification", {"proof", "model", "distance", "d_c", "delta", "holds",
                                           "verifier", "public_key", "signature"}));
  Verification v;
  IDN_ASSIGN_OR_RETURN(v.proof_digest, r.hex("proof"));
  IDN_ASSIGN_OR_RETURN(v.model, r.string("model"));
  IDN_ASSIGN_OR_RETURN(v.distance, r.number("distance"));
  IDN_ASSIGN_OR_RETURN(v.d_c, r.number("d_c"));
  IDN_ASSIGN_OR_RETURN(v.delta, r.number("delta"));
  IDN_ASSIGN_OR_RETURN(v.holds, r.boolean("holds"));
  IDN_ASSIGN_OR_RETURN(v.public_key, r.hex("public_key"));
  IDN_ASSIGN_OR_RETURN(v.signature, r.hex("signature"));
  IDN_RETURN_IF_ERROR(r.string("verifier").status());
  IDN_RETURN_IF_ERROR(check_named(j, "verifier", v.public_key).with_context("verification"));
  return v;
}

}  // namespace idn::daimon
