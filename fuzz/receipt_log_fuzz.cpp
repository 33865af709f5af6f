// fuzz-deps: idn_swap
// The ledger file's receipt records (swap/receipt_log.h): any blob either decodes or is refused
// as Corruption, and what decodes encodes back to the same bytes.
#include <cstdint>
#include <cstdlib>

#include "swap/receipt_log.h"

using namespace idn;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Bytes self{0x00, 0x24, 0x08, 0x01, 0x12, 0x20, 0xaa};
  static const Bytes peer{0x00, 0x24, 0x08, 0x01, 0x12, 0x20, 0xbb};
  ByteView blob(data, size);
  auto records = swap::decode_receipt_log(self, peer, blob);
  if (!records.ok()) {
    if (records.status().code() != Code::kCorruption) std::abort();
    return 0;
  }
  auto again = swap::encode_receipt_log(self, peer, *records);
  if (!again.ok() || *again != Bytes(blob.begin(), blob.end())) std::abort();
  return 0;
}
