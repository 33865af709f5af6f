// The ledger file's compact receipt records: a run round-trips, rebuilt against the pair; a
// receipt outside the pair, a truncated or malformed blob are refused by name.
#include "swap/receipt_log.h"

#include <gtest/gtest.h>

#include "swap_test_util.h"

namespace idn::swap {
namespace {

using testing::id_of;
using testing::key;

HeldReceipt held(const Bytes& server, const Bytes& signer, uint64_t id, uint64_t seq,
                 Bytes service = {0x12, 0x20, 9}) {
  HeldReceipt h;
  h.receipt.request_id = id;
  h.receipt.service_id = std::move(service);
  h.receipt.operations = 1000 * id + 7;
  h.receipt.server = server;
  h.receipt.signer = signer;
  h.receipt.unix_ms = 1'700'000'000'000 + id;
  h.sequence = seq;
  return h;
}

TEST(ReceiptLog, ARunInBothDirectionsRoundTrips) {
  const Bytes a = id_of(key(1)), b = id_of(key(2));
  std::vector<HeldReceipt> rs{held(a, b, 1, 1), held(b, a, UINT64_MAX, 2, {}),
                              held(a, b, 3, 3, Bytes(255, 0xab))};
  auto blob = encode_receipt_log(a, b, rs);
  ASSERT_TRUE(blob.ok()) << blob.status().to_string();
  auto back = decode_receipt_log(a, b, *blob);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, rs);
  // Seen from the other member the same bytes name the other server.
  auto other = decode_receipt_log(b, a, *blob);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ((*other)[0].receipt.server, b);
  EXPECT_TRUE(decode_receipt_log(a, b, Bytes{})->empty());
}

TEST(ReceiptLog, ReceiptsOutsideThePairOrOversizedAreRefused) {
  const Bytes a = id_of(key(1)), b = id_of(key(2)), c = id_of(key(3));
  std::vector<HeldReceipt> outside{held(a, c, 1, 1)};
  EXPECT_EQ(encode_receipt_log(a, b, outside).status().code(), Code::kInvalidArgument);
  std::vector<HeldReceipt> big{held(a, b, 1, 1, Bytes(256, 1))};
  EXPECT_EQ(encode_receipt_log(a, b, big).status().code(), Code::kInvalidArgument);
}

TEST(ReceiptLog, TruncatedOrMalformedBlobsAreCorruption) {
  const Bytes a = id_of(key(1)), b = id_of(key(2));
  std::vector<HeldReceipt> rs{held(a, b, 1, 1), held(b, a, 2, 2)};
  Bytes blob = *encode_receipt_log(a, b, rs);
  for (size_t cut = 1; cut < blob.size(); ++cut) {
    Bytes part(blob.begin(), blob.begin() + static_cast<std::ptrdiff_t>(cut));
    auto r = decode_receipt_log(a, b, part);
    // A cut at a record boundary is a shorter valid run; anywhere else it is refused.
    if (r.ok()) {
      EXPECT_EQ(r->size(), 1u) << "cut at " << cut;
    } else {
      EXPECT_EQ(r.status().code(), Code::kCorruption) << "cut at " << cut;
    }
  }
  Bytes flags = blob;
  flags[0] = 0x80;
  auto r = decode_receipt_log(a, b, flags);
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_NE(r.status().message().find("flags"), std::string::npos);
}

}  // namespace
}  // namespace idn::swap
