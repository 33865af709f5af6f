#include "model/package.h"

#include <algorithm>
#include <system_error>

#include "model/file_io.h"
#include "model/safetensors.h"

namespace idn::model {

Result<std::vector<std::string>> non_serving_entries(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<std::string> out;
  const auto& keep = serving_files();
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (std::find(keep.begin(), keep.end(), name) != keep.end()) continue;
    if (it->is_directory(ec)) name += "/";
    out.push_back(std::move(name));
  }
  if (ec) return Status::io_error(dir.string() + ": cannot list directory: " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

Result<Package> load_package(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    return Status::not_found(dir.string() + ": not a model package directory");
  Package pkg;
  {
    auto text = read_file(dir / kModelJsonFile, uint64_t{64} << 20);
    if (!text.ok()) return text.status().with_context(kModelJsonFile);
    auto spec = parse_model_spec_text(to_string(*text));
    if (!spec.ok()) return spec.status().with_context(kModelJsonFile);
    pkg.spec = std::move(*spec);
  }
  auto weights = read_file(dir / kWeightsFile);
  if (!weights.ok()) return weights.status().with_context(kWeightsFile);
  auto st = parse_safetensors(*weights);
  if (!st.ok()) return st.status().with_context(kWeightsFile);
  pkg.weights = std::move(st->tensors);
  Status ok = check_weights(pkg.spec, pkg.weights);
  if (!ok.is_ok())
    return ok.with_context(std::string(kWeightsFile) + " does not match " + kModelJsonFile);
  return pkg;
}

Status save_package(const Package& package, const std::filesystem::path& dir) {
  ModelSpec spec = package.spec;
  Status st = validate_model_spec(spec);
  if (!st.is_ok()) return st.with_context(kModelJsonFile);
  st = check_weights(spec, package.weights);
  if (!st.is_ok()) return st.with_context(kWeightsFile);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::io_error(dir.string() + ": cannot create directory: " + ec.message());
  // Each file is replaced atomically, the pair is not: a crash between the two writes can
  // leave new weights beside the old model.json, and load_package rejects them if they differ.
  IDN_RETURN_IF_ERROR(save_safetensors(dir / kWeightsFile, package.weights));
  return write_file_atomic(dir / kModelJsonFile, as_bytes(to_json_text(spec)));
}

}  // namespace idn::model
