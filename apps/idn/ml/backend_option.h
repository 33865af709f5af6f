// The --backend option of the commands that run a model package in this process (idn infer,
// idn eval, idn bench branchynet): which engine::Backend runs its stages and exit heads.
#pragma once

#include <string>

#include "../cli.h"
#include "engine/engine.h"

namespace idn::cli {

inline CLI::Option* add_backend_option(CLI::App* app, std::string& value) {
  return app
      ->add_option("--backend", value,
                   "What runs the model: auto (of the torch-free cpu executor and LibTorch, the "
                   "faster on a probe input, when the executor loads the package and agrees with "
                   "LibTorch within 1e-4 on every exit; else LibTorch), torch (LibTorch, the "
                   "reference), cpu (the cpu executor; an error if it cannot run the package)")
      ->check(CLI::IsMember({"auto", "torch", "cpu"}))
      ->capture_default_str();
}

// The option's value (checked by add_backend_option) as an engine::Backend.
inline engine::Backend backend_of(const std::string& value) {
  auto b = engine::parse_backend(value);
  return b.ok() ? *b : engine::Backend::kAuto;
}

}  // namespace idn::cli
