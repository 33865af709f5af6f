// cpu::Executor against LibTorch (nn::Graph, engine::Engine), ggml test-backend-ops style: every
// op on random shapes and values, then whole packages stage by stage and exit by exit.
#include "cpu/executor.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>
#include <random>
#include <thread>

#include "cpu/kernels.h"
#include "cpu/onednn.h"
#include "engine/engine.h"
#include "model/package.h"
#include "motifs/branchynet_arch.h"
#include "nn/graph.h"
#include "support/tiny_model.h"

// Counts heap allocations, so a test can show that a call allocates nothing. The replacement
// operator new takes from malloc, so free is the matching release (GCC cannot see that).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
static std::atomic<int64_t> g_allocations{0};
void* operator new(size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, size_t) noexcept {
  std::free(p);
}

namespace idn::cpu {
namespace {

using nlohmann::json;
constexpr float kTol = 1e-4f;

// Layers whose kernels (both batch classes) are `k`.
int count_forced(const Executor& ex, Kernel k) {
  int n = 0;
  for (const auto& l : ex.kernels()) n += l.one == k && l.many == k;
  return n;
}
// Layers loaded with a forced kernel that really got it (CpuKernels tests check it grew).
int g_forced_layers = 0;

// Largest |a - b| (inf when the sizes differ).
float max_diff(std::span<const float> a, const torch::Tensor& b) {
  auto c = b.contiguous();
  if (static_cast<int64_t>(a.size()) != c.numel()) return INFINITY;
  const float* p = c.data_ptr<float>();
  float d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - p[i]));
  return d;
}

std::span<const float> span_of(const torch::Tensor& t) {
  return {t.data_ptr<float>(), static_cast<size_t>(t.numel())};
}

// Random weights for every tensor the spec needs; batch-norm variances positive. `fan_in`:
// conv/linear weights scaled by 1/sqrt(inputs per output), so wide layers' outputs stay near 1
// (where an absolute 1e-4 is a fair test of float sums of thousands of terms).
std::map<std::string, core::Tensor> random_weights(const model::ModelSpec& spec,
                                                   bool fan_in = false) {
  std::map<std::string, core::Tensor> w;
  for (const auto& r : spec.required_weights()) {
    auto t = torch::randn(r.shape) * 0.3;
    if (fan_in && r.shape.size() >= 2)
      t = t / std::sqrt(static_cast<double>(t.numel() / r.shape[0]));
    if (r.name.ends_with(".running_var")) t = torch::rand(r.shape) + 0.5;
    w[r.name] = nn::from_torch(t);
  }
  return w;
}

// Runs every stage and exit of `spec` on `inputs` in both and compares.
void expect_same_as_graph(const model::ModelSpec& spec,
                          const std::map<std::string, core::Tensor>& weights,
                          const std::vector<torch::Tensor>& inputs, const std::string& what,
                          ExecutorOptions opts = {}) {
  SCOPED_TRACE(what);
  nn::Graph g(spec);
  ASSERT_TRUE(g->load_weights(weights).is_ok());
  g->eval();
  torch::NoGradGuard ng;
  const int batch = static_cast<int>(inputs[0].size(0));
  opts.max_batch = batch;
  auto ex = Executor::load(model::Package{spec, weights}, opts);
  ASSERT_TRUE(ex.ok()) << ex.status().to_string();
  if (opts.kernel != Kernel::kAuto) g_forced_layers += count_forced(**ex, opts.kernel);
  for (size_t i = 0; i < inputs.size(); ++i)
    ASSERT_TRUE((*ex)->set_input(span_of(inputs[i]), batch, static_cast<int>(i)).is_ok());
  auto acts = g->begin(inputs);
  for (int s = 0; s < g->num_stages(); ++s) {
    auto ref = g->run_stage(s, acts);
    auto got = (*ex)->run_stage(s);
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    EXPECT_LE(max_diff(*got, ref), kTol) << "stage " << s << "\n" << (*ex)->plan();
    for (int e = 0; e < g->num_exits(); ++e) {
      if (spec.exits[e].stage != s) continue;
      auto zr = g->run_exit(e, acts);
      auto z = (*ex)->run_exit(e);
      ASSERT_TRUE(z.ok()) << z.status().to_string();
      EXPECT_LE(max_diff(*z, zr), kTol) << "exit " << e << "\n" << (*ex)->plan();
    }
  }
}

