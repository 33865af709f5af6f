// What both ONNX exporters (onnx_export.cpp: model packages, ddnn_export.cpp: DDNN packages)
// build graphs and manifests with: one graph under construction with fresh value and node
// names, typed inputs/outputs/value infos with the batch dimension "N", initializers, and the
// manifest's shape/values/sha256 fields. Internal to onnx/; one builder per thread.
#pragma once

#include <cstdint>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "onnx/onnx_export.h"
#include "proto/onnx_ir.pb.h"

namespace idn::onnx::detail {

namespace ir = idn::onnx_ir;

inline constexpr int kFloat = ir::TensorProto::FLOAT;

class GraphBuilder {
 public:
  // `reserved`: names no helper value may take (a spec's layer and input names); it must
  // outlive the builder.
  explicit GraphBuilder(std::string name, const std::set<std::string>* reserved = nullptr);

  // A value name not reserved and not yet used in this graph: `base`, else base_1, base_2, ...
  std::string fresh(const std::string& base);
  void claim(const std::string& name) { used_.insert(name); }

  // A node (its name fresh among the graph's nodes) with the given inputs and outputs.
  ir::NodeProto& node(const std::string& op, std::vector<std::string> inputs,
                      std::vector<std::string> outputs, const std::string& name);
  // A node with one output, named fresh after `name` (node and value alike); returns the output.
  std::string op(const std::string& type, std::vector<std::string> inputs, const std::string& name,
                 ir::NodeProto** out = nullptr);
  static void attr(ir::NodeProto& n, const char* name, int64_t v);
  static void attr(ir::NodeProto& n, const char* name, float v);
  static void attr(ir::NodeProto& n, const char* name, const std::vector<int64_t>& v);

  // Initializers; each returns its (fresh) name. Floats as raw little-endian data.
  std::string constant(const std::string& base, const std::vector<int64_t>& dims,
                       std::span<const uint8_t> f32_bytes);
  std::string constant(const std::string& base, const std::vector<int64_t>& dims,
                       std::span<const float> values);
  std::string scalar(const std::string& base, float v);
  std::string constant_i64(const std::string& base, const std::vector<int64_t>& values);
  std::string constant_bool(const std::string& base, const std::vector<int64_t>& dims,
                            const std::vector<bool>& values);

  // Graph inputs and outputs [N, shape...] of element type `type`, and declared intermediate
  // shapes (so ONNX shape inference checks them).
  void input(const std::string& name, const std::vector<int64_t>& shape, int type = kFloat);
  void output(const std::string& name, const std::vector<int64_t>& shape, int type = kFloat);
  // The value `from` as the graph output `name`, through an Identity node.
  void output_from(const std::string& from, const std::string& name,
                   const std::vector<int64_t>& shape, int type = kFloat);
  void value_info(const std::string& name, const std::vector<int64_t>& shape, int type = kFloat);

  ir::GraphProto& graph() { return graph_; }

 private:
  std::string fresh_node(const std::string& base);

  const std::set<std::string>* reserved_;
  std::set<std::string> used_, node_names_;
  ir::GraphProto graph_;
};

// Manifest fields: ["N", dims...]; a graph's values as {"name", ("dtype",) "shape", ("from")}
// (dtype only when `with_dtype`); the hex sha256 of a graph file's bytes.
nlohmann::json shape_json(const std::vector<int64_t>& shape);
nlohmann::json values_json(const std::vector<GraphValue>& values, bool with_dtype);
std::string sha256_hex(const std::string& bytes);

}  // namespace idn::onnx::detail
