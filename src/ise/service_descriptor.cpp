#include "ise/service_descriptor.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/multibase.h"
#include "model/strict_json.h"

namespace idn::ise {
namespace {

using nlohmann::json;

Status bad(std::string m) {
  return Status::invalid_argument("service descriptor: " + m);
}

bool valid_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.';
}

Status check_utf8(const std::string& s, const std::string& field) {
  try {
    (void)json(s).dump();
  } catch (const json::exception&) {
    return bad(field + " is not valid UTF-8");
  }
  return Status::ok();
}

Status validate_tensors(const std::vector<TensorType>& ts, const std::string& what) {
  if (ts.empty()) return bad(what + " must list at least one tensor");
  if (ts.size() > kMaxTensors)
    return bad(what + " lists " + std::to_string(ts.size()) + " tensors, at most " +
               std::to_string(kMaxTensors) + " allowed");
  std::set<std::string> names;
  for (size_t i = 0; i < ts.size(); ++i) {
    const auto& t = ts[i];
    std::string at = what + "[" + std::to_string(i) + "]";
    if (t.name.empty() || t.name.size() > kMaxNameLength)
      return bad(at + ".name must be 1.." + std::to_string(kMaxNameLength) + " characters");
    for (char c : t.name)
      if (!valid_name_char(c))
        return bad(at + ".name '" + t.name + "' may use only [A-Za-z0-9._-]");
    if (!names.insert(t.name).second) return bad(at + ".name '" + t.name + "' repeats");
    if (t.shape.empty() || t.shape.size() > kMaxRank)
      return bad(at + ".shape must have 1.." + std::to_string(kMaxRank) + " dimensions");
    for (int64_t d : t.shape)
      if (d <= 0 || d > (int64_t{1} << 31))
        return bad(at + ".shape has dimension " + std::to_string(d) + ", expected 1..2^31");
  }
  return Status::ok();
}

Result<TensorType> tensor_from_json(const json& j, const std::string& at) {
  if (!j.is_object()) return bad(at + " must be an object");
  for (auto& [k, _] : j.items())
    if (k != "name" && k != "dtype" && k != "shape")
      return bad(at + " has unknown key '" + k + "'");
  TensorType t;
  if (!j.contains("name") || !j["name"].is_string()) return bad(at + ".name must be a string");
  t.name = j["name"].get<std::string>();
  if (!j.contains("dtype") || !j["dtype"].is_string()) return bad(at + ".dtype must be a string");
  auto dt = core::parse_dtype(j["dtype"].get<std::string>());
  if (!dt.ok()) return bad(at + ".dtype: " + dt.status().message());
  t.dtype = *dt;
  if (!j.contains("shape") || !j["shape"].is_array())
    return bad(at + ".shape must be an array of positive integers");
  for (const auto& d : j["shape"]) {
    if (!d.is_number_integer()) return bad(at + ".shape must be an array of positive integers");
    t.shape.push_back(d.get<int64_t>());
  }
  return t;
}

Result<uint64_t> cost_number(const json& c, const char* key, uint64_t max) {
  auto it = c.find(key);
  if (it == c.end()) return bad(std::string("cost.") + key + " is missing");
  if (!it->is_number_integer() || (!it->is_number_unsigned() && it->get<int64_t>() < 0))
    return bad(std::string("cost.") + key + " must be a non-negative integer, got " + it->dump());
  uint64_t v = it->get<uint64_t>();
  if (v > max)
    return bad(std::string("cost.") + key + " is " + std::to_string(v) + ", at most " +
               std::to_string(max) + " allowed");
  return v;
}

Result<ServiceCost> cost_from_json(const json& c) {
  if (!c.is_object()) return bad("cost must be an object {bytes, flops}");
  for (auto& [k, _] : c.items())
    if (k != "bytes" && k != "flops") return bad("cost has unknown key '" + k + "'");
  ServiceCost cost;
  IDN_ASSIGN_OR_RETURN(cost.bytes, cost_number(c, "bytes", kMaxCostBytes));
  IDN_ASSIGN_OR_RETURN(cost.flops, cost_number(c, "flops", kMaxCostFlops));
  return cost;
}

Status validate_origin(const ServiceOrigin& o) {
  if (o.role == OriginRole::kGenesis) {
    if (!o.genesis_hash.empty() || o.mask_seed || o.p_test)
      return bad("origin of a genesis model names no genesis, mask_seed or p_test");
    return Status::ok();
  }
  if (o.role != OriginRole::kGenerated) return bad("origin.role is neither genesis nor generated");
  auto mh = core::Multihash::parse(o.genesis_hash);
  if (!mh.ok()) return bad("origin.genesis '" + o.genesis_hash + "': " + mh.status().message());
  if (mh->code() != static_cast<uint64_t>(core::HashCode::kSha2_256) ||
      mh->to_base58() != o.genesis_hash)
    return bad("origin.genesis must be a sha2-256 multihash in bare base58btc ('Qm...'), got '" +
               o.genesis_hash + "'");
  if (!o.mask_seed) return bad("origin.mask_seed is missing (a generated model has one)");
  if (!o.p_test) return bad("origin.p_test is missing (a generated model has one)");
  if (!std::isfinite(*o.p_test) || *o.p_test <= 0 || *o.p_test > 1)
    return bad("origin.p_test must be in (0, 1], got " + json(*o.p_test).dump());
  return Status::ok();
}

Result<ServiceOrigin> origin_from_json(const json& o) {
  if (!o.is_object()) return bad("origin must be an object {role, genesis, mask_seed, p_test}");
  for (auto& [k, _] : o.items())
    if (k != "role" && k != "genesis" && k != "mask_seed" && k != "p_test")
      return bad("origin has unknown key '" + k + "'");
  ServiceOrigin r;
  auto role = o.find("role");
  if (role == o.end() || !role->is_string())
    return bad("origin.role must be \"genesis\" or \"generated\"");
  if (*role == "genesis") {
    r.role = OriginRole::kGenesis;
  } else if (*role == "generated") {
    r.role = OriginRole::kGenerated;
  } else {
    return bad("origin.role must be \"genesis\" or \"generated\", got " + role->dump());
  }
  if (auto g = o.find("genesis"); g != o.end()) {
    if (!g->is_string()) return bad("origin.genesis must be a string");
    r.genesis_hash = g->get<std::string>();
    if (r.genesis_hash.empty()) return bad("origin.genesis must not be empty");
  }
  if (auto s = o.find("mask_seed"); s != o.end()) {
    if (!s->is_number_integer() || (!s->is_number_unsigned() && s->get<int64_t>() < 0))
      return bad("origin.mask_seed must be a non-negative integer, got " + s->dump());
    r.mask_seed = s->get<uint64_t>();
  }
  if (auto p = o.find("p_test"); p != o.end()) {
    if (!p->is_number()) return bad("origin.p_test must be a number, got " + p->dump());
    r.p_test = p->get<double>();
  }
  IDN_RETURN_IF_ERROR(validate_origin(r));
  return r;
}

json origin_to_json(const ServiceOrigin& o) {
  json j{{"role", std::string(origin_role_name(o.role))}};
  if (!o.genesis_hash.empty()) j["genesis"] = o.genesis_hash;
  if (o.mask_seed) j["mask_seed"] = *o.mask_seed;
  if (o.p_test) j["p_test"] = *o.p_test;
  return j;
}

json tensor_to_json(const TensorType& t) {
  return json{
      {"name", t.name}, {"dtype", std::string(core::dtype_name(t.dtype))}, {"shape", t.shape}};
}

}  // namespace

