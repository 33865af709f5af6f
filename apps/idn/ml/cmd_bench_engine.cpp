// idn bench engine: one package's stages, exit heads and whole passes timed on LibTorch (the
// nn::Graph engine::Engine runs today) and on cpu::Executor in the same run, interleaved call by
// call, at each batch size; mean/median/p99 µs per row, CSV and a plot. Issue 21's yardstick.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "../cli.h"
#include "cpu/executor.h"
#include "cpu/kernels.h"
#include "model/package.h"
#include "motifs/branchynet_arch.h"
#include "nn/graph.h"
#include "plot.h"

namespace idn::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct EngineBenchArgs {
  std::vector<std::string> models;  // package directories
  std::vector<std::string> archs;   // or architectures with random weights
  std::vector<int> batches = {1, 32};
  int iterations = 300;
  int warmup = 30;
  int threads = 1;
  bool avx2_only = false;
  std::string out_dir = "bench/out";
};

struct Row {
  std::string model, item;
  int batch = 1;
  std::vector<double> torch_us, cpu_us;
};

// One thing to time on both backends; both run on the same input, set up by `prepare`.
struct Item {
  std::string name;
  std::function<void()> torch_run, cpu_run;
};

double mean(const std::vector<double>& v) {
  return v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / v.size();
}

Result<std::vector<Row>> bench_package(const std::string& label, const model::Package& pkg,
                                       const EngineBenchArgs& a) {
  const auto& spec = pkg.spec;
  nn::Graph g(spec);
  IDN_RETURN_IF_ERROR(g->load_weights(pkg.weights));
  g->eval();
  torch::NoGradGuard ng;
  std::vector<Row> rows;
  for (int batch : a.batches) {
    IDN_ASSIGN_OR_RETURN(auto ex, cpu::Executor::load(pkg, {.max_batch = batch}));
    std::vector<int64_t> shape{batch};
    shape.insert(shape.end(), spec.inputs[0].shape.begin(), spec.inputs[0].shape.end());
    torch::manual_seed(1);
    const torch::Tensor x = torch::rand(shape);
    const std::span<const float> xs(x.data_ptr<float>(), x.numel());
    // Both backends hold every stage's output, so each stage and exit can run alone.
    auto acts = g->begin({x});
    IDN_RETURN_IF_ERROR(ex->set_input(xs, batch));
    for (int s = 0; s < g->num_stages(); ++s) {
      g->run_stage(s, acts);
      IDN_RETURN_IF_ERROR(ex->run_stage(s).status());
    }
    std::vector<Item> items;
    for (int s = 0; s < g->num_stages(); ++s)
      items.push_back({spec.stages[s].name, [&, s] { g->run_stage(s, acts); },
                       [&, s] { (void)ex->run_stage(s); }});
    for (int e = 0; e < g->num_exits(); ++e)
      items.push_back({spec.exits[e].name + " head", [&, e] { g->run_exit(e, acts); },
                       [&, e] { (void)ex->run_exit(e); }});
    // The cheapest early-exit path (stage 0 and the exits after it) and the whole model.
    auto path = [&](int last_stage) -> Item {
      std::string name = last_stage + 1 == g->num_stages()
                             ? "all stages+exits"
                             : fmt::format("path to stage {}", last_stage);
      return {name,
              [&, last_stage] {
                auto acts2 = g->begin({x});
                for (int s = 0; s <= last_stage; ++s) {
                  g->run_stage(s, acts2);
                  for (int e = 0; e < g->num_exits(); ++e)
                    if (spec.exits[e].stage == s) g->run_exit(e, acts2);
                }
              },
              [&, last_stage] {
                (void)ex->set_input(xs, batch);
                for (int s = 0; s <= last_stage; ++s) {
                  (void)ex->run_stage(s);
                  for (int e = 0; e < g->num_exits(); ++e)
                    if (spec.exits[e].stage == s) (void)ex->run_exit(e);
                }
              }};
    };
    if (g->num_stages() > 1) items.push_back(path(0));
    items.push_back(path(g->num_stages() - 1));
    const size_t first = rows.size();
    for (const auto& it : items) rows.push_back({label, it.name, batch, {}, {}});
    for (int i = 0; i < a.warmup + a.iterations; ++i) {
      for (size_t k = 0; k < items.size(); ++k) {
        // Alternate which backend goes first, so neither always finds the caches warm.
        for (int turn = 0; turn < 2; ++turn) {
          const bool torch_turn = (turn == 0) == (i % 2 == 0);
          auto t0 = Clock::now();
          (torch_turn ? items[k].torch_run : items[k].cpu_run)();
          const double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
          if (i >= a.warmup)
            (torch_turn ? rows[first + k].torch_us : rows[first + k].cpu_us).push_back(us);
        }
      }
    }
  }
  return rows;
}

