#include "poi/poi.h"

#include <fmt/format.h>

#include "engine/engine.h"
#include "model/package.h"
#include "store/block_io.h"
#include "store/importer.h"

namespace idn::poi {

Result<std::string> package_cid(const std::filesystem::path& model_dir) {
  store::NullSink sink;
  IDN_ASSIGN_OR_RETURN(auto imported,
                       store::import_directory_entries(model_dir, model::serving_files(), sink));
  return imported.cid.to_string();
}

Result<std::string> problem_cid(const std::filesystem::path& problem_dir) {
  store::NullSink sink;
  IDN_ASSIGN_OR_RETURN(auto imported, store::import_path(problem_dir, sink));
  return imported.cid.to_string();
}

Result<std::vector<daimon::Label>> predict(const std::filesystem::path& model_dir,
                                           const core::Tensor& inputs, uint32_t classes) {
  IDN_ASSIGN_OR_RETURN(auto engine, engine::Engine::load(model_dir));
  if (engine->spec().num_classes() != static_cast<int>(classes)) {
    return Status::invalid_argument(fmt::format("the model answers {} classes, the problem has {}",
                                                engine->spec().num_classes(), classes));
  }
  const int64_t m = inputs.shape.at(0);
  const int64_t row = m > 0 ? inputs.numel() / m : 0;
  std::vector<int64_t> shape = inputs.shape;
  std::vector<daimon::Label> out;
  out.reserve(static_cast<size_t>(m));
  constexpr int64_t kBatch = 256;
  auto all = inputs.f32();
  for (int64_t i = 0; i < m; i += kBatch) {
    const int64_t n = std::min(kBatch, m - i);
    shape[0] = n;
    auto batch = core::Tensor::f32(shape, all.subspan(size_t(i * row), size_t(n * row)));
    IDN_ASSIGN_OR_RETURN(auto events, engine->infer_batch(batch));
    for (const auto& e : events) out.push_back(static_cast<daimon::Label>(e.predicted));
  }
  return out;
}

Result<daimon::Proof> prove(Problem& problem, const std::filesystem::path& model_dir,
                            const identity::KeyPair& key) {
  daimon::Proof p;
  p.problem = problem.id;
  IDN_ASSIGN_OR_RETURN(p.model, package_cid(model_dir));
  IDN_ASSIGN_OR_RETURN(auto labels, predict(model_dir, problem.inputs, problem.classes));
  IDN_ASSIGN_OR_RETURN(p.y, problem.del->embed(labels));
  daimon::sign(p, key);
  return p;
}

Result<VerifyOutcome> verify(Problem& problem, const std::filesystem::path& model_dir,
                             const daimon::Proof& proof, double d_c, double delta) {
  VerifyOutcome out;
  daimon::Verification& v = out.verification;
  v.proof_digest = daimon::digest(proof);
  v.model = proof.model;
  v.d_c = d_c;
  v.delta = delta;
  v.distance = 1.0;
  auto fail = [&](std::string why) {
    out.failure = std::move(why);
    v.holds = false;
    return out;
  };
  if (Status st = daimon::check_signature(proof); !st.is_ok()) return fail(st.message());
  if (proof.problem != problem.id) {
    return fail(
        fmt::format("problem: the proof is for problem {}, not {}", proof.problem, problem.id));
  }
  IDN_ASSIGN_OR_RETURN(auto cid, package_cid(model_dir));
  if (cid != proof.model) {
    return fail(
        fmt::format("digest: the model's CID is {}, the proof claims {}", cid, proof.model));
  }
  if (static_cast<int64_t>(proof.y.size()) != problem.del->n()) {
    return fail(fmt::format("outputs: the proof has {} values, the DEL gives {}", proof.y.size(),
                            problem.del->n()));
  }
  IDN_ASSIGN_OR_RETURN(auto labels, predict(model_dir, problem.inputs, problem.classes));
  IDN_ASSIGN_OR_RETURN(auto y, problem.del->embed(labels));
  auto same = daimon::distance(proof.y, y);
  if (!same.ok() || *same > kSameOutputs) {
    return fail(same.ok() ? fmt::format("outputs: the proof's f(M(Z)) is {:.3g} from the model's "
                                        "own (more than {:g})",
                                        *same, kSameOutputs)
                          : "outputs: " + same.status().message());
  }
  IDN_ASSIGN_OR_RETURN(v.distance, daimon::distance(proof.y, problem.yt));
  if (!(v.distance < d_c - delta)) {
    return fail(fmt::format("improvement: d(y, y_t) = {:.4f} is not below d_c - delta = {:.4f}",
                            v.distance, d_c - delta));
  }
  v.holds = true;
  return out;
}

}  // namespace idn::poi