std::string_view origin_role_name(OriginRole r) {
  return r == OriginRole::kGenerated ? "generated" : "genesis";
}

std::string describe(const ServiceOrigin& o) {
  if (o.role == OriginRole::kGenesis) return "ParallelNet genesis model";
  std::string s = "ParallelNet model generated from genesis " + o.genesis_hash;
  if (o.p_test) s += " at p_test " + json(*o.p_test).dump();
  if (o.mask_seed) s += ", mask seed " + std::to_string(*o.mask_seed);
  return s;
}

Status validate(const ServiceDescriptor& d) {
  if (d.name.empty() || d.name.size() > kMaxNameLength)
    return bad("name must be 1.." + std::to_string(kMaxNameLength) + " characters");
  for (char c : d.name)
    if (!valid_name_char(c)) return bad("name '" + d.name + "' may use only [A-Za-z0-9._-]");
  if (d.description.size() > kMaxDescriptionLength)
    return bad("description is " + std::to_string(d.description.size()) + " bytes, at most " +
               std::to_string(kMaxDescriptionLength) + " allowed");
  IDN_RETURN_IF_ERROR(check_utf8(d.description, "description"));
  IDN_RETURN_IF_ERROR(validate_tensors(d.inputs, "inputs"));
  IDN_RETURN_IF_ERROR(validate_tensors(d.outputs, "outputs"));
  auto cid = core::Cid::parse(d.model_cid);
  if (!cid.ok()) return bad("model.cid '" + d.model_cid + "': " + cid.status().message());
  auto mh = core::Multihash::parse(d.model_hash);
  if (!mh.ok()) return bad("model.hash '" + d.model_hash + "': " + mh.status().message());
  if (mh->code() != static_cast<uint64_t>(core::HashCode::kSha2_256))
    return bad("model.hash must be a sha2-256 multihash, got " + core::hash_code_name(mh->code()));
  if (mh->to_base58() != d.model_hash)
    return bad("model.hash must be written in bare base58btc ('Qm...'), got '" + d.model_hash +
               "'");
  static const std::set<std::string> kMotifs = {"branchynet", "ddnn", "parallelnet", "plain"};
  if (!kMotifs.count(d.motif))
    return bad("motif '" + d.motif + "' unknown; expected branchynet, ddnn, parallelnet or plain");
  if (d.exits.empty() || d.exits.size() > kMaxExits)
    return bad("exits must list 1.." + std::to_string(kMaxExits) + " exits");
  std::set<std::string> names;
  int last_stage = -1;
  for (size_t i = 0; i < d.exits.size(); ++i) {
    const auto& e = d.exits[i];
    std::string at = "exits[" + std::to_string(i) + "]";
    if (e.name.empty() || e.name.size() > kMaxNameLength)
      return bad(at + ".name must be 1.." + std::to_string(kMaxNameLength) + " characters");
    for (char c : e.name)
      if (!valid_name_char(c))
        return bad(at + ".name '" + e.name + "' may use only [A-Za-z0-9._-]");
    if (!names.insert(e.name).second) return bad(at + ".name '" + e.name + "' repeats");
    if (e.stage < 0 || e.stage <= last_stage)
      return bad(at + ".stage " + std::to_string(e.stage) +
                 " must be >= 0 and greater than the previous exit's stage");
    last_stage = e.stage;
    if (!std::isfinite(e.threshold) || e.threshold < 0)
      return bad(at + ".threshold must be a finite number >= 0");
    if (e.criterion == model::ExitCriterion::kConfidence && e.threshold > 1)
      return bad(at + ".threshold " + std::to_string(e.threshold) +
                 " is above 1, impossible for a confidence criterion");
  }
  if (d.cost) {
    if (d.cost->flops == 0 || d.cost->flops > kMaxCostFlops)
      return bad("cost.flops " + std::to_string(d.cost->flops) + " must be 1.." +
                 std::to_string(kMaxCostFlops));
    if (d.cost->bytes > kMaxCostBytes)
      return bad("cost.bytes " + std::to_string(d.cost->bytes) + " is above the limit of " +
                 std::to_string(kMaxCostBytes));
  }
  if (d.onnx_cid) {
    auto onnx = core::Cid::parse(*d.onnx_cid);
    if (!onnx.ok()) return bad("onnx.cid '" + *d.onnx_cid + "': " + onnx.status().message());
  }
  if (d.origin) {
    if (d.motif != "parallelnet")
      return bad("origin is for ParallelNet models; motif is '" + d.motif + "'");
    IDN_RETURN_IF_ERROR(validate_origin(*d.origin));
  }
  return Status::ok();
}

