#include "motifs/parallelnet.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/multihash.h"
#include "model/file_io.h"
#include "motifs/branchynet_arch.h"
#include "motifs/parallelnet_train.h"
#include "support/tiny_model.h"
#include "support/tiny_parallelnet.h"

namespace idn::motifs {
namespace {

namespace fs = std::filesystem;

constexpr double kPTrain = idn::testing::kTinyParallelNetPTrain;

// The tiny genesis (p_train 0.5), trained once and cached in the build tree.
fs::path tiny_genesis() {
  return idn::testing::tiny_parallelnet_genesis();
}

torch::Tensor val_images(const model::ModelSpec& spec, int64_t n) {
  const auto& d = idn::testing::tiny_data();
  return normalize(d.val.x.slice(0, 0, n), spec.preprocess_mean, spec.preprocess_std);
}

Result<torch::Tensor> package_logits(const model::Package& pkg, const torch::Tensor& x) {
  nn::Graph g(pkg.spec);
  IDN_RETURN_IF_ERROR(g->load_weights(pkg.weights));
  return masked_logits(g, Mask{}, x);
}

TEST(ParallelNetArchTest, ThinsEveryConvAndLinearLayerButTheLogits) {
  auto spec = parallelnet_arch("alexnet");
  ASSERT_TRUE(spec.ok()) << spec.status().to_string();
  EXPECT_EQ(spec->motif, "parallelnet");
  auto layers = thinned_layers(*spec);
  ASSERT_TRUE(layers.ok()) << layers.status().to_string();
  std::vector<std::string> names;
  for (const auto& l : *layers) names.push_back(l.name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"conv1", "conv2", "conv3", "conv4", "conv5", "fc1", "fc2"}));
  EXPECT_EQ((*layers)[2].units, 144);
  EXPECT_TRUE(parallelnet_arch("tiny").ok());
  EXPECT_FALSE(parallelnet_arch("resnet").ok());
}

TEST(ParallelNetArchTest, RefusesLayersThatMixRemovedUnits) {
  // B-AlexNet has LRN after conv1: removing a channel changes its neighbours' normalisation.
  auto spec = branchynet_arch("alexnet");
  ASSERT_TRUE(spec.ok());
  auto layers = thinned_layers(*spec);
  ASSERT_FALSE(layers.ok());
  EXPECT_NE(layers.status().message().find("'lrn1'"), std::string::npos)
      << layers.status().to_string();
}

TEST(ParallelNetDensityTest, RefusesPOutsideTheUnitInterval) {
  for (double p : {0.0, -0.1, 1.5, std::nan("")}) {
    Density d;
    d.p = p;
    EXPECT_EQ(d.validate().code(), Code::kInvalidArgument) << p;
  }
  Density ok;
  ok.p = 1.0;
  EXPECT_TRUE(ok.validate().is_ok());
  ok.per_layer["conv1"] = 0;
  EXPECT_FALSE(ok.validate().is_ok());
  ok.per_layer.clear();
  ok.cycle = {0.5, 2.0};
  EXPECT_FALSE(ok.validate().is_ok());
}

TEST(ParallelNetDensityTest, JsonRoundTripsAndRejectsNonsense) {
  Density d;
  d.p = 0.45;
  d.per_layer["conv1"] = 0.9;
  d.cycle = {0.5, 0.1};
  auto back = density_from_json(to_json(d));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, d);
  EXPECT_DOUBLE_EQ(d.at("conv1", 1), 0.9);
  EXPECT_DOUBLE_EQ(d.at("conv2", 1), 0.1);
  EXPECT_DOUBLE_EQ(d.at("conv2", 2), 0.5);
  EXPECT_FALSE(density_from_json(nlohmann::json::parse(R"({"p": "high"})")).ok());
  EXPECT_FALSE(density_from_json(nlohmann::json::parse(R"({"p": 0.5, "x": 1})")).ok());
  EXPECT_FALSE(density_from_json(nlohmann::json::parse(R"({"per_layer": {}})")).ok());
  EXPECT_FALSE(density_from_json(nlohmann::json::parse(R"([0.5])")).ok());
}

