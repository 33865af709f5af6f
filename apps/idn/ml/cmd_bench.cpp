// idn bench branchynet: the BranchyNet table on FashionMNIST (CPU, batch 1) — baselines vs
// BranchyNets measured in one run, over one or more training seeds (mean ± standard deviation
// of accuracy, loss against the baseline and speed-up), plus the overhead of IDN's inference
// path over a bare LibTorch forward of the same modules. Other benchmarks add subcommands to
// `idn bench`.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include <torch/torch.h>

#include "../cli.h"
#include "backend_option.h"
#include "engine/engine.h"
#include "engine/latency.h"
#include "model/package.h"
#include "motifs/branchynet.h"
#include "nn/graph.h"
#include "plot.h"

namespace idn::cli {

std::filesystem::path default_models_dir() {
  namespace fs = std::filesystem;
  if (const char* c = std::getenv("IDN_CACHE")) return fs::path(c) / "models";
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path("build/models") : exe.parent_path() / "models";
}

namespace {

namespace fs = std::filesystem;

struct BenchArgs {
  std::string models_dir;
  std::string out_dir = "bench/out";
  int threads = 1;
  std::string backend = "auto";  // engine::Backend of the measured engines
  int train_threads = 2;
  int epochs = 4;
  int seeds = 1;
  std::vector<std::string> pairs = {"lenet", "alexnet"};
  double max_drop_points = 0.5;
  double confidence = 0.95;
  int64_t limit_test = 0;
  bool retrain = false;
};

// Seed 1 keeps the historical cache layout (models/<arch>); other seeds get models/seed<N>/.
fs::path package_dir(const BenchArgs& a, int seed, const std::string& arch) {
  fs::path root(a.models_dir);
  return seed == 1 ? root / arch : root / ("seed" + std::to_string(seed)) / arch;
}

// The training seed a package records (packages from before the record: seed 1).
int64_t trained_seed(const model::Package& p) {
  return p.spec.operating_point.value("training", nlohmann::json::object()).value("seed", 1);
}

// Makes dir hold `arch` trained with `seed` and, for a BranchyNet, an operating point chosen
// against `baseline` under the bench's budget: trains when missing (or --retrain, or another
// seed), re-chooses only the operating point when it was chosen by another rule. Returns
// whether it trained.
Result<bool> ensure_package(const std::string& arch, const fs::path& dir, const BenchArgs& a,
                            int seed, const motifs::LabeledData& data, const fs::path& baseline,
                            bool baseline_changed) {
  motifs::OperatingPointOptions op;
  op.max_accuracy_drop = a.max_drop_points / 100;
  op.confidence = a.confidence;
  op.baseline = baseline;
  auto pkg = model::load_package(dir);
  if (!a.retrain && pkg.ok() && trained_seed(*pkg) == seed) {
    if (baseline.empty()) return false;
    auto ref = pkg->spec.operating_point.value("reference", nlohmann::json::object());
    if (!baseline_changed && ref.value("package", "") == baseline.string() &&
        std::abs(ref.value("budget", -1.0) - op.max_accuracy_drop) < 1e-12 &&
        std::abs(ref.value("confidence", -1.0) - op.confidence) < 1e-12)
      return false;
    std::fprintf(stderr, "choosing %s's operating point against %s\n", dir.c_str(),
                 baseline.c_str());
    torch::set_num_threads(a.train_threads);
    auto r = motifs::rechoose_operating_point(dir, data, op);
    torch::set_num_threads(a.threads);
    if (!r.ok()) return r.status();
    return false;
  }
  std::fprintf(stderr, "training %s (seed %d, %d epochs) into %s\n", arch.c_str(), seed, a.epochs,
               dir.c_str());
  torch::set_num_threads(a.train_threads);
  motifs::TrainOptions t = motifs::recommended_train_options(arch);
  t.epochs = a.epochs;
  t.seed = static_cast<uint64_t>(seed);
  std::error_code ec;
  fs::remove_all(dir / "checkpoint", ec);  // a checkpoint of another seed must not be resumed
  auto r = motifs::fit_branchynet(arch, data, t, op, dir);
  torch::set_num_threads(a.threads);
  if (!r.ok()) return r.status();
  return true;
}

// A bare LibTorch forward of a plain chain model: torch::nn::Sequential of stock modules
// holding the package's weights, then softmax and argmax — no IDN code on the path.
struct BareModel {
  torch::nn::Sequential seq;
  torch::Tensor mean, inv_std;
};

Result<BareModel> bare_from_package(const model::Package& pkg) {
  using model::LayerType;
  BareModel b;
  const auto& spec = pkg.spec;
  for (const auto& l : spec.layers) {
    const auto& p = l.params;
    switch (l.type) {
      case LayerType::kConv2d:
        b.seq->push_back(torch::nn::Conv2d(
            torch::nn::Conv2dOptions(p["in_channels"].get<int64_t>(),
                                     p["out_channels"].get<int64_t>(), p["kernel"].get<int64_t>())
                .stride(p.value("stride", 1))
                .padding(p.value("padding", 0))));
        break;
      case LayerType::kLinear:
        b.seq->push_back(
            torch::nn::Linear(p["in_features"].get<int64_t>(), p["out_features"].get<int64_t>()));
        break;
      case LayerType::kReLU:
        b.seq->push_back(torch::nn::ReLU());
        break;
      case LayerType::kMaxPool2d:
        b.seq->push_back(
            torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(p["kernel"].get<int64_t>())
                                     .stride(p["stride"].get<int64_t>())
                                     .padding(p.value("padding", 0))));
        break;
      case LayerType::kFlatten:
        b.seq->push_back(torch::nn::Flatten());
        break;
      case LayerType::kDropout:
        b.seq->push_back(torch::nn::Dropout(p.value("p", 0.5)));
        break;
      case LayerType::kLRN:
        b.seq->push_back(torch::nn::LocalResponseNorm(
            torch::nn::LocalResponseNormOptions(p["size"].get<int64_t>())
                .alpha(p.value("alpha", 1e-4))
                .beta(p.value("beta", 0.75))
                .k(p.value("k", 1.0))));
        break;
      default:
        return Status::unsupported("bare baseline does not handle layer type " +
                                   std::string(model::layer_type_name(l.type)));
    }
  }
  // Copy weights in layer order.
  torch::NoGradGuard ng;
  size_t i = 0;
  for (const auto& l : spec.layers) {
    auto m = b.seq[i++];
    for (auto& prm : m->named_parameters(false)) {
      auto it = pkg.weights.find(l.name + "." + prm.key());
      if (it == pkg.weights.end()) return Status::not_found("weight " + l.name + "." + prm.key());
      prm.value().copy_(nn::to_torch(it->second));
    }
  }
  b.seq->eval();
  int64_t c = spec.inputs[0].shape[0];
  b.mean = torch::tensor(spec.preprocess_mean).reshape({1, c, 1, 1});
  b.inv_std = 1.0 / torch::tensor(spec.preprocess_std).reshape({1, c, 1, 1});
  return b;
}

struct Row {
  int seed = 1;
  std::string model, baseline;
  double accuracy = 0;
  engine::LatencyStats lat;
  double speedup = 1;
  double loss_points = 0;       // baseline accuracy - this accuracy (test split), in points
  double test_loss_upper = 0;   // its one-sided upper bound (paired, test split), in points
  double val_loss_upper = NAN;  // the bound the operating point was chosen with (validation)
  std::string thresholds, exits, branch_cost;
  std::string backend;  // the engine backend that ran it
};

struct MeanSd {
  double mean = 0, sd = 0, min = 0, max = 0;
};
MeanSd mean_sd(const std::vector<double>& v) {
  MeanSd m;
  if (v.empty()) return m;
  m.min = *std::min_element(v.begin(), v.end());
  m.max = *std::max_element(v.begin(), v.end());
  for (double x : v) m.mean += x;
  m.mean /= v.size();
  for (double x : v) m.sd += (x - m.mean) * (x - m.mean);
  m.sd = v.size() > 1 ? std::sqrt(m.sd / (v.size() - 1)) : 0;
  return m;
}

std::string fmt(const char* f, auto... args) {
  char buf[1024];
  std::snprintf(buf, sizeof buf, f, args...);
  return buf;
}

// Measures every package of one seed on the test split (engine, batch 1, one request at a
// time) and appends its rows.
Status measure_seed(const BenchArgs& a, int seed, const std::vector<core::Tensor>& samples,
                    const std::vector<int64_t>& labels, std::vector<Row>& rows) {
  for (const auto& base : a.pairs) {
    double base_mean = 0;
    std::vector<uint8_t> base_correct;
    double base_acc = 0;
    for (const auto& arch : {base, "b-" + base}) {
      fs::path dir = package_dir(a, seed, arch);
      auto eng =
          engine::Engine::load(dir, {.threads = a.threads, .backend = backend_of(a.backend)});
      if (!eng.ok()) return eng.status();
      auto run = engine::run_labelled(**eng, samples, labels);
      if (!run.ok()) return run.status();
      const auto& spec = (*eng)->spec();
      Row r;
      r.seed = seed;
      r.model = arch;
      r.baseline = base;
      r.accuracy = run->accuracy;
      r.lat = run->latency;
      r.backend = std::string(engine::backend_name((*eng)->backend()));
      if (arch == base) {
        base_mean = r.lat.mean_us;
        base_correct = run->correct;
        base_acc = r.accuracy;
      }
      r.speedup = base_mean / r.lat.mean_us;
      auto pl = motifs::paired_loss(base_correct, run->correct, a.confidence);
      r.loss_points = 100 * (base_acc - r.accuracy);
      r.test_loss_upper = 100 * pl.upper;
      auto ref = spec.operating_point.value("reference", nlohmann::json::object());
      if (ref.contains("loss_upper_bound"))
        r.val_loss_upper = 100 * ref["loss_upper_bound"].get<double>();
      std::ostringstream th, ex, bc;
      int64_t trunk = 0;
      for (auto& s : spec.stages) trunk += s.flops;
      for (size_t e = 0; e < spec.exits.size(); ++e) {
        if (e + 1 < spec.exits.size()) {
          th << (e ? " / " : "") << model::criterion_name(spec.exits[e].criterion) << " "
             << spec.exits[e].threshold;
          bc << fmt("%s%s %.1f%% of trunk FLOPs", e ? "; " : "", spec.exits[e].name.c_str(),
                    100.0 * spec.exits[e].flops / trunk);
        }
        ex << fmt("%s%.1f", e ? " / " : "", 100 * run->exit_fraction[e]);
      }
      r.thresholds = th.str().empty() ? "-" : th.str();
      r.exits = ex.str();
      r.branch_cost = bc.str().empty() ? "-" : bc.str();
      rows.push_back(r);
    }
  }
  return Status::ok();
}

// Overhead of IDN's path (Engine: validation, preprocessing, graph, calibrated softmax, exit
// rule) over a bare LibTorch Sequential forward + softmax + argmax of the same modules,
// interleaved sample by sample so both see the same machine state.
Result<std::string> measure_overhead(const BenchArgs& a, const fs::path& dir,
                                     const std::vector<core::Tensor>& samples,
                                     std::ostringstream& csv) {
  IDN_ASSIGN_OR_RETURN(auto pkg, model::load_package(dir));
  IDN_ASSIGN_OR_RETURN(auto bare, bare_from_package(pkg));
  IDN_ASSIGN_OR_RETURN(auto eng, engine::Engine::load(dir, {.threads = a.threads,
                                                            .backend = backend_of(a.backend)}));
  std::vector<double> t_engine, t_bare;
  size_t agree = 0;
  using Clock = std::chrono::steady_clock;
  {
    torch::NoGradGuard ng;
    torch::InferenceMode im;
    for (int pass = 0; pass < 2; ++pass) {  // pass 0 warms up
      for (size_t i = 0; i < samples.size(); ++i) {
        auto t0 = Clock::now();
        auto ev = eng->infer(samples[i]);
        auto t1 = Clock::now();
        auto x = nn::to_torch(samples[i], true).unsqueeze(0);
        auto probs = torch::softmax(bare.seq->forward((x - bare.mean) * bare.inv_std), 1);
        int64_t pred = probs.argmax(1).item<int64_t>();
        auto t2 = Clock::now();
        if (pass == 0 && i >= 200) break;
        if (pass == 0) continue;
        t_engine.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
        t_bare.push_back(std::chrono::duration<double, std::micro>(t2 - t1).count());
        agree += ev.ok() && ev->predicted == pred;
      }
    }
  }
  auto se = engine::latency_stats(t_engine), sb = engine::latency_stats(t_bare);
  csv << "overhead_engine_vs_bare,," << se.mean_us / sb.mean_us << "," << se.mean_us << ","
      << se.median_us << "," << se.p99_us << ",,,,,,,\n";
  return fmt(
      "\nIDN inference path (engine backend %s) vs bare LibTorch forward (%s, same modules and "
      "weights, interleaved, %zu samples): engine mean %.1f us / median %.1f us, bare mean %.1f us "
      "/ "
      "median %.1f us; overhead ratio %.3f (mean), %.3f (median); predictions agree on %zu/%zu.\n",
      std::string(engine::backend_name(eng->backend())).c_str(), pkg.spec.name.c_str(),
      t_engine.size(), se.mean_us, se.median_us, sb.mean_us, sb.median_us, se.mean_us / sb.mean_us,
      se.median_us / sb.median_us, agree, t_engine.size());
}

int run_bench(BenchArgs& a) {
  if (a.models_dir.empty()) a.models_dir = default_models_dir();
  if (a.seeds < 1) return report(Status::invalid_argument("--seeds must be >= 1"));
  std::vector<Row> rows;
  std::vector<core::Tensor> first_samples;
  for (int seed = 1; seed <= a.seeds; ++seed) {
    // Each seed has its own validation split (DataOptions::seed), as `idn train --seed` does.
    motifs::DataOptions d;
    d.limit_test = a.limit_test;
    d.seed = static_cast<uint64_t>(seed);
    auto data = motifs::load_fashion_mnist_tensors(d);
    if (!data.ok()) return report(data.status());
    for (const auto& base : a.pairs) {
      fs::path base_dir = package_dir(a, seed, base);
      auto trained = ensure_package(base, base_dir, a, seed, *data, {}, false);
      if (!trained.ok()) return report(trained.status());
      auto b = ensure_package("b-" + base, package_dir(a, seed, "b-" + base), a, seed, *data,
                              base_dir, *trained);
      if (!b.ok()) return report(b.status());
    }
    torch::set_num_threads(a.threads);
    auto samples = motifs::to_samples(data->test.x);
    auto labels = motifs::to_labels(data->test.y);
    if (auto st = measure_seed(a, seed, samples, labels, rows); !st) return report(st);
    if (seed == 1) first_samples = std::move(samples);
  }

  std::string backends_used;  // of seed 1's engines
  for (auto& r : rows)
    if (r.seed == rows.front().seed)
      backends_used += (backends_used.empty() ? "" : ", ") + r.model + " on " + r.backend;
  std::ostringstream csv, md;
  csv << "seed,model,accuracy,mean_us,median_us,p99_us,speedup_mean,loss_points,"
         "test_loss_upper_points,val_loss_upper_points,thresholds,exit_percent,branch_cost\n";
  for (auto& r : rows)
    csv << r.seed << "," << r.model << "," << r.accuracy << "," << r.lat.mean_us << ","
        << r.lat.median_us << "," << r.lat.p99_us << "," << r.speedup << "," << r.loss_points << ","
        << r.test_loss_upper << "," << (std::isnan(r.val_loss_upper) ? 0 : r.val_loss_upper)
        << ",\"" << r.thresholds << "\",\"" << r.exits << "\",\"" << r.branch_cost << "\"\n";
  md << "FashionMNIST test split (" << first_samples.size() << " images), CPU, batch 1, "
     << a.threads << " LibTorch thread(s), " << a.seeds << " training seed(s); engine backend "
     << a.backend << " (" << backends_used << ")"
     << "; mean is what the BranchyNet paper reports, median and p99 beside "
        "it. loss = baseline accuracy - this accuracy (points, test split); bounds are one-sided "
     << 100 * a.confidence
     << "% paired bounds on it (val: the one the operating point was chosen with).\n\n";
  md << "| seed | model | accuracy | loss vs baseline | bound test / val | mean us | median us | "
        "p99 us | speed-up (mean) | thresholds | exit % per branch | branch cost |\n";
  md << "|---:|---|---:|---:|---|---:|---:|---:|---:|---|---|---|\n";
  for (auto& r : rows) {
    bool branchy = r.model != r.baseline;
    md << fmt("| %d | %s | %.2f%% | %s | %s | %.1f | %.1f | %.1f | %.2fx | %s | %s | %s |\n",
              r.seed, r.model.c_str(), 100 * r.accuracy,
              branchy ? fmt("%+.2f", r.loss_points).c_str() : "-",
              branchy ? fmt("%.2f / %.2f", r.test_loss_upper, r.val_loss_upper).c_str() : "-",
              r.lat.mean_us, r.lat.median_us, r.lat.p99_us, r.speedup, r.thresholds.c_str(),
              r.exits.c_str(), r.branch_cost.c_str());
  }
  // Over seeds: mean ± sample standard deviation (n - 1), and the worst seed's loss.
  md << "\nOver " << a.seeds << " seed(s), mean ± standard deviation:\n\n";
  md << "| pair | baseline accuracy | BranchyNet accuracy | loss vs baseline (points) | worst "
        "seed's loss | speed-up (mean) | exit % at the first branch | seeds within budget "
     << a.max_drop_points << " |\n|---|---:|---:|---:|---:|---:|---:|---:|\n";
  PlotSpec plot{"BranchyNet over training seeds: accuracy loss against the baseline vs speed-up",
                "speed-up over the baseline (mean batch-1 time)",
                "accuracy loss against the baseline (points, test split)",
                {}};
  for (const auto& base : a.pairs) {
    std::vector<double> ba, bb, loss, sp, ex0;
    PlotSeries pts{"b-" + base + " (one point per seed)", {}, {}, false};
    int within = 0;
    for (auto& r : rows) {
      if (r.model == base) ba.push_back(100 * r.accuracy);
      if (r.model != "b-" + base) continue;
      bb.push_back(100 * r.accuracy);
      loss.push_back(r.loss_points);
      sp.push_back(r.speedup);
      ex0.push_back(std::stod(r.exits));
      within += r.loss_points <= a.max_drop_points + 1e-9;
      pts.x.push_back(r.speedup);
      pts.y.push_back(r.loss_points);
    }
    auto A = mean_sd(ba), B = mean_sd(bb), L = mean_sd(loss), S = mean_sd(sp), E = mean_sd(ex0);
    md << fmt(
        "| b-%s vs %s | %.2f ± %.2f%% | %.2f ± %.2f%% | %+.2f ± %.2f | %+.2f | %.2f ± %.2fx | "
        "%.1f ± %.1f | %d/%zu |\n",
        base.c_str(), base.c_str(), A.mean, A.sd, B.mean, B.sd, L.mean, L.sd, L.max, S.mean, S.sd,
        E.mean, E.sd, within, loss.size());
    csv << "summary_b-" << base << ",," << B.mean / 100 << ",,,," << S.mean << "," << L.mean
        << ",,,\"sd: accuracy " << B.sd << " loss " << L.sd << " speedup " << S.sd
        << "; worst loss " << L.max << "\",,\n";
    plot.series.push_back(std::move(pts));
  }
  if (!plot.series.empty()) {
    double hi = 1;
    for (auto& r : rows) hi = std::max(hi, r.speedup);
    plot.series.push_back({"budget", {1.0, hi}, {a.max_drop_points, a.max_drop_points}, true});
  }
  // The overhead line: the first pair's baseline of seed 1.
  auto over = measure_overhead(a, package_dir(a, 1, a.pairs.front()), first_samples, csv);
  if (!over.ok()) return report(over.status());
  md << *over;
  std::error_code ec;
  fs::create_directories(a.out_dir, ec);
  std::ofstream(fs::path(a.out_dir) / "branchynet.csv") << csv.str();
  std::ofstream(fs::path(a.out_dir) / "branchynet.md") << md.str();
  auto png = fs::path(a.out_dir) / "branchynet.png";
  Status plotted = plot_png(plot, png);
  std::printf("%s\nwritten: %s/branchynet.csv, %s/branchynet.md%s\n", md.str().c_str(),
              a.out_dir.c_str(), a.out_dir.c_str(), plotted ? (", " + png.string()).c_str() : "");
  if (!plotted) std::fprintf(stderr, "no plot: %s\n", plotted.to_string().c_str());
  return 0;
}

}  // namespace

