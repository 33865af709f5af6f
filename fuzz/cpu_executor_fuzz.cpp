// Fuzzes the torch-free cpu executor (issue 21) with whole packages and inputs: a model.json text
// and a pool of float values that fills every required weight and the input (cycled, so NaN,
// infinities and denormals reach the kernels). Whatever they are, load() either refuses with a
// message or gives an executor on which every stage and exit head runs without crashing and
// returns outputs of the spec's sizes.
// Input: byte 0 picks max_batch (1..4, its low 2 bits) and the kernels (bits 2-3: measured at
// load, or gemm, batched or oneDNN forced wherever a layer has it); bytes 1-2 (little-endian) the
// length L of the model.json text that follows; the rest is the float pool (raw little-endian F32).
// fuzz-deps: idn_cpu idn_model idn_core
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "cpu/executor.h"
#include "fuzz_check.h"
#include "model/model_spec.h"
#include "model/package.h"

using namespace idn;

namespace {

// Bounds that keep one run fast: the executor allocates every buffer at load.
constexpr int64_t kMaxWeightValues = 1 << 20;
constexpr int64_t kMaxInputValues = 1 << 16;
constexpr int64_t kMaxFlops = 20'000'000;

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d <= 0 || n > (int64_t{1} << 40) / d) return -1;
    n *= d;
  }
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const int max_batch = data[0] % 4 + 1;
  const cpu::Kernel kernel = static_cast<cpu::Kernel>(data[0] / 4 % 4);
  const size_t len = data[1] | (size_t{data[2]} << 8);
  if (3 + len > size) return 0;
  auto spec =
      model::parse_model_spec_text(std::string_view(reinterpret_cast<const char*>(data + 3), len));
  if (!spec.ok()) return 0;
  // One model input (what the executor serves; DDNN's several views are not its job).
  if (spec->inputs.size() != 1 || spec->trunk_flops() > kMaxFlops) return 0;
  std::vector<float> pool((size - 3 - len) / sizeof(float));
  if (!pool.empty()) std::memcpy(pool.data(), data + 3 + len, pool.size() * sizeof(float));
  if (pool.empty()) pool = {0.5f, -0.25f, 1.0f};
  size_t next = 0;
  auto fill = [&](std::vector<float>& v) {
    for (float& x : v) x = pool[next++ % pool.size()];
  };

  model::Package pkg{*spec, {}};
  int64_t total = 0;
  for (const auto& w : spec->required_weights()) {
    const int64_t n = numel(w.shape);
    if (n < 0 || (total += n) > kMaxWeightValues) return 0;
    std::vector<float> values(static_cast<size_t>(n));
    fill(values);
    pkg.weights.emplace(w.name, core::Tensor::f32(w.shape, values));
  }
  auto ex = cpu::Executor::load(pkg, {.max_batch = max_batch, .kernel = kernel});
  if (!ex.ok()) {
    CHECK(!ex.status().message().empty());
    return 0;
  }
  const int64_t per_sample = numel(spec->inputs[0].shape);
  if (per_sample < 0 || per_sample * max_batch > kMaxInputValues) return 0;
  std::vector<float> input(static_cast<size_t>(per_sample * max_batch));
  fill(input);
  if (!(*ex)->set_input(input, max_batch).is_ok()) return 0;
  for (size_t s = 0; s < spec->stages.size(); ++s) {
    auto out = (*ex)->run_stage(static_cast<int>(s));
    CHECK(out.ok());
    CHECK(out->size() % static_cast<size_t>(max_batch) == 0);
  }
  for (size_t e = 0; e < spec->exits.size(); ++e) {
    auto logits = (*ex)->run_exit(static_cast<int>(e));
    CHECK(logits.ok());
    CHECK(logits->size() % static_cast<size_t>(max_batch) == 0 && !logits->empty());
  }
  // A batch smaller than the executor's is fine; a bigger one is refused, not overrun.
  CHECK(!(*ex)->set_input(std::vector<float>(input.size() + per_sample), max_batch + 1).is_ok());
  return 0;
}
