#include "onnx/graph_builder.h"

#include <cstring>

#include "core/bytes.h"
#include "core/multihash.h"

namespace idn::onnx::detail {

GraphBuilder::GraphBuilder(std::string name, const std::set<std::string>* reserved)
    : reserved_(reserved) {
  graph_.set_name(std::move(name));
}

std::string GraphBuilder::fresh(const std::string& base) {
  std::string n = base;
  for (int i = 1; (reserved_ && reserved_->count(n)) || used_.count(n); ++i)
    n = base + "_" + std::to_string(i);
  used_.insert(n);
  return n;
}

std::string GraphBuilder::fresh_node(const std::string& base) {
  std::string n = base;
  for (int i = 1; node_names_.count(n); ++i) n = base + "_" + std::to_string(i);
  node_names_.insert(n);
  return n;
}

ir::NodeProto& GraphBuilder::node(const std::string& op, std::vector<std::string> inputs,
                                  std::vector<std::string> outputs, const std::string& name) {
  ir::NodeProto* n = graph_.add_node();
  n->set_op_type(op);
  n->set_name(fresh_node(name));
  for (auto& i : inputs) n->add_input(std::move(i));
  for (auto& o : outputs) n->add_output(std::move(o));
  return *n;
}

std::string GraphBuilder::op(const std::string& type, std::vector<std::string> inputs,
                             const std::string& name, ir::NodeProto** out) {
  const std::string y = fresh(name);
  ir::NodeProto& n = node(type, std::move(inputs), {y}, y);
  if (out) *out = &n;
  return y;
}

void GraphBuilder::attr(ir::NodeProto& n, const char* name, int64_t v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(ir::AttributeProto::INT);
  a->set_i(v);
}
void GraphBuilder::attr(ir::NodeProto& n, const char* name, float v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(ir::AttributeProto::FLOAT);
  a->set_f(v);
}
void GraphBuilder::attr(ir::NodeProto& n, const char* name, const std::vector<int64_t>& v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(ir::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}

std::string GraphBuilder::constant(const std::string& base, const std::vector<int64_t>& dims,
                                   std::span<const uint8_t> f32_bytes) {
  ir::TensorProto* t = graph_.add_initializer();
  t->set_name(fresh(base));
  t->set_data_type(ir::TensorProto::FLOAT);
  for (int64_t d : dims) t->add_dims(d);
  t->set_raw_data(f32_bytes.data(), f32_bytes.size());
  return t->name();
}

std::string GraphBuilder::constant(const std::string& base, const std::vector<int64_t>& dims,
                                   std::span<const float> values) {
  // ONNX raw data is little-endian, as this (x86-64) host's floats are.
  std::string raw(values.size() * 4, '\0');
  for (size_t i = 0; i < values.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, &values[i], 4);
    for (int b = 0; b < 4; ++b) raw[i * 4 + b] = static_cast<char>(u >> (8 * b));
  }
  return constant(
      base, dims,
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(raw.data()), raw.size()));
}

std::string GraphBuilder::scalar(const std::string& base, float v) {
  const float values[1] = {v};
  return constant(base, {}, std::span<const float>(values));
}

std::string GraphBuilder::constant_i64(const std::string& base,
                                       const std::vector<int64_t>& values) {
  ir::TensorProto* t = graph_.add_initializer();
  t->set_name(fresh(base));
  t->set_data_type(ir::TensorProto::INT64);
  t->add_dims(static_cast<int64_t>(values.size()));
  for (int64_t v : values) t->add_int64_data(v);
  return t->name();
}

std::string GraphBuilder::constant_bool(const std::string& base, const std::vector<int64_t>& dims,
                                        const std::vector<bool>& values) {
  ir::TensorProto* t = graph_.add_initializer();
  t->set_name(fresh(base));
  t->set_data_type(ir::TensorProto::BOOL);
  for (int64_t d : dims) t->add_dims(d);
  std::string raw;
  for (bool v : values) raw.push_back(v ? 1 : 0);  // raw BOOL data: one byte per value
  t->set_raw_data(raw);
  return t->name();
}

namespace {

void typed(ir::ValueInfoProto* v, const std::string& name, int type,
           const std::vector<int64_t>& shape) {
  v->set_name(name);
  auto* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(type);
  auto* s = t->mutable_shape();
  s->add_dim()->set_dim_param(kBatchDim);
  for (int64_t d : shape) s->add_dim()->set_dim_value(d);
}

}  // namespace

void GraphBuilder::input(const std::string& name, const std::vector<int64_t>& shape, int type) {
  used_.insert(name);
  typed(graph_.add_input(), name, type, shape);
}

void GraphBuilder::output(const std::string& name, const std::vector<int64_t>& shape, int type) {
  typed(graph_.add_output(), name, type, shape);
}

void GraphBuilder::output_from(const std::string& from, const std::string& name,
                               const std::vector<int64_t>& shape, int type) {
  used_.insert(name);
  node("Identity", {from}, {name}, name);
  output(name, shape, type);
}

void GraphBuilder::value_info(const std::string& name, const std::vector<int64_t>& shape,
                              int type) {
  typed(graph_.add_value_info(), name, type, shape);
}

nlohmann::json shape_json(const std::vector<int64_t>& shape) {
  nlohmann::json s = nlohmann::json::array({kBatchDim});
  for (int64_t d : shape) s.push_back(d);
  return s;
}

nlohmann::json values_json(const std::vector<GraphValue>& values, bool with_dtype) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& v : values) {
    nlohmann::json j{{"name", v.name}, {"shape", shape_json(v.shape)}};
    if (with_dtype) j["dtype"] = v.dtype;
    if (!v.from.empty()) j["from"] = v.from;
    a.push_back(std::move(j));
  }
  return a;
}

std::string sha256_hex(const std::string& bytes) {
  auto d = core::sha256(as_bytes(bytes));
  return hex_encode(ByteView(d.data(), d.size()));
}

}  // namespace idn::onnx::detail