void register_bench(CLI::App& bench) {
  auto a = std::make_shared<BenchArgs>();
  auto* b = bench.add_subcommand(
      "branchynet",
      "LeNet vs B-LeNet and AlexNet-style vs B-AlexNet-style on FashionMNIST, CPU, batch 1: "
      "accuracy, loss against the baseline, mean/median/p99 us per sample, speed-up, thresholds, "
      "exit mix, over --seeds training seeds; trains the models first if they are not cached "
      "(each BranchyNet's operating point chosen against its baseline)");
  b->add_option("--models", a->models_dir,
                "Model cache directory (default: <idn binary dir>/models)");
  b->add_option("--out", a->out_dir, "Where to write branchynet.csv and branchynet.md")
      ->capture_default_str();
  b->add_option("--threads", a->threads, "LibTorch threads while measuring")->capture_default_str();
  add_backend_option(b, a->backend);
  b->add_option("--train-threads", a->train_threads, "LibTorch threads while training")
      ->capture_default_str();
  b->add_option("--epochs", a->epochs, "Epochs when a model must be trained")
      ->capture_default_str();
  b->add_option("--seeds", a->seeds,
                "Training seeds 1..N (seed 1 in MODELS/<arch>, others in MODELS/seed<N>/<arch>); "
                "reports mean ± standard deviation over them")
      ->capture_default_str();
  b->add_option("--pairs", a->pairs, "Baselines to compare with their BranchyNets: lenet, alexnet")
      ->delimiter(',')
      ->check(CLI::IsMember({"lenet", "alexnet"}))
      ->capture_default_str();
  b->add_option("--max-drop", a->max_drop_points,
                "Accuracy budget against the baseline (points) for the operating point")
      ->capture_default_str();
  b->add_option("--confidence", a->confidence,
                "One-sided confidence of the paired bound the operating point is chosen with")
      ->check(CLI::Range(0.5, 0.9999))
      ->capture_default_str();
  b->add_option("--limit", a->limit_test, "Measure on a random subset of this many test images");
  b->add_flag("--retrain", a->retrain, "Train even if cached packages exist");
  b->callback([a] { run_or_exit(run_bench(*a)); });
}

}  // namespace idn::cli