json to_json(const ServiceDescriptor& d) {
  json inputs = json::array(), outputs = json::array(), exits = json::array();
  for (const auto& t : d.inputs) inputs.push_back(tensor_to_json(t));
  for (const auto& t : d.outputs) outputs.push_back(tensor_to_json(t));
  for (const auto& e : d.exits)
    exits.push_back(json{{"name", e.name},
                         {"stage", e.stage},
                         {"criterion", std::string(model::criterion_name(e.criterion))},
                         {"threshold", e.threshold}});
  json j{{"format", std::string(kDescriptorFormat)},
         {"version", kDescriptorVersion},
         {"name", d.name},
         {"description", d.description},
         {"inputs", inputs},
         {"outputs", outputs},
         {"model", json{{"cid", d.model_cid}, {"hash", d.model_hash}}},
         {"motif", d.motif},
         {"exits", exits}};
  // Only when known: a descriptor without a cost keeps the bytes (and the ID) it always had.
  if (d.cost) j["cost"] = json{{"bytes", d.cost->bytes}, {"flops", d.cost->flops}};
  if (d.origin) j["origin"] = origin_to_json(*d.origin);
  if (d.onnx_cid) j["onnx"] = json{{"cid", *d.onnx_cid}};
  return j;
}

Result<std::string> canonical_json(const ServiceDescriptor& d) {
  IDN_RETURN_IF_ERROR(validate(d));
  // nlohmann's object is a std::map: keys come out sorted; dump() with no indent has no
  // whitespace; numbers print in their shortest round-tripping form.
  try {
    return to_json(d).dump();
  } catch (const json::exception& e) {
    return bad(std::string("cannot serialise: ") + e.what());
  }
}