TEST(ParallelNetMaskTest, DrawIsSeededAndKeepsAUnitInEveryLayer) {
  auto spec = *parallelnet_arch("alexnet");
  Density d;
  d.p = 0.45;
  auto a = draw_mask(spec, d, 7), b = draw_mask(spec, d, 7), c = draw_mask(spec, d, 8);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_NE(*a, *c);
  EXPECT_TRUE(check_mask(spec, *a).is_ok());
  // Different steps are different sub-networks (training draws one per mini-batch).
  EXPECT_NE(*a, *draw_mask(spec, d, 7, 1));
  d.p = 1.0;
  EXPECT_EQ(draw_mask(spec, d, 3)->kept_units(), 24 + 72 + 144 + 96 + 96 + 384 + 384);
  d.p = 1e-9;
  auto tiny = draw_mask(spec, d, 3);
  ASSERT_TRUE(tiny.ok());
  for (const auto& [name, k] : tiny->kept) EXPECT_EQ(k.size(), 1u) << name;
  d.p = 0.5;
  d.per_layer["relu1"] = 0.5;  // not a thinned layer
  EXPECT_FALSE(draw_mask(spec, d, 1).ok());
}

TEST(ParallelNetMaskTest, GraphRefusesMasksThatDoNotFit) {
  auto spec = *parallelnet_arch("tiny");
  nn::Graph g(spec);
  EXPECT_FALSE(g->set_unit_masks({{"nope", torch::ones({8})}}).is_ok());
  EXPECT_FALSE(g->set_unit_masks({{"conv1", torch::ones({9})}}).is_ok());
  EXPECT_TRUE(g->set_unit_masks({{"conv1", torch::ones({8})}}).is_ok());
  Mask m{{{"conv1", {0}}}};  // misses conv2 and fc1
  EXPECT_FALSE(apply_mask(g, m).is_ok());
  m = *draw_mask(spec, Density{}, 1);
  m.kept["conv1"] = {3, 1};
  EXPECT_FALSE(apply_mask(g, m).is_ok());
  m = *draw_mask(spec, Density{}, 1);
  m.scale["relu1"] = 2;  // not a thinned layer
  EXPECT_FALSE(apply_mask(g, m).is_ok());
  for (double bad : {0.0, -1.0, std::nan("")}) {
    m.scale = {{"conv1", bad}};
    EXPECT_FALSE(apply_mask(g, m).is_ok()) << bad;
  }
}

TEST(ParallelNetMaskTest, InvertedScalingIsOneOverPOfEachLayer) {
  auto spec = *parallelnet_arch("tiny");
  Density d;
  d.p = 0.5;
  d.per_layer["fc1"] = 0.8;
  d.cycle = {0.5, 0.25};
  auto m = *draw_mask(spec, d, 1, /*step=*/1);
  set_scale(m, Scaling::kInverted, d, /*step=*/1);
  EXPECT_DOUBLE_EQ(m.scale.at("conv1"), 4.0);  // the cycle's p at step 1
  EXPECT_DOUBLE_EQ(m.scale.at("fc1"), 1.25);
  set_scale(m, Scaling::kNone, d, 1);
  EXPECT_TRUE(m.scale.empty());
  set_scale(m, Scaling::kInverted, Density{}, 0);  // p = 1: nothing to scale
  EXPECT_TRUE(m.scale.empty());
  EXPECT_EQ(*scaling_from_name("inverted"), Scaling::kInverted);
  EXPECT_EQ(scaling_name(*scaling_from_name("none")), "none");
  EXPECT_FALSE(scaling_from_name("1/p").ok());

  // The graph multiplies a kept unit by its factor and a removed one by 0.
  nn::Graph g(spec);
  Mask all = *draw_mask(spec, Density{}, 1);
  auto x = torch::randn({2, 1, 28, 28});
  auto acts = g->begin({x});
  g->run_stage(0, acts);
  auto plain = acts[1].clone();  // conv1's output: the first layer
  all.scale["conv1"] = 3;
  all.kept["conv1"] = {0, 2};
  ASSERT_TRUE(apply_mask(g, all).is_ok());
  acts = g->begin({x});
  g->run_stage(0, acts);
  EXPECT_TRUE(torch::allclose(acts[1].select(1, 2), 3 * plain.select(1, 2)));
  EXPECT_EQ(acts[1].select(1, 1).abs().max().item<float>(), 0.0f);
}

