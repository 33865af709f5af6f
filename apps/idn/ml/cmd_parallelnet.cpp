// ParallelNet (dissertation ch. 5) on the command line: `idn train parallelnet` trains a genesis
// model with a Bernoulli(p) mask per mini-batch (Fig. 5.2), `idn parallelnet generate` cuts a
// physically thinner package from it for a p_test or a FLOPs budget (Fig. 5.3), and
// `idn bench parallelnet` measures accuracy, size and CPU time of generated models vs p_test and
// of ensembles vs their size (Figs. 5.7, 5.8, 5.10) into CSV and PNG.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include <torch/torch.h>

#include "../cli.h"
#include "client/ensemble.h"
#include "model/package.h"
#include "motifs/parallelnet.h"
#include "motifs/parallelnet_train.h"
#include "plot.h"

namespace idn::cli {
namespace {

namespace fs = std::filesystem;

// "conv1=0.8" -> per_layer["conv1"] = 0.8.
Status parse_layer_ps(const std::vector<std::string>& specs, motifs::Density& d) {
  for (const auto& s : specs) {
    auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0)
      return Status::invalid_argument("--p-layer '" + s + "' must be LAYER=P, e.g. conv1=0.8");
    try {
      size_t used = 0;
      double p = std::stod(s.substr(eq + 1), &used);
      if (used != s.size() - eq - 1) throw std::invalid_argument(s);
      d.per_layer[s.substr(0, eq)] = p;
    } catch (const std::exception&) {
      return Status::invalid_argument("--p-layer '" + s + "': '" + s.substr(eq + 1) +
                                      "' is not a number");
    }
  }
  return d.validate();
}

struct TrainArgs {
  std::string arch = "alexnet";
  std::string out;
  motifs::ParallelNetTrainOptions opts;
  motifs::DataOptions data;
  std::vector<std::string> layer_ps;
  int threads = 2;
  bool no_sgdr = false;
  std::string scaling = "inverted";
};

int run_train(TrainArgs& a) {
  if (a.threads > 0) torch::set_num_threads(a.threads);
  if (Status s = parse_layer_ps(a.layer_ps, a.opts.p_train); !s.is_ok()) return report(s);
  if (Status s = a.opts.p_train.validate(); !s.is_ok()) return report(s);
  a.opts.train.sgdr = !a.no_sgdr;
  auto scaling = motifs::scaling_from_name(a.scaling);
  if (!scaling.ok()) return report(scaling.status());
  a.opts.scaling = *scaling;
  a.data.seed = a.opts.train.seed;
  std::fprintf(stderr, "loading FashionMNIST...\n");
  auto data = motifs::load_fashion_mnist_tensors(a.data);
  if (!data.ok()) return report(data.status());
  std::fprintf(stderr,
               "training ParallelNet %s at p_train %s (scaling %s) on %lld images, %d threads\n",
               a.arch.c_str(), motifs::to_json(a.opts.p_train).dump().c_str(), a.scaling.c_str(),
               static_cast<long long>(data->train.size()), a.threads);
  auto fit = motifs::fit_parallelnet(a.arch, *data, a.opts, a.out);
  if (!fit.ok()) return report(fit.status());
  double mean = 0;
  for (double v : fit->val_accuracy) mean += v / fit->val_accuracy.size();
  std::printf(
      "validation (%lld images): models drawn at p_train %.2f%% on average (%zu masks), "
      "their ensemble %.2f%%, the unmasked genesis model %.2f%%\n",
      static_cast<long long>(data->val.size()), 100 * mean, fit->val_accuracy.size(),
      100 * fit->val_ensemble_accuracy, 100 * fit->val_genesis_accuracy);
  std::printf("genesis package written to %s (model.json + weights.safetensors)\n", a.out.c_str());
  return 0;
}

struct GenerateArgs {
  std::string genesis, out;
  double p = -1;
  double budget = -1;
  std::vector<std::string> layer_ps;
  uint64_t seed = 1;
};

int run_generate(const GenerateArgs& a) {
  motifs::GenerateOptions o;
  o.seed = a.seed;
  if ((a.p < 0) == (a.budget < 0))
    return report(Status::invalid_argument("give exactly one of --p and --budget-flops"));
  if (a.p >= 0) o.p_test.p = a.p;
  if (a.budget >= 0) o.budget_flops = a.budget;
  if (Status s = parse_layer_ps(a.layer_ps, o.p_test); !s.is_ok()) return report(s);
  auto g = motifs::generate_parallelnet(a.genesis, o);
  if (!g.ok()) return report(g.status());
  if (Status s = model::save_package(g->package, a.out); !s.is_ok()) return report(s);
  std::printf("generated %s from genesis %s (%s), p_test %g, mask seed %llu\n",
              g->package.spec.name.c_str(), a.genesis.c_str(), g->genesis_hash.c_str(), g->p_test.p,
              static_cast<unsigned long long>(a.seed));
  std::printf("  parameters %lld -> %lld (%.1f%%)\n", static_cast<long long>(g->genesis_parameters),
              static_cast<long long>(g->parameters), 100.0 * g->parameters / g->genesis_parameters);
  std::printf("  FLOPs/sample %lld -> %lld (%.1f%%; expected at this p %.0f)\n",
              static_cast<long long>(g->genesis_flops), static_cast<long long>(g->flops),
              100.0 * g->flops / g->genesis_flops, g->expected_flops);
  std::printf("  units kept:");
  for (const auto& [name, k] : g->mask.kept) std::printf(" %s %zu", name.c_str(), k.size());
  std::printf("\npackage written to %s\n", a.out.c_str());
  return 0;
}

// ---- idn bench parallelnet ----

struct BenchArgs {
  std::string genesis;  // empty: train one into MODELS/parallelnet-<arch>-p<p>
  std::string arch = "alexnet";
  double p_train = 0.45;
  int epochs = 3;
  std::string models_dir;
  std::string out_dir = "bench/out";
  std::vector<double> p_tests = {0.2, 0.3, 0.45, 0.6, 0.8, 1.0};
  int masks = 5;
  int max_models = 8;
  int64_t limit_test = 0;
  int timing_samples = 64;
  int threads = 1;
  int train_threads = 2;
  bool quick = false;
};

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

// Median batch-1 wall time per sample of a package's graph (eval, inference mode).
double time_per_sample_us(nn::Graph& g, const torch::Tensor& x, int samples) {
  torch::InferenceMode im;
  g->eval();
  std::vector<double> t;
  const int64_t n = std::min<int64_t>(samples, x.size(0));
  for (int rep = 0; rep < 3; ++rep)
    for (int64_t i = 0; i < n; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      auto acts = g->begin({x.slice(0, i, i + 1)});
      for (int s = 0; s < g->num_stages(); ++s) g->run_stage(s, acts);
      auto z = g->run_exit(g->num_exits() - 1, acts).contiguous();
      volatile float sink = z.data_ptr<float>()[0];
      (void)sink;
      t.push_back(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    }
  return median(t);
}

int run_bench(BenchArgs a) {
  if (a.quick) {
    a.arch = "tiny";
    a.epochs = 3;
    a.p_tests = {0.3, 0.45, 1.0};
    a.masks = 3;
    a.max_models = 4;
    if (a.limit_test == 0) a.limit_test = 1000;
    a.timing_samples = 16;
  }
  if (a.models_dir.empty()) a.models_dir = default_models_dir().string();
  torch::set_num_threads(a.train_threads);
  motifs::DataOptions d;
  d.limit_test = a.limit_test;
  if (a.quick) d.limit_train = 5000, d.validation = 1000;
  std::fprintf(stderr, "loading FashionMNIST...\n");
  auto data = motifs::load_fashion_mnist_tensors(d);
  if (!data.ok()) return report(data.status());
  fs::path genesis = a.genesis;
  if (genesis.empty()) {
    char name[96];
    std::snprintf(name, sizeof name, "parallelnet-%s-p%g%s", a.arch.c_str(), a.p_train,
                  a.quick ? "-quick" : "");
    genesis = fs::path(a.models_dir) / name;
    if (!model::load_package(genesis).ok()) {
      motifs::ParallelNetTrainOptions o;
      o.train = motifs::recommended_train_options("alexnet");
      o.train.epochs = a.epochs;
      if (a.arch == "tiny") o.train.lr = 2e-3;  // the tests' recipe: a thin net, few steps
      o.p_train.p = a.p_train;
      std::fprintf(stderr, "training %s (cached for later runs)\n", genesis.c_str());
      auto fit = motifs::fit_parallelnet(a.arch, *data, o, genesis);
      if (!fit.ok()) return report(fit.status());
    }
  }
  auto gpkg = model::load_package(genesis);
  if (!gpkg.ok()) return report(gpkg.status().with_context("genesis"));
  torch::set_num_threads(a.threads);
  const auto& gs = gpkg->spec;
  auto x = motifs::normalize(data->test.x, gs.preprocess_mean, gs.preprocess_std);
  const auto& y = data->test.y;
  auto yc = y.contiguous();
  std::vector<int> labels(yc.data_ptr<int64_t>(), yc.data_ptr<int64_t>() + yc.numel());

  std::ostringstream csv;
  csv << "kind,p_test,seed_or_n,parameters,flops,accuracy,us_per_sample\n";
  PlotSpec acc_plot{"ParallelNet: accuracy of one generated model vs p (Fig. 5.7)",
                    "p at generation", "test accuracy (%)"};
  PlotSpec ens_plot{"ParallelNet: ensemble accuracy vs number of models (Fig. 5.8)", "models N",
                    "test accuracy (%)"};
  PlotSeries mean_s{"mean over masks", {}, {}, true}, min_s{"min", {}, {}, true},
      max_s{"max", {}, {}, true};
  std::printf(
      "| p_test | parameters | MFLOPs | accuracy mean (min-max) | us/sample | N=%d "
      "ensemble |\n|---|---|---|---|---|---|\n",
      a.max_models);
  double genesis_us = 0;
  for (double p : a.p_tests) {
    std::vector<double> accs, us;
    int64_t params = 0, flops = 0;
    std::vector<torch::Tensor> logits;
    const int models = std::max(a.masks, a.max_models);
    for (int s = 1; s <= models; ++s) {
      motifs::GenerateOptions o;
      o.p_test.p = p;
      o.seed = static_cast<uint64_t>(s);
      auto g = motifs::generate_parallelnet(genesis, o);
      if (!g.ok()) return report(g.status());
      nn::Graph graph(g->package.spec);
      if (Status st = graph->load_weights(g->package.weights); !st.is_ok()) return report(st);
      auto z = motifs::masked_logits(graph, motifs::Mask{}, x);
      if (!z.ok()) return report(z.status());
      logits.push_back(*z);
      if (s > a.masks) continue;
      double acc = z->argmax(1).eq(y).to(torch::kFloat64).mean().item<double>();
      double t = time_per_sample_us(graph, x, a.timing_samples);
      accs.push_back(acc);
      us.push_back(t);
      params += g->parameters / a.masks;
      flops += g->flops / a.masks;
      csv << "model," << p << "," << s << "," << g->parameters << "," << g->flops << "," << acc
          << "," << t << "\n";
    }
    // Ensembles of the first N generated models, combined by the client's rule (Fig. 5.4).
    std::vector<double> ens_acc;
    PlotSeries ens{"p = " + std::to_string(p).substr(0, 4), {}, {}, true};
    for (int n = 1; n <= a.max_models; ++n) {
      auto sum = logits[0].clone();
      for (int k = 1; k < n; ++k) sum += logits[k];
      double acc = sum.argmax(1).eq(y).to(torch::kFloat64).mean().item<double>();
      ens_acc.push_back(acc);
      ens.x.push_back(n);
      ens.y.push_back(100 * acc);
      csv << "ensemble," << p << "," << n << ",,," << acc << ",\n";
    }
    ens_plot.series.push_back(ens);
    // The client's combination of all N answers per sample, byzantine check on: how often it
    // excludes an honest model, and what that costs.
    int64_t excluded = 0, right = 0;
    std::vector<torch::Tensor> rows;
    for (int k = 0; k < a.max_models; ++k) rows.push_back(logits[k].contiguous());
    for (int64_t i = 0; i < x.size(0); ++i) {
      std::vector<client::Answer> answers;
      for (int k = 0; k < a.max_models; ++k) {
        const float* r = rows[k].data_ptr<float>() + i * rows[k].size(1);
        answers.push_back({"m" + std::to_string(k), std::vector<float>(r, r + rows[k].size(1))});
      }
      auto c = client::combine(std::move(answers));
      if (!c.ok()) return report(c.status());
      excluded += static_cast<int64_t>(c->excluded.size());
      right += c->predicted == labels[i];
    }
    const double honest_excluded = static_cast<double>(excluded) / (x.size(0) * a.max_models);
    csv << "ensemble_checked," << p << "," << a.max_models << ",,,"
        << static_cast<double>(right) / x.size(0) << ",\n";
    csv << "honest_excluded_share," << p << "," << a.max_models << ",,," << honest_excluded
        << ",\n";
    double m = 0;
    for (double v : accs) m += v / accs.size();
    mean_s.x.push_back(p), mean_s.y.push_back(100 * m);
    min_s.x.push_back(p), min_s.y.push_back(100 * *std::min_element(accs.begin(), accs.end()));
    max_s.x.push_back(p), max_s.y.push_back(100 * *std::max_element(accs.begin(), accs.end()));
    const double t = median(us);
    if (p == 1.0) genesis_us = t;
    std::printf(
        "| %.2f | %lld | %.2f | %.2f%% (%.2f-%.2f) | %.0f | %.2f%% (checked %.2f%%, "
        "honest answers excluded %.2f%%) |\n",
        p, static_cast<long long>(params), flops / 1e6, 100 * m, min_s.y.back(), max_s.y.back(), t,
        100 * ens_acc.back(), 100.0 * right / x.size(0), 100 * honest_excluded);
  }
  if (genesis_us > 0)
    std::printf(
        "\n(us/sample: median batch-1 time, %d LibTorch thread(s); p_test 1.0 is the "
        "genesis model, %.0f us)\n",
        a.threads, genesis_us);
  acc_plot.series = {mean_s, min_s, max_s};
  std::error_code ec;
  fs::create_directories(a.out_dir, ec);
  const fs::path out(a.out_dir);
  std::ofstream(out / "parallelnet.csv") << csv.str();
  for (const auto& [plot, file] : {std::pair{&acc_plot, "parallelnet_accuracy.png"},
                                   std::pair{&ens_plot, "parallelnet_ensemble.png"}}) {
    Status s = plot_png(*plot, out / file);
    if (!s.is_ok()) std::fprintf(stderr, "no plot %s: %s\n", file, s.to_string().c_str());
  }
  std::printf("written: %s/parallelnet.csv, parallelnet_accuracy.png, parallelnet_ensemble.png\n",
              a.out_dir.c_str());
  return 0;
}

}  // namespace

void register_parallelnet(CLI::App& app, CLI::App& bench) {
  auto t = std::make_shared<TrainArgs>();
  t->opts.train = motifs::recommended_train_options("alexnet");  // Adam 1e-3
  t->opts.p_train.p = 0.45;
  CLI::App* train = app.get_subcommand("train");
  auto* tr = train->add_subcommand(
      "parallelnet",
      "Train a ParallelNet genesis model on FashionMNIST: every mini-batch trains the "
      "sub-network of a Bernoulli(p) mask over filters and neurons (Fig. 5.2; kept outputs x 1/p "
      "unless --scaling none); "
      "writes model.json (motif parallelnet, p_train recorded) + weights.safetensors");
  tr->add_option("--arch", t->arch, "Architecture")
      ->check(CLI::IsMember(motifs::parallelnet_arch_names()))
      ->capture_default_str();
  tr->add_option("--p", t->opts.p_train.p, "Probability of keeping a filter or neuron")
      ->capture_default_str();
  tr->add_option("--p-layer", t->layer_ps, "Per-layer p, LAYER=P (repeatable)");
  tr->add_option("--p-cycle", t->opts.p_train.cycle,
                 "A schedule: the network-wide p of step i is the (i mod n)-th value, e.g. "
                 "0.5,0.1,0.5,0.5")
      ->delimiter(',');
  tr->add_option("--out", t->out, "Output package directory (created)")->required();
  tr->add_option("--epochs", t->opts.train.epochs, "Training epochs")->capture_default_str();
  tr->add_option("--batch", t->opts.train.batch_size, "Mini-batch size")->capture_default_str();
  tr->add_option("--optimizer", t->opts.train.optimizer, "sgd (with momentum) or adam")
      ->check(CLI::IsMember({"sgd", "adam"}))
      ->capture_default_str();
  tr->add_option("--lr", t->opts.train.lr, "Learning rate (SGDR's maximum)")->capture_default_str();
  tr->add_flag("--no-sgdr", t->no_sgdr, "Constant learning rate instead of SGDR");
  tr->add_flag("--augment", t->opts.train.augment, "Pad-4 random crop and horizontal flip");
  tr->add_option("--seed", t->opts.train.seed, "Random seed (init, batches, masks)")
      ->capture_default_str();
  tr->add_option("--data", t->data.dir,
                 "Directory with FashionMNIST IDX files (default: Debian's)");
  tr->add_option("--validation", t->data.validation, "Training images held out for validation")
      ->capture_default_str();
  tr->add_option("--limit", t->data.limit_train, "Train on a random subset of this many images");
  tr->add_option("--eval-masks", t->opts.eval_masks,
                 "Models drawn at p_train scored on the validation split after training")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  tr->add_option("--threads", t->threads, "LibTorch threads")->capture_default_str();
  tr->add_option("--scaling", t->scaling,
                 "inverted: kept filters' and neurons' outputs x 1/p while training, and 1/p_test "
                 "folded into generated models (inverted dropout); none: beta only, as §5 words "
                 "it (deep nets then barely learn at low p)")
      ->check(CLI::IsMember({"inverted", "none"}))
      ->capture_default_str();
  tr->add_flag("--resume", t->opts.train.resume, "Continue from OUT/checkpoint if present");
  tr->callback([t] { run_or_exit(run_train(*t)); });

  auto* pn = app.add_subcommand("parallelnet", "ParallelNet models (dissertation ch. 5)");
  pn->require_subcommand(1);
  auto g = std::make_shared<GenerateArgs>();
  auto* gen = pn->add_subcommand(
      "generate",
      "Cut a physically thinner model from a genesis package (Fig. 5.3): each filter and "
      "neuron kept with probability p (seeded, reproducible), removed ones cut from the weights "
      "and the next layers' inputs; or p chosen as the largest whose expected FLOPs fit a "
      "budget");
  gen->add_option("genesis", g->genesis, "Genesis package directory (idn train parallelnet)")
      ->required();
  gen->add_option("--p", g->p, "p_test: probability of keeping a filter or neuron, in (0, 1]");
  gen->add_option("--budget-flops", g->budget,
                  "Instead of --p: the largest p whose expected FLOPs/sample fit this budget");
  gen->add_option("--p-layer", g->layer_ps, "Per-layer p, LAYER=P (repeatable)");
  gen->add_option("--seed", g->seed, "Mask seed")->capture_default_str();
  gen->add_option("--out", g->out, "Output package directory (created)")->required();
  gen->callback([g] { run_or_exit(run_generate(*g)); });

  auto b = std::make_shared<BenchArgs>();
  auto* bn = bench.add_subcommand(
      "parallelnet",
      "Generated ParallelNet models on FashionMNIST, CPU, batch 1: accuracy (spread over masks), "
      "parameters, FLOPs and time per sample vs p_test (Figs. 5.7, 5.10), ensemble accuracy vs "
      "number of models (Fig. 5.8); trains the genesis model first if it is not cached");
  bn->add_option("--genesis", b->genesis, "A genesis package (default: train/cache one)");
  bn->add_option("--arch", b->arch, "Architecture when training")
      ->check(CLI::IsMember(motifs::parallelnet_arch_names()))
      ->capture_default_str();
  bn->add_option("--p-train", b->p_train, "p_train when training")->capture_default_str();
  bn->add_option("--epochs", b->epochs, "Epochs when training")->capture_default_str();
  bn->add_option("--p-test", b->p_tests, "p_test values")->delimiter(',')->capture_default_str();
  bn->add_option("--masks", b->masks, "Generated models per p_test scored alone")
      ->capture_default_str();
  bn->add_option("--models", b->max_models, "Largest ensemble")->capture_default_str();
  bn->add_option("--limit-test", b->limit_test, "Test images (0: all 10,000)");
  bn->add_option("--cache", b->models_dir, "Model cache directory (default: <idn dir>/models)");
  bn->add_option("--out", b->out_dir, "Where to write parallelnet.csv and the plots")
      ->capture_default_str();
  bn->add_option("--threads", b->threads, "LibTorch threads while measuring")
      ->capture_default_str();
  bn->add_flag("--quick", b->quick,
               "Tiny architecture, three epochs on 5,000 images, 3 p_test values, 1,000 test "
               "images: a smoke run of the whole pipeline in about a minute");
  bn->callback([b] { run_or_exit(run_bench(*b)); });
}

}  // namespace idn::cli