Result<ServiceDescriptor> from_json(const json& j) {
  if (!j.is_object()) return bad("top level must be a JSON object");
  static const std::set<std::string> kKeys = {
      "format", "version", "name", "description", "inputs", "outputs", "model", "motif", "exits"};
  for (auto& [k, _] : j.items())
    if (!kKeys.count(k) && k != "cost" && k != "origin" && k != "onnx")
      return bad("unknown key '" + k + "'");
  for (const auto& k : kKeys)
    if (!j.contains(k)) return bad("missing key '" + k + "'");
  if (j["format"] != std::string(kDescriptorFormat))
    return bad("format must be \"" + std::string(kDescriptorFormat) + "\"");
  if (!j["version"].is_number_integer() || j["version"].get<int64_t>() != kDescriptorVersion)
    return Status::unsupported("service descriptor: version must be " +
                               std::to_string(kDescriptorVersion));
  ServiceDescriptor d;
  for (const char* k : {"name", "description", "motif"})
    if (!j[k].is_string()) return bad(std::string(k) + " must be a string");
  d.name = j["name"].get<std::string>();
  d.description = j["description"].get<std::string>();
  d.motif = j["motif"].get<std::string>();
  for (const char* k : {"inputs", "outputs"}) {
    if (!j[k].is_array()) return bad(std::string(k) + " must be an array");
    if (j[k].size() > kMaxTensors) return bad(std::string(k) + " lists too many tensors");
    auto& out = std::string(k) == "inputs" ? d.inputs : d.outputs;
    for (size_t i = 0; i < j[k].size(); ++i) {
      IDN_ASSIGN_OR_RETURN(
          auto t, tensor_from_json(j[k][i], std::string(k) + "[" + std::to_string(i) + "]"));
      out.push_back(std::move(t));
    }
  }
  const json& m = j["model"];
  if (!m.is_object()) return bad("model must be an object {cid, hash}");
  for (auto& [k, _] : m.items())
    if (k != "cid" && k != "hash") return bad("model has unknown key '" + k + "'");
  if (!m.contains("cid") || !m["cid"].is_string()) return bad("model.cid must be a string");
  if (!m.contains("hash") || !m["hash"].is_string()) return bad("model.hash must be a string");
  d.model_cid = m["cid"].get<std::string>();
  d.model_hash = m["hash"].get<std::string>();
  if (!j["exits"].is_array()) return bad("exits must be an array");
  if (j["exits"].size() > kMaxExits) return bad("exits lists too many exits");
  for (size_t i = 0; i < j["exits"].size(); ++i) {
    const json& e = j["exits"][i];
    std::string at = "exits[" + std::to_string(i) + "]";
    if (!e.is_object()) return bad(at + " must be an object");
    for (auto& [k, _] : e.items())
      if (k != "name" && k != "stage" && k != "criterion" && k != "threshold")
        return bad(at + " has unknown key '" + k + "'");
    if (!e.contains("name") || !e["name"].is_string()) return bad(at + ".name must be a string");
    if (!e.contains("stage") || !e["stage"].is_number_integer() || e["stage"].get<int64_t>() < 0 ||
        e["stage"].get<int64_t>() > 1'000'000)
      return bad(at + ".stage must be a non-negative integer");
    if (!e.contains("criterion") || !e["criterion"].is_string())
      return bad(at + ".criterion must be \"confidence\" or \"entropy\"");
    auto c = model::parse_criterion(e["criterion"].get<std::string>());
    if (!c.ok()) return bad(at + ".criterion: " + c.status().message());
    if (!e.contains("threshold") || !e["threshold"].is_number())
      return bad(at + ".threshold must be a number");
    d.exits.push_back(ExitInfo{e["name"].get<std::string>(),
                               static_cast<int>(e["stage"].get<int64_t>()), *c,
                               e["threshold"].get<double>()});
  }
  if (j.contains("cost")) {
    IDN_ASSIGN_OR_RETURN(d.cost, cost_from_json(j["cost"]));
  }
  if (j.contains("origin")) {
    IDN_ASSIGN_OR_RETURN(d.origin, origin_from_json(j["origin"]));
  }
  if (j.contains("onnx")) {
    const json& o = j["onnx"];
    if (!o.is_object()) return bad("onnx must be an object {cid}");
    for (auto& [k, _] : o.items())
      if (k != "cid") return bad("onnx has unknown key '" + k + "'");
    if (!o.contains("cid") || !o["cid"].is_string()) return bad("onnx.cid must be a string");
    d.onnx_cid = o["cid"].get<std::string>();
  }
  IDN_RETURN_IF_ERROR(validate(d));
  return d;
}