// Training runs the sub-network physically (apply_thinned): it must compute what the masked
// genesis computes, and move the same weights the same way.
TEST(ParallelNetMaskTest, ThinnedRunEqualsMaskedRunInOutputsAndGradients) {
  auto spec = *parallelnet_arch("alexnet");
  Density d;
  d.p = 0.45;
  auto mask = *draw_mask(spec, d, 7);
  set_scale(mask, Scaling::kInverted, d);
  torch::manual_seed(3);
  nn::Graph g(spec);
  g->train();
  auto x = torch::randn({4, 1, 28, 28});
  auto y = torch::tensor({1, 4, 7, 9}, torch::kInt64);
  auto run = [&](bool thinned) {
    for (auto& p : g->parameters()) p.mutable_grad() = torch::Tensor();
    Status s = thinned ? apply_thinned(g, mask) : apply_mask(g, mask);
    EXPECT_TRUE(s.is_ok()) << s.to_string();
    auto logits = g->forward_all(x)[0];
    torch::nn::functional::cross_entropy(logits, y).backward();
    std::map<std::string, torch::Tensor> grads;
    for (const auto& p : g->named_parameters()) grads[p.key()] = p.value().grad().clone();
    return std::pair{logits.detach(), grads};
  };
  auto [masked, masked_grads] = run(false);
  auto [thin, thin_grads] = run(true);
  EXPECT_TRUE(torch::allclose(thin, masked, 1e-4, 1e-5))
      << "max |diff| " << (thin - masked).abs().max().item<float>();
  ASSERT_EQ(thin_grads.size(), masked_grads.size());
  for (const auto& [name, gm] : masked_grads) {
    const auto& gt = thin_grads.at(name);
    EXPECT_TRUE(torch::allclose(gt, gm, 1e-4, 1e-6))
        << name << ": max |diff| " << (gt - gm).abs().max().item<float>();
  }
  // A removed unit's weights get no gradient at all in the thinned run.
  const auto& dropped = mask.kept.at("conv2");
  int64_t removed = 0;
  while (std::binary_search(dropped.begin(), dropped.end(), removed)) ++removed;
  EXPECT_EQ(thin_grads.at("conv2.weight")[removed].abs().max().item<float>(), 0.0f);
  // Activations are physically narrower: conv2 computes only its kept filters.
  auto acts = g->begin({x});
  g->run_stage(0, acts);
  int64_t widths = 0;
  for (const auto& a : acts)
    if (a.defined() && a.dim() == 4 && a.size(1) == static_cast<int64_t>(dropped.size())) ++widths;
  EXPECT_GT(widths, 0);

  // Removing it restores the full network; bad selections are refused.
  ASSERT_TRUE(apply_thinned(g, Mask{}).is_ok());
  EXPECT_EQ(g->forward_all(x)[0].size(1), 10);
  EXPECT_FALSE(g->set_unit_selection({{"relu1", {{0}, 1}}}).is_ok());
  EXPECT_FALSE(g->set_unit_selection({{"conv1", {{3, 1}, 1}}}).is_ok());
  EXPECT_FALSE(g->set_unit_selection({{"conv1", {{24}, 1}}}).is_ok());
  EXPECT_FALSE(g->set_unit_selection({{"conv1", {{}, 1}}}).is_ok());
  EXPECT_FALSE(g->set_unit_selection({{"fc3", {{0}, 1}}}).is_ok());  // exit logits
  EXPECT_FALSE(g->set_unit_selection({{"nope", {{0}, 1}}}).is_ok());
}

