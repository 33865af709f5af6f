#include "model/safetensors.h"

#include <algorithm>
#include <limits>
#include <string_view>

#include <nlohmann/json.hpp>

#include "model/file_io.h"
#include "model/strict_json.h"

namespace idn::model {
namespace {

using nlohmann::json;

std::string q(std::string_view s) {
  std::string out(1, '\'');
  out.append(s);
  out.push_back('\'');
  return out;
}

// Position of each dtype in the reference implementation's Dtype enum, which is ordered by
// increasing alignment; writers sort by it descending.
int alignment_rank(core::DType d) {
  switch (d) {
    case core::DType::kBool:
      return 0;
    case core::DType::kU8:
      return 1;
    case core::DType::kI8:
      return 2;
    case core::DType::kI16:
      return 5;
    case core::DType::kF16:
      return 7;
    case core::DType::kBF16:
      return 8;
    case core::DType::kI32:
      return 9;
    case core::DType::kF32:
      return 11;
    case core::DType::kF64:
      return 12;
    case core::DType::kI64:
      return 13;
  }
  return -1;
}

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void append_le64(Bytes& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// A JSON value that is a non-negative integer small enough for a byte count.
bool as_u64(const json& v, uint64_t& out) {
  if (v.is_number_unsigned()) {
    out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    out = static_cast<uint64_t>(v.get<int64_t>());
    return true;
  }
  return false;
}

struct Entry {
  std::string name;
  core::Tensor tensor;  // bytes filled after the layout checks
  uint64_t begin = 0, end = 0;
};

Result<Entry> parse_entry(const std::string& name, const json& v) {
  const std::string who = "tensor " + q(name);
  if (!v.is_object()) return Status::corruption(who + ": header entry is not a JSON object");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!v.contains(key)) return Status::corruption(who + ": header entry has no \"" + key + "\"");
  Entry e;
  e.name = name;
  const json& dt = v["dtype"];
  if (!dt.is_string()) return Status::corruption(who + ": \"dtype\" is not a string");
  auto dtype = core::parse_dtype(dt.get<std::string>());
  if (!dtype.ok()) return dtype.status().with_context(who);
  e.tensor.dtype = *dtype;

  const json& shape = v["shape"];
  if (!shape.is_array()) return Status::corruption(who + ": \"shape\" is not an array");
  // Bounded so numel * 8 cannot overflow; no real tensor comes close.
  constexpr uint64_t kMaxElements = uint64_t{1} << 56;
  uint64_t numel = 1;
  for (const json& d : shape) {
    uint64_t dim = 0;
    if (!as_u64(d, dim) || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return Status::corruption(who + ": shape " + shape.dump() +
                                " has an entry that is not a non-negative integer");
    if (dim != 0 && numel > kMaxElements / dim)
      return Status::corruption(who + ": shape " + shape.dump() + " has too many elements");
    numel *= dim;
    e.tensor.shape.push_back(static_cast<int64_t>(dim));
  }

  const json& off = v["data_offsets"];
  if (!off.is_array() || off.size() != 2 || !as_u64(off[0], e.begin) || !as_u64(off[1], e.end))
    return Status::corruption(who + ": \"data_offsets\" " + off.dump() +
                              " is not a pair of non-negative integers [begin, end]");
  if (e.end < e.begin)
    return Status::corruption(who + ": data_offsets " + off.dump() + " end before they begin");
  const uint64_t need = numel * core::dtype_size(e.tensor.dtype);
  if (e.end - e.begin != need)
    return Status::corruption(who + ": shape " + core::shape_string(e.tensor.shape) + " of " +
                              std::string(core::dtype_name(e.tensor.dtype)) + " needs " +
                              std::to_string(need) + " bytes but data_offsets " + off.dump() +
                              " span " + std::to_string(e.end - e.begin));
  return e;
}

}  // namespace

Result<SafeTensors> parse_safetensors(ByteView file) {
  if (file.size() < 8)
    return Status::corruption("file is " + std::to_string(file.size()) +
                              " bytes, too short for the 8-byte header length");
  const uint64_t n = read_le64(file.data());
  if (n > kMaxSafetensorsHeaderBytes)
    return Status::limit_exceeded("header length " + std::to_string(n) + " exceeds the limit of " +
                                  std::to_string(kMaxSafetensorsHeaderBytes) + " bytes");
  if (n > file.size() - 8)
    return Status::corruption("header length " + std::to_string(n) + " exceeds file size " +
                              std::to_string(file.size()) + " (truncated file?)");
  std::string_view text(reinterpret_cast<const char*>(file.data() + 8), n);
  if (text.empty() || text.front() != '{')
    return Status::corruption("header does not start with '{'");
  // Depth 3 suffices: {name: {"shape": [...]}}; the slack keeps odd but valid writers working.
  auto parsed_header = parse_json_strict(text, 16);
  if (!parsed_header.ok()) return parsed_header.status().with_context("header");
  json header = std::move(*parsed_header);
  if (!header.is_object()) return Status::corruption("header is not a JSON object");

  SafeTensors out;
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object())
        return Status::corruption("\"__metadata__\" is not a JSON object of strings");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string())
          return Status::corruption("\"__metadata__\" value for " + q(m.key()) +
                                    " is not a string");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    IDN_ASSIGN_OR_RETURN(Entry e, parse_entry(it.key(), it.value()));
    entries.push_back(std::move(e));
  }

  const uint64_t data_size = file.size() - 8 - n;
  const uint8_t* data = file.data() + 8 + n;
  for (const Entry& e : entries)
    if (e.end > data_size)
      return Status::corruption("tensor " + q(e.name) + ": data_offsets [" +
                                std::to_string(e.begin) + ", " + std::to_string(e.end) +
                                "] extend past the end of the " + std::to_string(data_size) +
                                "-byte data buffer (truncated file?)");
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  uint64_t covered = 0;
  const Entry* prev = nullptr;
  for (const Entry& e : entries) {
    if (e.begin < covered)
      return Status::corruption("tensor " + q(e.name) + " (bytes " + std::to_string(e.begin) +
                                ".." + std::to_string(e.end) + ") overlaps tensor " +
                                q(prev->name) + " (bytes " + std::to_string(prev->begin) + ".." +
                                std::to_string(prev->end) + ")");
    if (e.begin > covered)
      return Status::corruption(
          "gap of " + std::to_string(e.begin - covered) +
          " bytes in the data buffer before tensor " + q(e.name) +
          (prev ? " (after tensor " + q(prev->name) + ")" : std::string(" (at its start)")) +
          "; tensors must be contiguous");
    covered = e.end;
    prev = &e;
  }
  if (covered != data_size)
    return Status::corruption("data buffer has " + std::to_string(data_size) +
                              " bytes but the tensors cover only " + std::to_string(covered) +
                              (prev ? " (last tensor " + q(prev->name) + ")" : std::string()));
  for (Entry& e : entries) {
    e.tensor.bytes.assign(data + e.begin, data + e.end);
    out.tensors.emplace(std::move(e.name), std::move(e.tensor));
  }
  return out;
}