Result<ServiceDescriptor> parse_descriptor(std::string_view text) {
  if (text.size() > kMaxDescriptorBytes)
    return bad("document is " + std::to_string(text.size()) + " bytes, at most " +
               std::to_string(kMaxDescriptorBytes) + " allowed");
  auto j = model::parse_json_strict(text, 8);
  if (!j.ok()) return j.status().with_context("service descriptor");
  return from_json(*j);
}

Result<core::Multihash> service_id(const ServiceDescriptor& d) {
  IDN_ASSIGN_OR_RETURN(std::string c, canonical_json(d));
  return core::Multihash::sha2_256(as_bytes(c));
}

std::string service_id_text(const core::Multihash& id) {
  return id.to_base58();
}

Result<core::Multihash> parse_service_id(std::string_view text) {
  auto mh = core::Multihash::parse(text);
  if (!mh.ok())
    return Status::invalid_argument("service ID '" + std::string(text) +
                                    "' is not a multihash: " + mh.status().message());
  if (mh->code() != static_cast<uint64_t>(core::HashCode::kSha2_256))
    return Status::invalid_argument("service ID '" + std::string(text) +
                                    "' must be a sha2-256 multihash, got " +
                                    core::hash_code_name(mh->code()));
  return mh;
}

bool matches_service_id(std::string_view text, const core::Multihash& id) {
  if (!id.matches(as_bytes(text))) return false;
  auto d = parse_descriptor(text);
  if (!d.ok()) return false;
  auto c = canonical_json(*d);
  return c.ok() && *c == text;
}