TEST(ParallelNetTrainTest, GenesisRecordsPTrainAndItsSubNetworksLearn) {
  auto pkg = model::load_package(tiny_genesis());
  ASSERT_TRUE(pkg.ok()) << pkg.status().to_string();
  const auto& pn = pkg->spec.operating_point["parallelnet"];
  EXPECT_EQ(pn["role"], "genesis");
  EXPECT_DOUBLE_EQ(pn["p_train"]["p"].get<double>(), kPTrain);
  EXPECT_EQ(pn["scaling"], "inverted");
  // Models drawn at p_train beat chance (10%) by far after five short epochs, and four of them
  // together do at least as well as the average one.
  const auto& v = pn["validation"];
  EXPECT_GT(v["accuracy_mean"].get<double>(), 0.5) << v.dump();
  EXPECT_GE(v["ensemble_accuracy"].get<double>(), v["accuracy_mean"].get<double>()) << v.dump();
}

// The acceptance test of Fig. 5.3: the generated (physically thinner) model computes what the
// genesis model computes with the same mask applied, its 1/p_test factors included (the genesis
// trained with inverted scaling).
TEST(ParallelNetGenerateTest, GeneratedModelEqualsMaskedGenesis) {
  const auto dir = tiny_genesis();
  auto genesis = *model::load_package(dir);
  nn::Graph g(genesis.spec);
  ASSERT_TRUE(g->load_weights(genesis.weights).is_ok());
  auto x = val_images(genesis.spec, 64);
  for (double p : {0.3, 0.45, 0.8, 1.0})
    for (uint64_t seed : {1u, 2u}) {
      GenerateOptions o;
      o.p_test.p = p;
      o.seed = seed;
      auto gen = generate_parallelnet(dir, o);
      ASSERT_TRUE(gen.ok()) << gen.status().to_string();
      const auto& rec = gen->package.spec.operating_point["parallelnet"];
      EXPECT_EQ(rec["scaling"], "inverted");
      EXPECT_EQ(gen->mask.scale.size(), p < 1 ? gen->mask.kept.size() : 0u);
      for (const auto& [name, s] : gen->mask.scale) {
        EXPECT_DOUBLE_EQ(s, 1 / p) << name;
        EXPECT_DOUBLE_EQ(rec["scale"][name].get<double>(), s) << name;
      }
      auto want = masked_logits(g, gen->mask, x);
      auto got = package_logits(gen->package, x);
      ASSERT_TRUE(want.ok() && got.ok());
      EXPECT_TRUE(torch::allclose(*got, *want, /*rtol=*/1e-4, /*atol=*/1e-4))
          << "p " << p << " seed " << seed << ": max |diff| "
          << (*got - *want).abs().max().item<float>();
      // The mask matters: the unmasked genesis answers differently.
      if (p < 1) EXPECT_FALSE(torch::allclose(*got, *masked_logits(g, Mask{}, x), 1e-3, 1e-3));
    }
}

// A genesis that records scaling "none" (or none at all: written before it was recorded) was
// trained without factors; its generated models copy the kept weights unchanged.
TEST(ParallelNetGenerateTest, GenesisWithoutScalingGeneratesUnscaledModels) {
  const auto dir = tiny_genesis();
  auto genesis = *model::load_package(dir);
  const fs::path none =
      fs::path(IDN_BINARY_DIR) / "fixtures" / ("parallelnet-noscale-" + std::to_string(::getpid()));
  GenerateOptions o;
  o.p_test.p = 0.45;
  o.seed = 3;
  auto scaled = generate_parallelnet(dir, o);
  ASSERT_TRUE(scaled.ok()) << scaled.status().to_string();
  for (bool absent : {false, true}) {
    auto pkg = genesis;
    auto& pn = pkg.spec.operating_point["parallelnet"];
    if (absent)
      pn.erase("scaling");
    else
      pn["scaling"] = "none";
    fs::remove_all(none);
    ASSERT_TRUE(model::save_package(pkg, none).is_ok());
    auto gen = generate_parallelnet(none, o);
    ASSERT_TRUE(gen.ok()) << gen.status().to_string();
    EXPECT_TRUE(gen->mask.scale.empty());
    EXPECT_EQ(gen->mask.kept, scaled->mask.kept);
    EXPECT_EQ(gen->package.spec.operating_point["parallelnet"]["scaling"], "none");
    // conv1's kept filters: the same weights, 1/p larger in the scaled package.
    const auto& a = gen->package.weights.at("conv1.weight").f32();
    const auto& b = scaled->package.weights.at("conv1.weight").f32();
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(b[i], a[i] / 0.45, 1e-5) << i;
  }
  auto pkg = genesis;
  pkg.spec.operating_point["parallelnet"]["scaling"] = "sqrt";
  fs::remove_all(none);
  ASSERT_TRUE(model::save_package(pkg, none).is_ok());
  auto bad = generate_parallelnet(none, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("scaling"), std::string::npos) << bad.status().to_string();
  fs::remove_all(none);
}

