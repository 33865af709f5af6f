// The safetensors weight format, byte-exact with the published spec and the Python library:
// u64 little-endian header length N, N bytes of JSON header (padded with spaces to 8-byte
// alignment), then the tensors' bytes, contiguous and covering the buffer.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"
#include "core/tensor.h"

namespace idn::model {

// Same limit as the reference implementation: larger headers are refused before parsing.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

struct SafeTensors {
  std::map<std::string, core::Tensor> tensors;
  std::map<std::string, std::string> metadata;  // the optional "__metadata__" object
};

// Parses a whole safetensors file held in memory. Every error names the offending tensor:
// unknown dtype, shape/offset disagreement, overlapping, gapped or out-of-bounds offsets,
// duplicate names, malformed or oversized header.
Result<SafeTensors> parse_safetensors(ByteView file);
Result<SafeTensors> load_safetensors(const std::filesystem::path& path);

// Serializes deterministically, in the Python library's order: tensors sorted by dtype
// alignment (largest first, the reference Dtype enum order) then by name, so the data of each
// tensor stays aligned; "__metadata__" first (keys sorted) and omitted when empty; compact
// JSON with keys "dtype", "shape", "data_offsets". Fails if a tensor's bytes do not match
// its shape or a name is not valid UTF-8.
Result<Bytes> serialize_safetensors(const std::map<std::string, core::Tensor>& tensors,
                                    const std::map<std::string, std::string>& metadata = {});
// serialize_safetensors, then an atomic write (temp file, fsync, rename).
Status save_safetensors(const std::filesystem::path& path,
                        const std::map<std::string, core::Tensor>& tensors,
                        const std::map<std::string, std::string>& metadata = {});

// The names in the order serialize_safetensors lays out their data.
std::vector<std::string> safetensors_write_order(
    const std::map<std::string, core::Tensor>& tensors);

}  // namespace idn::model
