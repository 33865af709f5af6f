// idn bench branchynet: the BranchyNet table on FashionMNIST (CPU, batch 1) — baselines vs
// BranchyNets measured in one run, plus the overhead of IDN's inference path over a bare
// LibTorch forward of the same modules. Other benchmarks add subcommands to `idn bench`.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include <torch/torch.h>

#include "../cli.h"
#include "engine/engine.h"
#include "engine/latency.h"
#include "model/package.h"
#include "motifs/branchynet.h"
#include "nn/graph.h"

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
  int train_threads = 2;
  int epochs = 4;
  int64_t limit_test = 0;
  bool retrain = false;
};

// Trains `arch` into dir unless a valid package is already there.
Status ensure_package(const std::string& arch, const fs::path& dir, const BenchArgs& a,
                      const motifs::LabeledData& data) {
  if (!a.retrain && model::load_package(dir).ok()) return Status::ok();
  std::fprintf(stderr, "training %s (%d epochs) into %s\n", arch.c_str(), a.epochs, dir.c_str());
  torch::set_num_threads(a.train_threads);
  motifs::TrainOptions t = motifs::recommended_train_options(arch);
  t.epochs = a.epochs;
  auto r = motifs::fit_branchynet(arch, data, t, {}, dir);
  torch::set_num_threads(a.threads);
  return r.status();
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
  std::string model;
  double accuracy = 0;
  engine::LatencyStats lat;
  double speedup = 1;
  std::string thresholds, exits, branch_cost;
};

