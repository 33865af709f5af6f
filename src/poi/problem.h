// A DaiMoN problem on disk (dissertation §6.5): everything a prover or verifier needs and
// nothing that reveals the test labels x_t. A directory holding
//   problem.json        {"format": "idn-daimon-problem", "version": 1, "classes", "m", "n",
//                        "y_t": [n floats], "d_c", "delta", "inputs": "inputs.safetensors",
//                        "del": "del"}
//   inputs.safetensors  the test inputs Z, one tensor "inputs" [m, ...] F32
//   del/                the DEL function's model package (motifs/del.h)
// Its ID is the hex SHA-256 of problem.json's bytes. Not thread-safe per object.
#pragma once

#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "daimon/labels.h"
#include "motifs/del.h"

namespace idn::poi {

struct Problem {
  std::filesystem::path dir;
  std::string id;  // hex SHA-256 of problem.json
  uint32_t classes = 0;
  int64_t m = 0;
  std::vector<float> yt;  // f(x_t)
  double d_c = 1.0;       // the best distance so far: a model must beat d_c - delta
  double delta = 0.0;
  core::Tensor inputs;  // Z
  std::optional<motifs::Del> del;
};

// Writes a problem: y_t = del(xt) is computed here and x_t itself is not written. `inputs` is
// [m, ...] with m = xt.size() = del.m(). Creates `dir`; refuses a non-empty one.
Status write_problem(const std::filesystem::path& dir, motifs::Del& del, const core::Tensor& inputs,
                     std::span<const daimon::Label> xt, double d_c, double delta);
// Reads and checks a problem directory; errors name the file and what is wrong.
Result<Problem> load_problem(const std::filesystem::path& dir);

}  // namespace idn::poi
