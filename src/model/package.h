// A model package on disk: a directory holding model.json (the spec) and weights.safetensors.
// Loading validates both and checks that the weights are exactly the ones the graph needs.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "core/status.h"
#include "core/tensor.h"
#include "model/model_spec.h"

namespace idn::model {

inline constexpr const char* kModelJsonFile = "model.json";
inline constexpr const char* kWeightsFile = "weights.safetensors";

struct Package {
  ModelSpec spec;
  std::map<std::string, core::Tensor> weights;
};

// Errors are prefixed with the file they concern ("model.json: layer 'fc' ...").
Result<Package> load_package(const std::filesystem::path& dir);
// Validates, then writes weights.safetensors and model.json (pretty, keys sorted, flops filled)
// atomically, creating `dir` if needed. The spec is re-validated on a copy; `package` is
// unchanged.
Status save_package(const Package& package, const std::filesystem::path& dir);

}  // namespace idn::model