Result<SafeTensors> load_safetensors(const std::filesystem::path& path) {
  IDN_ASSIGN_OR_RETURN(Bytes bytes, read_file(path));
  auto parsed = parse_safetensors(bytes);
  if (!parsed.ok()) return parsed.status().with_context(path.filename().string());
  return parsed;
}

std::vector<std::string> safetensors_write_order(
    const std::map<std::string, core::Tensor>& tensors) {
  std::vector<std::pair<int, const std::string*>> keyed;
  for (const auto& [name, t] : tensors) keyed.emplace_back(alignment_rank(t.dtype), &name);
  std::stable_sort(keyed.begin(), keyed.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::string> names;
  for (const auto& k : keyed) names.push_back(*k.second);
  return names;
}

Result<Bytes> serialize_safetensors(const std::map<std::string, core::Tensor>& tensors,
                                    const std::map<std::string, std::string>& metadata) {
  // json::dump escapes exactly like serde_json (short escapes, \u00xx, UTF-8 passed through)
  // and throws on invalid UTF-8, which we turn into an error naming the string.
  auto str = [](const std::string& s, std::string& out) -> bool {
    try {
      out += json(s).dump();
      return true;
    } catch (const json::exception&) {
      return false;
    }
  };
  std::string header = "{";
  bool first = true;
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    for (const auto& [k, v] : metadata) {
      if (!first) header += ",";
      first = false;
      bool ok = str(k, header);
      header += ":";
      if (!ok || !str(v, header))
        return Status::invalid_argument("metadata entry " + q(k) + " is not valid UTF-8");
    }
    header += "}";
  }
  const std::vector<std::string> order = safetensors_write_order(tensors);
  uint64_t offset = 0;
  for (const std::string& name : order) {
    if (name == "__metadata__")
      return Status::invalid_argument("a tensor may not be named \"__metadata__\"");
    const core::Tensor& t = tensors.at(name);
    Status st = t.validate();
    if (!st.is_ok()) return st.with_context("tensor " + q(name));
    header += header.size() > 1 ? "," : "";
    if (!str(name, header))
      return Status::invalid_argument("tensor name " + q(name) + " is not valid UTF-8");
    header += ":{\"dtype\":\"" + std::string(core::dtype_name(t.dtype)) + "\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i) {
      if (i) header += ",";
      header += std::to_string(t.shape[i]);
    }
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(offset + t.bytes.size()) + "]}";
    offset += t.bytes.size();
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');

  Bytes out;
  out.reserve(8 + header.size() + offset);
  append_le64(out, header.size());
  out.insert(out.end(), header.begin(), header.end());
  for (const std::string& name : order) {
    const Bytes& b = tensors.at(name).bytes;
    out.insert(out.end(), b.begin(), b.end());
  }
  return out;
}

Status save_safetensors(const std::filesystem::path& path,
                        const std::map<std::string, core::Tensor>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  IDN_ASSIGN_OR_RETURN(Bytes bytes, serialize_safetensors(tensors, metadata));
  return write_file_atomic(path, bytes);
}

}  // namespace idn::model