TEST(ParallelNetGenerateTest, ShrinksParametersAndFlopsByTheMasksShare) {
  const auto dir = tiny_genesis();
  GenerateOptions o;
  o.p_test.p = 0.45;
  o.seed = 11;
  auto gen = generate_parallelnet(dir, o);
  ASSERT_TRUE(gen.ok()) << gen.status().to_string();
  const int64_t k1 = gen->mask.kept.at("conv1").size(), k2 = gen->mask.kept.at("conv2").size(),
                k3 = gen->mask.kept.at("fc1").size();
  // tiny: conv1 1->8 5x5 @28x28, conv2 8->16 5x5 @14x14, fc1 16*7*7->64, fc2 64->10.
  EXPECT_EQ(gen->genesis_parameters, (8 * 25 + 8) + (16 * 8 * 25 + 16) + (64 * 784 + 64) + 650);
  EXPECT_EQ(gen->parameters,
            (k1 * 25 + k1) + (k2 * k1 * 25 + k2) + (k3 * k2 * 49 + k3) + (10 * k3 + 10));
  const auto& layers = gen->package.spec.layers;
  auto flops_of = [&](const std::string& n) { return gen->package.spec.layer(n)->flops; };
  EXPECT_EQ(flops_of("conv1"), 2 * 25 * 1 * k1 * 784 + k1 * 784);
  EXPECT_EQ(flops_of("conv2"), 2 * 25 * k1 * k2 * 196 + k2 * 196);
  EXPECT_EQ(flops_of("fc1"), 2 * k2 * 49 * k3 + k3);
  EXPECT_EQ(flops_of("fc2"), 2 * k3 * 10 + 10);
  EXPECT_FALSE(layers.empty());
  EXPECT_LT(gen->flops, gen->genesis_flops / 2);
  EXPECT_LT(gen->parameters, gen->genesis_parameters / 2);
  // The package's FLOPs are what model.json records and what a descriptor's cost will say.
  EXPECT_EQ(gen->flops, gen->package.spec.trunk_flops());
  EXPECT_EQ(gen->package.weights.at("conv2.weight").shape, (std::vector<int64_t>{k2, k1, 5, 5}));
  EXPECT_EQ(gen->package.weights.at("fc1.weight").shape, (std::vector<int64_t>{k3, k2 * 49}));
}

TEST(ParallelNetGenerateTest, ExpectedFlopsAreTheMeanOverMasks) {
  auto spec = *parallelnet_arch("alexnet");
  model::Package genesis{spec, {}};
  nn::Graph g(spec);
  genesis.weights = g->export_weights();
  for (double p : {0.3, 0.45, 0.8}) {
    Density d;
    d.p = p;
    auto e = expected_flops(spec, d);
    ASSERT_TRUE(e.ok());
    double mean = 0;
    const int n = 200;
    for (int s = 0; s < n; ++s) {
      auto thin = thin_package(genesis, *draw_mask(spec, d, s));
      ASSERT_TRUE(thin.ok()) << thin.status().to_string();
      mean += static_cast<double>(thin->spec.trunk_flops()) / n;
    }
    EXPECT_NEAR(mean / *e, 1.0, 0.02) << "p " << p;
    // Interior layers shrink on both sides: FLOPs fall faster than p.
    EXPECT_LT(*e, p * spec.trunk_flops());
  }
  Density full;
  EXPECT_DOUBLE_EQ(*expected_flops(spec, full), static_cast<double>(spec.trunk_flops()));
}