std::string model_hash_of(std::string_view model_json_text) {
  return core::Multihash::sha2_256(as_bytes(model_json_text)).to_base58();
}

ServiceCost model_cost(const model::ModelSpec& spec) {
  ServiceCost c;
  c.flops = static_cast<uint64_t>(std::max<int64_t>(spec.trunk_flops(), 0));
  for (const model::WeightSpec& w : spec.required_weights()) {
    uint64_t n = 1;
    for (int64_t d : w.shape) n *= static_cast<uint64_t>(d);
    c.bytes += n * sizeof(float);
  }
  return c;
}

Result<std::optional<ServiceOrigin>> origin_from_model(const model::ModelSpec& spec) {
  const json& op = spec.operating_point;
  if (!op.is_object() || !op.contains("parallelnet")) return std::optional<ServiceOrigin>();
  const std::string at = "model '" + spec.name + "': operating_point.parallelnet";
  auto fail = [&](const std::string& m) { return Status::invalid_argument(at + m); };
  const json& pn = op["parallelnet"];
  if (!pn.is_object()) return fail(" must be an object");
  if (spec.motif != "parallelnet") return fail(" is there but the motif is '" + spec.motif + "'");
  auto role = pn.find("role");
  if (role == pn.end() || !role->is_string())
    return fail(".role must be \"genesis\" or \"generated\"");
  ServiceOrigin o;
  if (*role == "genesis") {
    o.role = OriginRole::kGenesis;
  } else if (*role == "generated") {
    o.role = OriginRole::kGenerated;
    auto g = pn.find("genesis");
    if (g == pn.end() || !g->is_object() || !g->contains("model_hash") ||
        !(*g)["model_hash"].is_string())
      return fail(".genesis.model_hash must be a string");
    o.genesis_hash = (*g)["model_hash"].get<std::string>();
    auto s = pn.find("mask_seed");
    if (s == pn.end() || !s->is_number_integer() ||
        (!s->is_number_unsigned() && s->get<int64_t>() < 0))
      return fail(".mask_seed must be a non-negative integer");
    o.mask_seed = s->get<uint64_t>();
    auto p = pn.find("p_test");
    if (p == pn.end() || !p->is_object() || !p->contains("p") || !(*p)["p"].is_number())
      return fail(".p_test.p must be a number");
    o.p_test = (*p)["p"].get<double>();
  } else {
    return fail(".role must be \"genesis\" or \"generated\", got " + role->dump());
  }
  if (Status s = validate_origin(o); !s.is_ok()) return fail(": " + s.message());
  return std::optional<ServiceOrigin>(std::move(o));
}

Result<ServiceDescriptor> descriptor_from_model(const model::ModelSpec& spec,
                                                std::string_view root_cid,
                                                std::string_view description) {
  if (spec.inputs.empty()) return bad("model '" + spec.name + "' declares no inputs");
  if (spec.exits.empty()) return bad("model '" + spec.name + "' declares no exits");
  ServiceDescriptor d;
  d.name = spec.name;
  d.description = std::string(description);
  for (const auto& in : spec.inputs) d.inputs.push_back(TensorType{in.name, in.dtype, in.shape});
  int classes = spec.num_classes();
  if (classes <= 0) return bad("model '" + spec.name + "' has no class count (last exit logits)");
  d.outputs.push_back(TensorType{"logits", core::DType::kF32, {classes}});
  d.model_cid = std::string(root_cid);
  d.model_hash = model_hash_of(model::to_json_text(spec));
  d.motif = spec.motif;
  for (const auto& e : spec.exits)
    d.exits.push_back(ExitInfo{e.name, e.stage, e.criterion, e.threshold});
  d.cost = model_cost(spec);
  IDN_ASSIGN_OR_RETURN(d.origin, origin_from_model(spec));
  IDN_RETURN_IF_ERROR(validate(d));
  return d;
}

}  // namespace idn::ise