int run_bench_engine(const EngineBenchArgs& a) {
  if (a.threads > 0) torch::set_num_threads(a.threads);
  cpu::kernels::allow_avx512(!a.avx2_only);
  if (a.iterations < 1) return report(Status::invalid_argument("--iterations must be >= 1"));
  for (int b : a.batches)
    if (b < 1 || b > 4096) return report(Status::invalid_argument("--batch values in [1, 4096]"));
  std::vector<std::pair<std::string, model::Package>> pkgs;
  for (const auto& dir : a.models) {
    auto p = model::load_package(dir);
    if (!p.ok()) return report(p.status());
    pkgs.emplace_back(fs::path(dir).filename().string(), std::move(*p));
  }
  for (const auto& arch : a.archs) {
    auto spec = motifs::branchynet_arch(arch);
    if (!spec.ok()) return report(spec.status());
    torch::manual_seed(1);
    nn::Graph g(*spec);
    pkgs.emplace_back(arch + " (random weights)", model::Package{*spec, g->export_weights()});
  }
  if (pkgs.empty()) return report(Status::invalid_argument("give --model DIR or --arch NAME"));
  std::vector<Row> rows;
  for (const auto& [label, pkg] : pkgs) {
    auto r = bench_package(label, pkg, a);
    if (!r.ok()) return report(r.status().with_context(label));
    rows.insert(rows.end(), r->begin(), r->end());
  }
  std::error_code ec;
  fs::create_directories(a.out_dir, ec);
  const fs::path csv = fs::path(a.out_dir) / "engine.csv";
  std::ofstream o(csv);
  o << "model,batch,item,backend,mean_us,median_us,p99_us,iterations\n";
  std::printf("%d threads, %d iterations (after %d warm-up), interleaved; cpu gemm: %s\n\n",
              a.threads, a.iterations, a.warmup,
              cpu::kernels::has_avx512() && !a.avx2_only ? "AVX-512" : "AVX2");
  std::printf(
      "| model | batch | item | LibTorch median µs (p99) | cpu median µs (p99) | speed-up |\n");
  std::printf("|---|---:|---|---:|---:|---:|\n");
  for (const auto& r : rows) {
    for (int b = 0; b < 2; ++b) {
      const auto& v = b == 0 ? r.torch_us : r.cpu_us;
      o << '"' << r.model << "\"," << r.batch << ",\"" << r.item << "\","
        << (b == 0 ? "libtorch" : "cpu") << ","
        << fmt::format("{:.3f},{:.3f},{:.3f}", mean(v), percentile(v, 0.5), percentile(v, 0.99))
        << "," << v.size() << "\n";
    }
    const double mt = percentile(r.torch_us, 0.5), mc = percentile(r.cpu_us, 0.5);
    std::printf("| %s | %d | %s | %.1f (%.1f) | %.1f (%.1f) | %.2f× |\n", r.model.c_str(), r.batch,
                r.item.c_str(), mt, percentile(r.torch_us, 0.99), mc, percentile(r.cpu_us, 0.99),
                mt / mc);
  }
  std::printf("\nwrote %s\n", csv.c_str());
  // One plot: median µs per row (x = row number), a series per backend and batch.
  PlotSpec spec{
      "idn bench engine: median µs per call", "row (see engine.csv)", "median µs", {}, false, true};
  for (int batch : a.batches)
    for (int b = 0; b < 2; ++b) {
      PlotSeries s{fmt::format("{} batch {}", b == 0 ? "LibTorch" : "cpu", batch), {}, {}, false};
      for (size_t i = 0; i < rows.size(); ++i)
        if (rows[i].batch == batch) {
          s.x.push_back(static_cast<double>(i));
          s.y.push_back(percentile(b == 0 ? rows[i].torch_us : rows[i].cpu_us, 0.5));
        }
      spec.series.push_back(std::move(s));
    }
  const fs::path png = fs::path(a.out_dir) / "engine.png";
  Status ps = plot_png(spec, png);
  if (ps.is_ok())
    std::printf("wrote %s\n", png.c_str());
  else
    std::fprintf(stderr, "no plot: %s\n", ps.to_string().c_str());
  return 0;
}

}  // namespace

void register_bench_engine(CLI::App& bench) {
  auto a = std::make_shared<EngineBenchArgs>();
  auto* b = bench.add_subcommand(
      "engine",
      "Stages, exit heads and whole passes of a package on LibTorch vs the torch-free cpu "
      "executor, interleaved (mean/median/p99 µs, CSV and plot)");
  b->add_option("--model", a->models, "Package directories")->check(CLI::ExistingDirectory);
  b->add_option("--arch", a->archs,
                "Architectures (b-lenet, lenet, b-alexnet, alexnet) with random weights");
  b->add_option("--batch", a->batches, "Batch sizes")->delimiter(',')->capture_default_str();
  b->add_option("--iterations", a->iterations, "Timed calls per row and backend")
      ->capture_default_str();
  b->add_option("--warmup", a->warmup, "Untimed calls first")->capture_default_str();
  b->add_option("--threads", a->threads, "LibTorch intra-op threads")->capture_default_str();
  b->add_flag("--avx2-only", a->avx2_only, "Keep the cpu executor's gemm on AVX2 (no AVX-512)");
  b->add_option("--out", a->out_dir, "Directory for engine.csv and engine.png")
      ->capture_default_str();
  b->callback([a] { run_or_exit(run_bench_engine(*a)); });
}

}  // namespace idn::cli
