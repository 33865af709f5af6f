// Fuzzes the content-addressing codecs (CID, multihash, multibase, peer IDs): never a crash,
// and whatever is accepted round-trips to the same value.
// fuzz-deps: idn_core idn_identity
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/cid.h"
#include "core/multibase.h"
#include "core/multihash.h"
#include "fuzz_check.h"
#include "identity/keys.h"
#include "identity/peer_id.h"

using namespace idn;
using namespace idn::core;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ByteView in(data, size);
  std::string_view text(reinterpret_cast<const char*>(data), size);

  if (auto c = Cid::from_bytes(in); c.ok()) {
    Bytes b = c->to_bytes();
    CHECK(b.size() == size && std::equal(b.begin(), b.end(), in.begin()));
    auto p = Cid::parse(c->to_string());
    CHECK(p.ok() && *p == *c);
    CHECK(*Cid::parse(c->to_string(Multibase::kBase58Btc)) == c->to_v1());
  }
  if (auto c = Cid::parse(text); c.ok()) {
    auto b = Cid::from_bytes(c->to_bytes());
    CHECK(b.ok() && *b == *c);
  }
  if (auto mh = Multihash::from_bytes(in); mh.ok()) {
    CHECK(mh->bytes().size() == size);
    auto p = Multihash::parse(mh->to_base58());
    CHECK(p.ok() && *p == *mh);
  }
  if (auto d = multibase_decode(text); d.ok()) {
    auto base = multibase_of(text);
    CHECK(base.ok());
    auto again = multibase_decode(multibase_encode(*base, *d));
    CHECK(again.ok() && *again == *d);
  }
  if (auto id = identity::PeerId::parse(text); id.ok()) {
    CHECK(*identity::PeerId::parse(id->to_base58()) == *id);
    CHECK(*identity::PeerId::parse(id->to_cid_string()) == *id);
    if (auto key = id->extract_public_key(); key.ok()) CHECK(id->matches(*key));
  }
  if (auto key = identity::PublicKey::from_protobuf(in); key.ok()) {
    Bytes b = key->to_protobuf();
    CHECK(b.size() == size && std::equal(b.begin(), b.end(), in.begin()));
  }
  if (auto kp = identity::KeyPair::from_protobuf(in); kp.ok()) {
    Bytes b = kp->to_protobuf();
    CHECK(size == 68 || size == 100);  // 64-byte or legacy 96-byte Ed25519 data
    CHECK(std::equal(b.begin(), b.end(), in.begin()));
  }
  return 0;
}