// A one-stage model: `layers` on input(s) `in_shapes`, output `out`, and an exit head
// (flatten + linear to 3 classes) so that the exit path runs too.
model::ModelSpec op_model(const json& layers, const std::vector<std::vector<int64_t>>& in_shapes,
                          const std::string& out) {
  json j = {{"format", "idn-model"}, {"version", 1}, {"name", "op"}, {"motif", "plain"}};
  j["inputs"] = json::array();
  for (size_t i = 0; i < in_shapes.size(); ++i)
    j["inputs"].push_back(
        {{"name", "x" + std::to_string(i)}, {"dtype", "F32"}, {"shape", in_shapes[i]}});
  j["layers"] = layers;
  std::vector<std::string> names;
  for (const auto& l : layers) names.push_back(l["name"]);
  j["stages"] = json::array({{{"name", "s0"}, {"layers", names}, {"output", out}}});
  // First pass: the output's size, for the head's in_features.
  json probe = j;
  probe["layers"].push_back({{"name", "hflat"}, {"type", "flatten"}, {"inputs", {out}}});
  probe["exits"] = json::array({{{"name", "e0"},
                                 {"stage", 0},
                                 {"layers", {"hflat"}},
                                 {"output", "hflat"},
                                 {"criterion", "confidence"},
                                 {"threshold", 1.0}}});
  auto p = model::parse_model_spec(probe);
  if (!p.ok()) throw std::runtime_error(p.status().to_string() + "\n" + probe.dump());
  const int64_t features = p->layer("hflat")->out_shape[0];
  j["layers"].push_back({{"name", "hflat"}, {"type", "flatten"}, {"inputs", {out}}});
  j["layers"].push_back({{"name", "hfc"},
                         {"type", "linear"},
                         {"inputs", {"hflat"}},
                         {"params", {{"in_features", features}, {"out_features", 3}}}});
  j["exits"] = json::array({{{"name", "e0"},
                             {"stage", 0},
                             {"layers", {"hflat", "hfc"}},
                             {"output", "hfc"},
                             {"criterion", "confidence"},
                             {"threshold", 1.0}}});
  auto spec = model::parse_model_spec(j);
  if (!spec.ok()) throw std::runtime_error(spec.status().to_string() + "\n" + j.dump());
  return *spec;
}

json layer(const std::string& name, const std::string& type, const std::string& input,
           json params = json::object()) {
  return {{"name", name}, {"type", type}, {"inputs", {input}}, {"params", params}};
}

