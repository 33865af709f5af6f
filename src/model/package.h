// A model package on disk: a directory holding model.json (the spec) and weights.safetensors.
// Loading validates both and checks that the weights are exactly the ones the graph needs.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "model/model_spec.h"

namespace idn::model {

inline constexpr const char* kModelJsonFile = "model.json";
inline constexpr const char* kWeightsFile = "weights.safetensors";

// The files a peer needs to serve a package: exactly what publishing ships. Anything else in a
// package directory (training checkpoints, evaluation output) stays local.
inline const std::vector<std::string>& serving_files() {
  static const std::vector<std::string> files{kModelJsonFile, kWeightsFile};
  return files;
}
// Entries of `dir` (names, sorted; directories end in '/') that are not serving files.
Result<std::vector<std::string>> non_serving_entries(const std::filesystem::path& dir);

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
