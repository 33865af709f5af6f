// The service descriptor of dissertation §7.4: the JSON that says what an inference service
// is (name, description, input/output types and shapes, the model package's CID and hash,
// motif, exits). Its service ID is the sha2-256 multihash of its canonical serialisation
// (sorted keys, no whitespace), the key providers announce under in the DHT.
//
// {"description":"...","exits":[{"criterion":"confidence","name":"exit0","stage":0,
//  "threshold":0.9}],"format":"idn-service","inputs":[{"dtype":"F32","name":"image",
//  "shape":[1,28,28]}],"model":{"cid":"bafy...","hash":"Qm..."},"motif":"branchynet",
//  "name":"b-lenet","outputs":[{"dtype":"F32","name":"logits","shape":[10]}],"version":1}
//
// An optional "cost":{"bytes":N,"flops":M} says what hosting the service takes, and an optional
// "origin" names a ParallelNet model's genesis: {"role":"genesis"} for a genesis model,
// {"genesis":"Qm...","mask_seed":S,"p_test":P,"role":"generated"} for a model generated from one
// (Fig. 5.3). An optional "onnx":{"cid":"bafy..."} names the package's ONNX export (idn export
// onnx: a UnixFS directory of stage and exit graphs with manifest.json), which a browser fetches
// by CID. A descriptor without them serialises exactly as before they existed, so older
// service IDs stay valid.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/cid.h"
#include "core/multihash.h"
#include "core/status.h"
#include "core/tensor.h"
#include "model/model_spec.h"

namespace idn::ise {

inline constexpr std::string_view kDescriptorFormat = "idn-service";
inline constexpr int kDescriptorVersion = 1;
// Bounds on untrusted descriptors (they travel over the network and sit in the DHT).
inline constexpr size_t kMaxDescriptorBytes = 64 * 1024;
inline constexpr size_t kMaxNameLength = 128;
inline constexpr size_t kMaxDescriptionLength = 4096;
inline constexpr size_t kMaxTensors = 16;  // inputs, outputs
inline constexpr size_t kMaxRank = 8;
inline constexpr size_t kMaxExits = 32;
// FLOPs per sample: the model spec's own bound on a FLOP count.
inline constexpr uint64_t kMaxCostFlops = uint64_t{1} << 62;
// Parameter bytes: 16 TiB, beyond any model one machine can hold, far below any overflow when
// a node multiplies it by its worker count.
inline constexpr uint64_t kMaxCostBytes = uint64_t{1} << 44;

struct TensorType {
  std::string name;
  core::DType dtype = core::DType::kF32;
  std::vector<int64_t> shape;  // per sample, without the batch dimension
  friend bool operator==(const TensorType&, const TensorType&) = default;
};

struct ExitInfo {
  std::string name;
  int stage = 0;
  model::ExitCriterion criterion = model::ExitCriterion::kConfidence;
  double threshold = 1.0;
  friend bool operator==(const ExitInfo&, const ExitInfo&) = default;
};

// What one copy of the model costs to run, as its publisher computed it from the model spec.
struct ServiceCost {
  uint64_t flops = 0;  // per sample, the deepest path: every stage and the last exit head
  uint64_t bytes = 0;  // parameter bytes (the tensors in weights.safetensors)
  friend bool operator==(const ServiceCost&, const ServiceCost&) = default;
};

// Where a ParallelNet model comes from (dissertation ch. 5): a genesis model, or one generated
// from a genesis by a mask. Members generated from the same genesis form an ensemble (Fig. 5.4);
// (genesis, p_test, mask_seed) regenerate a member byte for byte.
enum class OriginRole { kGenesis, kGenerated };
std::string_view origin_role_name(OriginRole r);  // "genesis", "generated"

struct ServiceOrigin {
  OriginRole role = OriginRole::kGenesis;
  // Generated only (empty / absent for a genesis): the genesis's model hash, written as
  // model.hash is (so it equals the genesis's own descriptor's model.hash), the mask seed, and the
  // network-wide p it was drawn with (per-layer overrides, if any, are in model.json).
  std::string genesis_hash;
  std::optional<uint64_t> mask_seed;
  std::optional<double> p_test;
  friend bool operator==(const ServiceOrigin&, const ServiceOrigin&) = default;
};

// One line for people: "genesis model" or "generated from genesis Qm... at p_test 0.45, mask
// seed 3".
std::string describe(const ServiceOrigin& o);

struct ServiceDescriptor {
  std::string name;
  std::string description;
  std::vector<TensorType> inputs;
  std::vector<TensorType> outputs;
  std::string model_cid;   // root CID of the model package (UnixFS directory), text form
  std::string model_hash;  // sha2-256 multihash (base58) of the package's model.json bytes
  std::string motif;       // "branchynet" | "ddnn" | "parallelnet" | "plain"
  std::vector<ExitInfo> exits;
  std::optional<ServiceCost> cost;      // absent: unknown (descriptors published before it existed)
  std::optional<ServiceOrigin> origin;  // absent: not a ParallelNet genesis or generated model
  // Root CID (text form) of the package's ONNX export; absent: none published. Its manifest's
  // model.hash equals model_hash.
  std::optional<std::string> onnx_cid;
  friend bool operator==(const ServiceDescriptor&, const ServiceDescriptor&) = default;
};

// Checks every field; the message names the field and what was expected.
// Errors: InvalidArgument.
Status validate(const ServiceDescriptor& d);

nlohmann::json to_json(const ServiceDescriptor& d);
// Sorted keys, no whitespace, UTF-8: the bytes the service ID hashes. Validates first.
Result<std::string> canonical_json(const ServiceDescriptor& d);
// Parses and validates a descriptor from untrusted text (duplicate keys, unknown keys, deep
// nesting and oversize input are refused). Errors: InvalidArgument / Corruption.
Result<ServiceDescriptor> parse_descriptor(std::string_view text);
Result<ServiceDescriptor> from_json(const nlohmann::json& j);

// sha2-256 multihash of canonical_json(d).
Result<core::Multihash> service_id(const ServiceDescriptor& d);
// Text forms: bare base58btc ("Qm...", the IPFS-hash form the dissertation uses) and parsing
// of that or any multibase form. Errors: InvalidArgument.
std::string service_id_text(const core::Multihash& id);
Result<core::Multihash> parse_service_id(std::string_view text);
// True when `text` (received descriptor bytes) hashes to `id` and is in canonical form.
bool matches_service_id(std::string_view text, const core::Multihash& id);

// The model hash recorded in descriptors: sha2-256 multihash (base58) of model.json's bytes.
std::string model_hash_of(std::string_view model_json_text);

// The cost of a (validated) model spec: trunk_flops() and 4 bytes per F32 weight element.
ServiceCost model_cost(const model::ModelSpec& spec);

// The origin recorded in a spec's operating_point.parallelnet (written by fit_parallelnet and
// generate_parallelnet): nullopt when the spec has none (not a ParallelNet model, or one without
// the record). InvalidArgument naming the field when the record is there but malformed.
Result<std::optional<ServiceOrigin>> origin_from_model(const model::ModelSpec& spec);

// A descriptor for a model package: inputs, exits and motif from the spec, outputs = the
// logits [num_classes] (F32), model hash from the spec's canonical model.json text, cost from
// model_cost(), origin from origin_from_model().
// Errors: InvalidArgument (bad CID, description, a spec without inputs/exits, or a malformed
// ParallelNet record).
Result<ServiceDescriptor> descriptor_from_model(const model::ModelSpec& spec,
                                                std::string_view root_cid,
                                                std::string_view description);

}  // namespace idn::ise
