// PROVE and VERIFY (dissertation §6.5) on real model packages: M(Z) is run with the same
// engine (and early-exit rule) a node serves the model with, digest(M) is the package's root
// CID (what `idn publish` announces), and f is the problem's DEL function. Not thread-safe per
// Problem (its DEL); LibTorch uses its own threads.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "core/status.h"
#include "daimon/labels.h"
#include "daimon/proof.h"
#include "identity/keys.h"
#include "poi/problem.h"

namespace idn::poi {

// The root CID (text) of a package's serving files, as `idn publish` computes it.
Result<std::string> package_cid(const std::filesystem::path& model_dir);
// The root CID (text) of a problem directory as `idn add` imports it: `idn share` and
// `idn fetch CID --out DIR` move a problem between peers by this CID.
Result<std::string> problem_cid(const std::filesystem::path& problem_dir);
// M(Z): the label the model answers for each input, batch by batch, with its own exit rule.
Result<std::vector<daimon::Label>> predict(const std::filesystem::path& model_dir,
                                           const core::Tensor& inputs, uint32_t classes);

// PROVE(M) -> {digest(M), f(M(Z)), pk} signed with `key`.
Result<daimon::Proof> prove(Problem& problem, const std::filesystem::path& model_dir,
                            const identity::KeyPair& key);

// How far two claimed embeddings may differ (distance d) and still be the same outputs: float
// noise between machines is ~1e-7; a single label of 10,000 changed moves d by ~1e-4.
inline constexpr double kSameOutputs = 1e-6;

struct VerifyOutcome {
  daimon::Verification verification;  // unsigned; holds = failure.empty()
  std::string failure;                // the first check that failed, one line; empty: holds
};

// VERIFY(M, pi, d_c, delta): the signature, the problem, the digest, the outputs recomputed
// here, then d(pi.y, y_t) < d_c - delta. A failed check is a VerifyOutcome with `failure`;
// errors are for what stops the checks (unreadable model, ...).
Result<VerifyOutcome> verify(Problem& problem, const std::filesystem::path& model_dir,
                             const daimon::Proof& proof, double d_c, double delta);

}  // namespace idn::poi