class CpuOps : public ::testing::Test {
 protected:
  std::mt19937 rng{21};
  int uni(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
  void check(const model::ModelSpec& spec, const std::string& what, ExecutorOptions opts = {},
             bool fan_in = false) {
    // 9: a linear layer takes the batched gemm path (from 8 samples).
    const int batch = std::array{1, 2, 3, 9}[uni(0, 3)];
    std::vector<torch::Tensor> xs;
    for (const auto& in : spec.inputs) {
      std::vector<int64_t> shape{batch};
      shape.insert(shape.end(), in.shape.begin(), in.shape.end());
      xs.push_back(torch::randn(shape));
    }
    expect_same_as_graph(spec, random_weights(spec, fan_in), xs, what, opts);
  }
};

TEST_F(CpuOps, Conv2dWithBiasBatchNormReluAndPoolingMatchLibTorch) {
  torch::manual_seed(1);
  // follow: 0 none, 1 relu, 2 batchnorm, 3 batchnorm+relu, 4 maxpool+relu (relu fused into pool)
  for (int i = 0; i < 40; ++i) {
    const int c = uni(1, 4), h = uni(5, 12), w = uni(5, 12), oc = uni(1, 9), pad = uni(0, 2);
    const int k = uni(1, std::min(5, std::min(h, w))), stride = uni(1, 3), follow = i % 5;
    json ls = json::array({layer("conv", "conv2d", "x0",
                                 {{"in_channels", c},
                                  {"out_channels", oc},
                                  {"kernel", k},
                                  {"stride", stride},
                                  {"padding", pad},
                                  {"bias", uni(0, 1) == 1}})});
    std::string last = "conv";
    if (follow == 2 || follow == 3) {
      ls.push_back(layer("bn", "batchnorm", last, {{"num_features", oc}}));
      last = "bn";
    }
    if (follow == 4) {
      ls.push_back(layer("pool", "maxpool2d", last, {{"kernel", 1}, {"stride", 1}}));
      last = "pool";
    }
    if (follow == 1 || follow >= 3) {
      ls.push_back(layer("relu", "relu", last));
      last = "relu";
    }
    // Both gemm loops (AVX2, and AVX-512 where this CPU has it).
    for (bool wide : {false, true}) {
      kernels::allow_avx512(wide);
      check(op_model(ls, {{c, h, w}}, last), ls.dump() + (wide ? " avx512" : " avx2"));
    }
  }
}

TEST_F(CpuOps, LinearWithBiasBatchNormAndReluMatchLibTorch) {
  torch::manual_seed(2);
  for (int i = 0; i < 30; ++i) {
    // Up to 40 outputs: from 32 a batch of 9 takes the gemm path.
    const int in = uni(1, 70), out = uni(1, 40), follow = i % 3;
    json ls = json::array(
        {layer("fc", "linear", "x0",
               {{"in_features", in}, {"out_features", out}, {"bias", uni(0, 1) == 1}})});
    std::string last = "fc";
    if (follow == 2) {
      ls.push_back(layer("bn", "batchnorm", last, {{"num_features", out}}));
      last = "bn";
    }
    if (follow >= 1) {
      ls.push_back(layer("relu", "relu", last));
      last = "relu";
    }
    check(op_model(ls, {{in}}, last), ls.dump());
  }
}

// Each kernel forced on every layer that has it, on random conv shapes (3 x 3 and 5 x 5 on small
// maps with more channels: the AlexNets' cases) and linear ones (oneDNN runs no linear layer:
// they keep the rule there).
TEST_F(CpuOps, EveryConvAndLinearKernelForcedMatchesLibTorch) {
  torch::manual_seed(4);
  for (Kernel k : {Kernel::kGemm, Kernel::kBatched, Kernel::kOneDnn}) {
    if (k == Kernel::kOneDnn && !OneDnnConv::available()) {
      std::printf("no oneDNN in this build: kOneDnn not tested\n");
      continue;
    }
    const int before = g_forced_layers;
    for (int i = 0; i < 16; ++i) {
      const int c = uni(1, 24), h = uni(3, 14), oc = uni(1, 40), pad = uni(0, 2);
      const int kernel = uni(1, std::min(5, h)), stride = uni(1, 2);
      json ls = json::array({layer("conv", "conv2d", "x0",
                                   {{"in_channels", c},
                                    {"out_channels", oc},
                                    {"kernel", kernel},
                                    {"stride", stride},
                                    {"padding", pad},
                                    {"bias", uni(0, 1) == 1}})});
      std::string last = "conv";
      if (i % 2 == 1) {
        ls.push_back(layer("relu", "relu", last));
        last = "relu";
      }
      check(op_model(ls, {{c, h, h}}, last), ls.dump() + " " + kernel_name(k), {.kernel = k}, true);
    }
    for (int i = 0; i < 8; ++i) {
      const int in = uni(1, 300), out = uni(1, 80);
      json ls =
          json::array({layer("fc", "linear", "x0", {{"in_features", in}, {"out_features", out}}),
                       layer("relu", "relu", "fc")});
      check(op_model(ls, {{in}}, "relu"), ls.dump() + " " + kernel_name(k), {.kernel = k}, true);
    }
    // The kernel really ran: on every conv for gemm and oneDNN, on those of batch > 1 for
    // batched (the per-sample rule otherwise).
    EXPECT_GE(g_forced_layers - before, k == Kernel::kBatched ? 1 : 16) << kernel_name(k);
  }
}

// Measurement only decides between candidates; which one wins is the machine's business, so
// the test checks the bookkeeping: the choice is the fastest measured candidate (after the
// handicap), batched is no candidate for one sample, and without measurement the fixed rule holds.
TEST(CpuKernels, MeasuredChoiceIsTheFastestAgreeingCandidateAndTheRuleIsFixed) {
  auto spec = *motifs::branchynet_arch("b-alexnet");
  torch::manual_seed(9);
  nn::Graph g(spec);
  const model::Package pkg{spec, g->export_weights()};
  auto fastest = [](const std::vector<double>& us) {
    int best = 0;
    for (int i = 1; i < static_cast<int>(us.size()); ++i)
      if (us[i] >= 0 &&
          us[i] * kOtherKernelHandicap < (best == 0 ? 1 : kOtherKernelHandicap) * us[best])
        best = i;
    return static_cast<Kernel>(best + 1);
  };
  auto measured = Executor::load(pkg, {.max_batch = 4});
  ASSERT_TRUE(measured.ok()) << measured.status().to_string();
  ASSERT_EQ((*measured)->kernels().size(), 10u) << (*measured)->plan();  // 5 conv, 5 linear
  for (const auto& l : (*measured)->kernels()) {
    SCOPED_TRACE(l.layer);
    ASSERT_EQ(l.us_one.size(), 3u);
    ASSERT_EQ(l.us_many.size(), 3u);
    EXPECT_GT(l.us_one[0], 0);
    EXPECT_GT(l.us_many[0], 0);
    EXPECT_LT(l.us_one[1], 0);
    EXPECT_EQ(l.one, fastest(l.us_one));
    EXPECT_EQ(l.many, fastest(l.us_many));
  }
  EXPECT_GT((*measured)->measure_us(), 0);
  auto fixed = Executor::load(pkg, {.max_batch = 32, .measure = false});
  ASSERT_TRUE(fixed.ok());
  for (const auto& l : (*fixed)->kernels()) {
    EXPECT_TRUE(l.us_one.empty() && l.us_many.empty());
    EXPECT_EQ(l.one, Kernel::kGemm);
  }
  EXPECT_EQ((*fixed)->measure_us(), 0);
  // 7 x 7 outputs fill 49 of 64 gemm columns: batched; 14 x 14 and up per sample; linear
  // layers of >= 32 outputs batched from 8 samples, the 10-class heads not.
  const std::string plan = (*fixed)->plan();
  for (const char* line : {"conv2: conv2d+relu [gemm]\n", "conv3: conv2d+relu [gemm | batched]\n",
                           "fc1: linear+relu [gemm | batched]\n", "b0_fc: linear [gemm]\n"})
    EXPECT_NE(plan.find(line), std::string::npos) << line << plan;
}

TEST_F(CpuOps, PoolingLrnSoftmaxReluDropoutAndBatchNormAloneMatchLibTorch) {
  torch::manual_seed(3);
  for (int i = 0; i < 30; ++i) {
    const int c = uni(1, 8), h = uni(3, 9), w = uni(3, 9);
    const int k = uni(1, std::min(3, std::min(h, w))), pad = uni(0, k / 2), stride = uni(1, 3);
    const std::string pool = i % 2 ? "maxpool2d" : "avgpool2d";
    json ls = json::array(
        {layer("pool", pool, "x0", {{"kernel", k}, {"stride", stride}, {"padding", pad}}),
         layer("lrn", "lrn", "pool",
               {{"size", uni(1, 5)},
                {"alpha", 1e-3 * uni(1, 100)},
                {"beta", 0.25 * uni(1, 4)},
                {"k", 0.5 * uni(1, 4)}}),
         layer("drop", "dropout", "lrn", {{"p", 0.5}}), layer("relu", "relu", "drop"),
         layer("bn", "batchnorm", "relu", {{"num_features", c}}), layer("flat", "flatten", "bn"),
         layer("sm", "softmax", "flat")});
    check(op_model(ls, {{c, h, w}}, "sm"), ls.dump());
  }
}

TEST_F(CpuOps, AggregatesOfSeveralInputsMatchLibTorch) {
  torch::manual_seed(4);
  for (const char* op : {"max", "avg", "concat"}) {
    const int n = uni(1, 20);
    json ls = json::array({{{"name", "agg"},
                            {"type", "aggregate"},
                            {"inputs", {"x0", "x1", "x2"}},
                            {"params", {{"op", op}}}}});
    check(op_model(ls, {{n}, {n}, {n}}, "agg"), op);
  }
}

TEST(CpuPackages, EveryBranchyNetArchitectureMatchesLibTorchStageByStageAtBatch1_5And33) {
  for (const auto& arch : motifs::branchynet_arch_names()) {
    auto spec = *motifs::branchynet_arch(arch);
    torch::manual_seed(5);
    nn::Graph g(spec);
    auto w = g->export_weights();
    for (int batch : {1, 5, 33}) {
      std::vector<int64_t> shape{batch};
      shape.insert(shape.end(), spec.inputs[0].shape.begin(), spec.inputs[0].shape.end());
      for (bool wide : {false, true}) {
        kernels::allow_avx512(wide);
        expect_same_as_graph(spec, w, {torch::randn(shape)},
                             arch + " batch " + std::to_string(batch) + (wide ? " avx512" : ""));
      }
    }
  }
}

TEST(CpuPackages, TrainedBLeNetMatchesTheEngineExitByExitAndFusesItsLayers) {
  const auto dir = testing::tiny_package("b-lenet");
  auto engine = engine::Engine::load(dir, {.backend = engine::Backend::kTorch});
  ASSERT_TRUE(engine.ok());
  auto ex = Executor::load(dir);
  ASSERT_TRUE(ex.ok()) << ex.status().to_string();
  const auto& spec = (*ex)->spec();
  EXPECT_NE((*ex)->plan().find("relu1: fused into pool1"), std::string::npos) << (*ex)->plan();
  EXPECT_NE((*ex)->plan().find("fc1: linear+relu"), std::string::npos) << (*ex)->plan();
  const auto& x = testing::tiny_data().test.x;
  for (int i = 0; i < 8; ++i) {
    auto sample = nn::from_torch(x[i].contiguous());
    ASSERT_TRUE((*ex)->set_input(sample.f32(), 1).is_ok());
    std::vector<std::vector<float>> probs;
    engine::ExitRule never;
    never.threshold = 2.0;
    (void)(*engine)->infer_progressive(sample, never, [&](const engine::ExitEvent& e) {
      probs.push_back(e.probs);
      return true;
    });
    ASSERT_EQ(probs.size(), spec.exits.size());
    for (int s = 0; s < static_cast<int>(spec.stages.size()); ++s) {
      auto ref = (*engine)->run_stages(sample, -1, s);
      ASSERT_TRUE(ref.ok());
      auto got = (*ex)->run_stage(s);
      ASSERT_TRUE(got.ok());
      EXPECT_LE(max_diff(*got, nn::to_torch(*ref)), kTol);
    }
    for (size_t e = 0; e < spec.exits.size(); ++e) {
      auto z = (*ex)->run_exit(static_cast<int>(e));
      ASSERT_TRUE(z.ok());
      auto p =
          torch::softmax(nn::to_torch(core::Tensor::f32({static_cast<int64_t>(z->size())}, *z)) /
                             spec.exits[e].temperature,
                         0);
      EXPECT_LE(max_diff(probs[e], p), kTol) << "exit " << e;
    }
  }
}

TEST(CpuPackages, ACallAllocatesNothing) {
  auto spec = *motifs::branchynet_arch("b-lenet");
  torch::manual_seed(7);
  nn::Graph g(spec);
  // Batch 9 runs fc1 as a gemm over the transposed batch (its scratch is allocated at load too).
  // The fixed rule: our own kernels (oneDNN's execute builds its argument maps on the heap).
  auto ex =
      Executor::load(model::Package{spec, g->export_weights()}, {.max_batch = 9, .measure = false});
  ASSERT_TRUE(ex.ok());
  std::vector<float> x(9 * 28 * 28, 0.25f);
  const int64_t before = g_allocations.load();
  for (int batch : {1, 4, 9}) {
    bool ok = (*ex)->set_input(std::span<const float>(x).first(batch * 28 * 28), batch).is_ok();
    for (int s = 0; s < 2; ++s) ok = ok && (*ex)->run_stage(s).ok() && (*ex)->run_exit(s).ok();
    EXPECT_TRUE(ok);
  }
  EXPECT_EQ(g_allocations.load() - before, 0);
}

TEST(CpuPackages, ExecutorsOfOnePackageRunInParallelOnTheirOwnThreads) {
  auto spec = *motifs::branchynet_arch("b-lenet");
  torch::manual_seed(8);
  nn::Graph g(spec);
  const model::Package pkg{spec, g->export_weights()};
  std::vector<float> x(28 * 28);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 17) / 17.f;
  // The fixed rule: measured choices may differ between executors (timing), and so may the last
  // bit of a sum.
  const ExecutorOptions fixed{.measure = false};
  auto alone = Executor::load(pkg, fixed);
  ASSERT_TRUE(alone.ok());
  ASSERT_TRUE((*alone)->set_input(x, 1).is_ok());
  ASSERT_TRUE((*alone)->run_stage(0).ok());
  ASSERT_TRUE((*alone)->run_stage(1).ok());
  auto ref = *(*alone)->run_exit(1);
  const std::vector<float> want(ref.begin(), ref.end());
  std::vector<std::vector<float>> got(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < got.size(); ++t)
    threads.emplace_back([&, t] {
      auto ex = Executor::load(pkg, fixed);
      if (!ex.ok()) return;
      for (int i = 0; i < 50; ++i) {
        if (!(*ex)->set_input(x, 1).is_ok() || !(*ex)->run_stage(0).ok() ||
            !(*ex)->run_stage(1).ok())
          return;
        auto z = (*ex)->run_exit(1);
        if (!z.ok()) return;
        got[t].assign(z->begin(), z->end());
      }
    });
  for (auto& th : threads) th.join();
  for (const auto& v : got) EXPECT_EQ(v, want);  // bit-identical: same loops, same order
}