TEST(ParallelNetGenerateTest, BudgetPicksTheLargestPThatFits) {
  auto spec = *parallelnet_arch("alexnet");
  const double budget = 0.25 * spec.trunk_flops();
  auto p = density_for_budget(spec, Density{}, budget);
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  Density at, above;
  at.p = *p;
  above.p = *p + 1e-4;
  EXPECT_LE(*expected_flops(spec, at), budget);
  EXPECT_GT(*expected_flops(spec, above), budget);
  EXPECT_DOUBLE_EQ(*density_for_budget(spec, Density{}, 2.0 * spec.trunk_flops()), 1.0);
  EXPECT_FALSE(density_for_budget(spec, Density{}, 10).ok());
  EXPECT_FALSE(density_for_budget(spec, Density{}, -1).ok());

  GenerateOptions o;
  o.budget_flops = 0.3 * parallelnet_arch("tiny")->trunk_flops();
  auto gen = generate_parallelnet(tiny_genesis(), o);
  ASSERT_TRUE(gen.ok()) << gen.status().to_string();
  EXPECT_LT(gen->p_test.p, 1.0);
  EXPECT_LE(gen->expected_flops, *o.budget_flops);
  EXPECT_EQ(gen->package.spec.operating_point["parallelnet"]["budget_flops"].get<double>(),
            *o.budget_flops);
}

TEST(ParallelNetGenerateTest, ReproducibleAndNamesItsGenesisAndSeed) {
  const auto dir = tiny_genesis();
  GenerateOptions o;
  o.p_test.p = 0.6;
  o.seed = 5;
  auto a = generate_parallelnet(dir, o), b = generate_parallelnet(dir, o);
  ASSERT_TRUE(a.ok() && b.ok());
  const fs::path out =
      fs::path(IDN_BINARY_DIR) / "fixtures" / ("parallelnet-gen-" + std::to_string(::getpid()));
  ASSERT_TRUE(model::save_package(a->package, out / "a").is_ok());
  ASSERT_TRUE(model::save_package(b->package, out / "b").is_ok());
  for (const auto& f : model::serving_files())
    EXPECT_EQ(*model::read_file(out / "a" / f), *model::read_file(out / "b" / f)) << f;
  o.seed = 6;
  auto c = generate_parallelnet(dir, o);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(c->mask, a->mask);

  const auto& rec = a->package.spec.operating_point["parallelnet"];
  EXPECT_EQ(rec["role"], "generated");
  EXPECT_EQ(rec["mask_seed"], 5);
  EXPECT_DOUBLE_EQ(rec["p_test"]["p"].get<double>(), 0.6);
  EXPECT_DOUBLE_EQ(rec["p_train"]["p"].get<double>(), kPTrain);
  auto json_bytes = *model::read_file(dir / model::kModelJsonFile);
  EXPECT_EQ(rec["genesis"]["model_hash"], core::Multihash::sha2_256(json_bytes).to_base58());
  EXPECT_EQ(a->package.spec.name, "parallelnet-tiny-p0.6-s5");
  // A generated package loads as an ordinary package and is not a genesis itself.
  auto loaded = model::load_package(out / "a");
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  auto again = generate_parallelnet(out / "a", o);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("genesis"), std::string::npos);
  fs::remove_all(out);
}