int run_bench(BenchArgs& a) {
  if (a.models_dir.empty()) a.models_dir = default_models_dir();
  motifs::DataOptions d;
  d.limit_test = a.limit_test;
  auto data = motifs::load_fashion_mnist_tensors(d);
  if (!data.ok()) return report(data.status());
  const std::vector<std::pair<std::string, std::string>> pairs = {{"lenet", "b-lenet"},
                                                                  {"alexnet", "b-alexnet"}};
  for (auto& [base, branchy] : pairs)
    for (auto& arch : {base, branchy})
      if (auto st = ensure_package(arch, fs::path(a.models_dir) / arch, a, *data); !st)
        return report(st);
  torch::set_num_threads(a.threads);
  auto samples = motifs::to_samples(data->test.x);
  auto labels = motifs::to_labels(data->test.y);
  std::vector<Row> rows;
  std::ostringstream csv;
  csv << "model,accuracy,mean_us,median_us,p99_us,speedup_mean,thresholds,exit_percent,branch_"
         "cost\n";
  for (auto& [base, branchy] : pairs) {
    double base_mean = 0;
    for (auto& arch : {base, branchy}) {
      fs::path dir = fs::path(a.models_dir) / arch;
      auto eng = engine::Engine::load(dir, {.threads = a.threads});
      if (!eng.ok()) return report(eng.status());
      auto run = engine::run_labelled(**eng, samples, labels);
      if (!run.ok()) return report(run.status());
      const auto& spec = (*eng)->spec();
      Row r;
      r.model = arch;
      r.accuracy = run->accuracy;
      r.lat = run->latency;
      if (arch == base) base_mean = r.lat.mean_us;
      r.speedup = base_mean / r.lat.mean_us;
      std::ostringstream th, ex, bc;
      int64_t trunk = 0;
      for (auto& s : spec.stages) trunk += s.flops;
      for (size_t e = 0; e < spec.exits.size(); ++e) {
        if (e + 1 < spec.exits.size()) {
          th << (e ? " / " : "") << model::criterion_name(spec.exits[e].criterion) << " "
             << spec.exits[e].threshold;
          char buf[96];
          std::snprintf(buf, sizeof buf, "%s%s %.1f%% of trunk FLOPs", e ? "; " : "",
                        spec.exits[e].name.c_str(), 100.0 * spec.exits[e].flops / trunk);
          bc << buf;
        }
        char buf[32];
        std::snprintf(buf, sizeof buf, "%s%.1f", e ? " / " : "", 100 * run->exit_fraction[e]);
        ex << buf;
      }
      r.thresholds = th.str().empty() ? "-" : th.str();
      r.exits = ex.str();
      r.branch_cost = bc.str().empty() ? "-" : bc.str();
      csv << r.model << "," << r.accuracy << "," << r.lat.mean_us << "," << r.lat.median_us << ","
          << r.lat.p99_us << "," << r.speedup << ",\"" << r.thresholds << "\",\"" << r.exits
          << "\",\"" << r.branch_cost << "\"\n";
      rows.push_back(r);
    }
  }
  // Overhead of IDN's path (Engine: validation, preprocessing, graph, calibrated softmax,
  // exit rule) over a bare LibTorch Sequential forward + softmax + argmax of the same modules,
  // interleaved sample by sample so both see the same machine state.
  auto pkg = model::load_package(fs::path(a.models_dir) / "lenet");
  if (!pkg.ok()) return report(pkg.status());
  auto bare = bare_from_package(*pkg);
  if (!bare.ok()) return report(bare.status());
  auto eng = engine::Engine::load(fs::path(a.models_dir) / "lenet", {.threads = a.threads});
  if (!eng.ok()) return report(eng.status());
  std::vector<double> t_engine, t_bare;
  size_t agree = 0;
  using Clock = std::chrono::steady_clock;
  {
    torch::NoGradGuard ng;
    torch::InferenceMode im;
    for (int pass = 0; pass < 2; ++pass) {  // pass 0 warms up
      for (size_t i = 0; i < samples.size(); ++i) {
        auto t0 = Clock::now();
        auto ev = (*eng)->infer(samples[i]);
        auto t1 = Clock::now();
        auto x = nn::to_torch(samples[i], true).unsqueeze(0);
        auto probs = torch::softmax(bare->seq->forward((x - bare->mean) * bare->inv_std), 1);
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

  std::ostringstream md;
  md << "FashionMNIST test split (" << samples.size() << " images), CPU, batch 1, " << a.threads
     << " LibTorch thread(s); mean is what the BranchyNet paper reports, median and p99 beside "
        "it.\n\n";
  md << "| model | accuracy | mean us | median us | p99 us | speed-up (mean) | thresholds | exit % "
        "per branch | branch cost |\n";
  md << "|---|---:|---:|---:|---:|---:|---|---|---|\n";
  for (auto& r : rows) {
    char buf[512];
    std::snprintf(buf, sizeof buf, "| %s | %.2f%% | %.1f | %.1f | %.1f | %.2fx | %s | %s | %s |\n",
                  r.model.c_str(), 100 * r.accuracy, r.lat.mean_us, r.lat.median_us, r.lat.p99_us,
                  r.speedup, r.thresholds.c_str(), r.exits.c_str(), r.branch_cost.c_str());
    md << buf;
  }
  char buf[512];
  std::snprintf(
      buf, sizeof buf,
      "\nIDN inference path vs bare LibTorch forward (lenet, same modules and weights, "
      "interleaved, %zu samples): engine mean %.1f us / median %.1f us, bare mean %.1f us / "
      "median %.1f us; overhead ratio %.3f (mean), %.3f (median); predictions agree on %zu/%zu.\n",
      t_engine.size(), se.mean_us, se.median_us, sb.mean_us, sb.median_us, se.mean_us / sb.mean_us,
      se.median_us / sb.median_us, agree, t_engine.size());
  md << buf;
  csv << "overhead_engine_vs_bare," << se.mean_us / sb.mean_us << "," << se.mean_us << ","
      << se.median_us << "," << se.p99_us << ",,,,\n";
  std::error_code ec;
  fs::create_directories(a.out_dir, ec);
  std::ofstream(fs::path(a.out_dir) / "branchynet.csv") << csv.str();
  std::ofstream(fs::path(a.out_dir) / "branchynet.md") << md.str();
  std::printf("%s\nwritten: %s/branchynet.csv, %s/branchynet.md\n", md.str().c_str(),
              a.out_dir.c_str(), a.out_dir.c_str());
  return 0;
}

}  // namespace

void register_bench(CLI::App& bench) {
  auto a = std::make_shared<BenchArgs>();
  auto* b = bench.add_subcommand(
      "branchynet",
      "LeNet vs B-LeNet and AlexNet-style vs B-AlexNet-style on FashionMNIST, CPU, batch 1: "
      "accuracy, mean/median/p99 us per sample, speed-up, thresholds, exit mix; trains the "
      "models first if they are not cached");
  b->add_option("--models", a->models_dir,
                "Model cache directory (default: <idn binary dir>/models)");
  b->add_option("--out", a->out_dir, "Where to write branchynet.csv and branchynet.md")
      ->capture_default_str();
  b->add_option("--threads", a->threads, "LibTorch threads while measuring")->capture_default_str();
  b->add_option("--train-threads", a->train_threads, "LibTorch threads while training")
      ->capture_default_str();
  b->add_option("--epochs", a->epochs, "Epochs when a model must be trained")
      ->capture_default_str();
  b->add_option("--limit", a->limit_test, "Measure on a random subset of this many test images");
  b->add_flag("--retrain", a->retrain, "Train even if cached packages exist");
  b->callback([a] { run_or_exit(run_bench(*a)); });
}

}  // namespace idn::cli