TEST(CpuPackages, BadPackagesAndCallsGetClearErrors) {
  auto spec = *motifs::branchynet_arch("b-lenet");
  torch::manual_seed(6);
  nn::Graph g(spec);
  auto w = g->export_weights();
  auto bad = w;
  bad["conv1.weight"] = nn::from_torch(torch::zeros({20, 1, 3, 3}));
  auto r = Executor::load(model::Package{spec, bad});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().to_string().find("conv1.weight"), std::string::npos)
      << r.status().to_string();

  json j = model::to_json(spec);
  j["layers"][0]["type"] = "conv3d";
  auto p = model::parse_model_spec(j);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().to_string().find("conv3d"), std::string::npos) << p.status().to_string();

  auto ex = Executor::load(model::Package{spec, w});
  ASSERT_TRUE(ex.ok());
  EXPECT_FALSE((*ex)->run_stage(0).ok());  // no input yet
  std::vector<float> x(28 * 28, 0.5f);
  EXPECT_FALSE((*ex)->set_input(x, 2).is_ok());  // over max_batch
  EXPECT_FALSE((*ex)->set_input(std::span<const float>(x).first(10), 1).is_ok());
  ASSERT_TRUE((*ex)->set_input(x, 1).is_ok());
  auto s1 = (*ex)->run_stage(1);
  ASSERT_FALSE(s1.ok());
  EXPECT_NE(s1.status().to_string().find("stages before it"), std::string::npos);
  EXPECT_FALSE((*ex)->run_exit(1).ok());
  EXPECT_FALSE((*ex)->run_stage(7).ok());
}

}  // namespace
}  // namespace idn::cpu