// A checked generation keeps the most accurate of its candidates on held-out images, and what it
// keeps is exactly the plain generation at the chosen seed (weights byte for byte), with how it
// was chosen recorded. One candidate is the plain draw.
TEST(ParallelNetGenerateTest, CheckedGenerationKeepsTheBestCandidateOnHeldOutImages) {
  const auto dir = tiny_genesis();
  const auto& data = idn::testing::tiny_data();
  auto genesis = *model::load_package(dir);
  ASSERT_TRUE(check_held_out(genesis.spec, data).is_ok())
      << check_held_out(genesis.spec, data).to_string();
  GenerateOptions o;
  o.p_test.p = 0.45;
  o.seed = 3;
  auto one = generate_checked_parallelnet(dir, o, 1, data.val);
  auto plain = generate_parallelnet(dir, o);
  ASSERT_TRUE(one.ok() && plain.ok());
  EXPECT_EQ(one->seed, 3u);
  EXPECT_EQ(one->generated.mask, plain->mask);
  EXPECT_FALSE(one->generated.package.spec.operating_point["parallelnet"].contains("selection"));

  const int k = 4;
  auto best = generate_checked_parallelnet(dir, o, k, data.val);
  ASSERT_TRUE(best.ok()) << best.status().to_string();
  const auto x = normalize(data.val.x, genesis.spec.preprocess_mean, genesis.spec.preprocess_std);
  double top = -1;
  for (int j = 0; j < k; ++j) {
    GenerateOptions oj = o;
    oj.seed = o.seed + static_cast<uint64_t>(j) * kCandidateSeedStride;
    auto g = generate_parallelnet(dir, oj);
    ASSERT_TRUE(g.ok());
    auto logits = package_logits(g->package, x);
    ASSERT_TRUE(logits.ok());
    const double acc = logits->argmax(1).eq(data.val.y).to(torch::kFloat64).mean().item<double>();
    top = std::max(top, acc);
    if (oj.seed == best->seed) {
      EXPECT_EQ(g->mask, best->generated.mask);
      EXPECT_TRUE(g->package.weights == best->generated.package.weights);
      EXPECT_DOUBLE_EQ(acc, best->validation_accuracy);
    }
  }
  EXPECT_DOUBLE_EQ(best->validation_accuracy, top);
  const auto& sel = best->generated.package.spec.operating_point["parallelnet"]["selection"];
  EXPECT_EQ(sel["candidates"], k);
  EXPECT_EQ(sel["first_seed"], 3);
  EXPECT_EQ(sel["validation_samples"], data.val.size());
  EXPECT_EQ(best->generated.package.spec.operating_point["parallelnet"]["mask_seed"], best->seed);

  EXPECT_FALSE(generate_checked_parallelnet(dir, o, 0, data.val).ok());
  EXPECT_FALSE(generate_checked_parallelnet(dir, o, 2, TensorSplit{}).ok());
  // Images from another split may be ones the genesis trained on: refused, saying why.
  LabeledData other = data;
  other.split_seed = data.split_seed + 1;
  Status st = check_held_out(genesis.spec, other);
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_NE(st.message().find("another split"), std::string::npos) << st.to_string();
}

TEST(ParallelNetGenerateTest, BadInputGetsClearErrors) {
  const auto dir = tiny_genesis();
  GenerateOptions o;
  for (double p : {0.0, 1.01, -1.0}) {
    o.p_test.p = p;
    auto r = generate_parallelnet(dir, o);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find("(0, 1]"), std::string::npos) << r.status().to_string();
  }
  o.p_test.p = 0.5;
  auto missing = generate_parallelnet("/nonexistent/genesis", o);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_NE(missing.status().message().find("/nonexistent/genesis"), std::string::npos);

  const fs::path bad =
      fs::path(IDN_BINARY_DIR) / "fixtures" / ("parallelnet-bad-" + std::to_string(::getpid()));
  fs::create_directories(bad);
  fs::copy_file(dir / model::kModelJsonFile, bad / model::kModelJsonFile);
  {
    auto w = *model::read_file(dir / model::kWeightsFile);
    w.resize(w.size() / 2);  // truncated weights
    std::ofstream(bad / model::kWeightsFile, std::ios::binary)
        .write(reinterpret_cast<const char*>(w.data()), static_cast<std::streamsize>(w.size()));
  }
  auto corrupt = generate_parallelnet(bad, o);
  ASSERT_FALSE(corrupt.ok());
  EXPECT_NE(corrupt.status().message().find("weights.safetensors"), std::string::npos)
      << corrupt.status().to_string();
  std::ofstream(bad / model::kModelJsonFile) << "{not json";
  EXPECT_FALSE(generate_parallelnet(bad, o).ok());
  fs::remove_all(bad);

  // A BranchyNet package is not a ParallelNet genesis.
  auto other = generate_parallelnet(idn::testing::tiny_package("b-lenet"), o);
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("not a ParallelNet"), std::string::npos);
}

}  // namespace
}  // namespace idn::motifs
