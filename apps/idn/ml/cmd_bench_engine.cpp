// idn bench engine: one package's stages, exit heads, whole passes and (--layers) each layer
// alone, with the kernel the cpu executor chose for it, timed on LibTorch (the
// nn::Graph engine::Engine runs today) and on cpu::Executor in the same run, interleaved call by
// call, at each batch size, then on ONNX Runtime (the package's ONNX export under
// onnxruntime-node, interop/onnx_bench.mjs, in its own process); mean/median/p99 µs per row, CSV
// and a plot. Issue 21's yardstick.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "../cli.h"
#include "cpu/executor.h"
#include "cpu/kernels.h"
#include "data/dataset.h"
#include "model/exit_criteria.h"
#include "model/package.h"
#include "motifs/branchynet_arch.h"
#include "nn/graph.h"
#include "onnx/onnx_export.h"
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
  bool no_ort = false;
  bool layers = false;              // also a row per layer
  std::string kernels = "measure";  // the cpu executor's kernel choice (--kernels)
  std::string ort_script = "interop/onnx_bench.mjs";
  std::string out_dir = "bench/out";
  bool test_set = false;  // early exit over FashionMNIST's test images instead of the rows
  std::string data_dir;   // default: Debian's
  int64_t limit = 0;      // first N test images (0: all)
};

struct Row {
  std::string model, item;
  int batch = 1;
  std::vector<double> torch_us, cpu_us, ort_us;  // empty: not run on that backend
};

// One thing to time on both backends; both run on the same input, set up by `prepare`.
struct Item {
  std::string name;
  std::function<void()> torch_run, cpu_run;
};

double mean(const std::vector<double>& v) {
  return v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / v.size();
}

// --kernels: measure (the default), rule (the fixed rule), or one kernel forced where a layer
// has it (gemm, batched, onednn).
cpu::ExecutorOptions executor_options(const EngineBenchArgs& a, int batch) {
  cpu::ExecutorOptions o{.max_batch = batch};
  if (a.kernels == "rule") o.measure = false;
  for (auto k : {cpu::Kernel::kGemm, cpu::Kernel::kBatched, cpu::Kernel::kOneDnn})
    if (a.kernels == cpu::kernel_name(k)) o.kernel = k;
  return o;
}

// The executor's plan as layer -> what it runs ("conv2d+relu [gemm | onednn]", "fused into
// conv1", "view").
std::map<std::string, std::string> plan_lines(const cpu::Executor& ex) {
  std::map<std::string, std::string> m;
  std::istringstream in(ex.plan());
  for (std::string line; std::getline(in, line);) {
    const size_t colon = line.find(": ");
    if (colon != std::string::npos) m[line.substr(0, colon)] = line.substr(colon + 2);
  }
  return m;
}

// One layer of `pkg` alone, with the layers the executor fused into it (a ReLU, a batch norm),
// as a one-stage package on the layer's own input shape, so that both backends run just that:
// the per-layer rows. Errors: a layer of several inputs (aggregates).
Result<model::Package> layer_package(const model::Package& pkg, const std::string& name,
                                     const std::map<std::string, std::string>& plan) {
  const auto& spec = pkg.spec;
  const model::LayerSpec* l = spec.layer(name);
  if (!l || l->inputs.size() != 1)
    return Status::unsupported("layer '" + name + "' does not have one input");
  std::vector<int64_t> in_shape;
  if (const model::LayerSpec* src = spec.layer(l->inputs[0]))
    in_shape = src->out_shape;
  else
    for (const auto& i : spec.inputs)
      if (i.name == l->inputs[0]) in_shape = i.shape;
  nlohmann::json j = model::to_json(spec);
  nlohmann::json layers = nlohmann::json::array(), names = nlohmann::json::array();
  std::string last = "x";
  for (const auto& li : j["layers"]) {
    const std::string n = li["name"];
    auto it = plan.find(n);
    if (n != name && (it == plan.end() || it->second != "fused into " + name)) continue;
    nlohmann::json copy = li;
    copy["inputs"] = {last};
    layers.push_back(copy);
    names.push_back(n);
    last = n;
  }
  j["inputs"] = {{{"name", "x"}, {"dtype", "F32"}, {"shape", in_shape}}};
  j["layers"] = layers;
  j["stages"] = {{{"name", "s0"}, {"layers", names}, {"output", last}}};
  // The exit (never run here) flattens, since an exit's output must be [classes].
  j["layers"].push_back({{"name", "e0_flat"}, {"type", "flatten"}, {"inputs", {last}}});
  j["exits"] = {{{"name", "e0"},
                 {"stage", 0},
                 {"layers", {"e0_flat"}},
                 {"output", "e0_flat"},
                 {"criterion", "confidence"},
                 {"threshold", 1.0}}};
  j.erase("preprocess");
  j.erase("labels");  // of the model's classes, not this layer's outputs
  IDN_ASSIGN_OR_RETURN(model::ModelSpec one, model::parse_model_spec(j));
  model::Package out{std::move(one), {}};
  for (const auto& [w, t] : pkg.weights)
    for (const auto& n : names)
      if (w.starts_with(n.get<std::string>() + ".")) out.weights.emplace(w, t);
  return out;
}

// One layer's package (--layers) for the ORT column: its rows' items per batch size.
struct LayerPackage {
  std::string label;  // the model's
  model::Package pkg;
  std::map<int, std::string> items;  // batch -> the row's item
};

Result<std::vector<Row>> bench_package(const std::string& label, const model::Package& pkg,
                                       const EngineBenchArgs& a, std::vector<std::string>& notes,
                                       std::vector<LayerPackage>& layer_pkgs) {
  const auto& spec = pkg.spec;
  nn::Graph g(spec);
  IDN_RETURN_IF_ERROR(g->load_weights(pkg.weights));
  g->eval();
  torch::NoGradGuard ng;
  std::vector<Row> rows;
  for (int batch : a.batches) {
    IDN_ASSIGN_OR_RETURN(auto ex, cpu::Executor::load(pkg, executor_options(a, batch)));
    notes.push_back(
        fmt::format("{} batch {}: cpu executor measured its kernels in {:.1f} ms at load", label,
                    batch, ex->measure_us() / 1e3));
    if (a.layers) {
      // What each candidate measured at load (µs per call at batch 1 | at this batch).
      auto us = [](const std::vector<double>& v) {
        std::string out;
        const char* names[] = {"gemm", "batched", "onednn"};
        for (size_t i = 0; i < v.size(); ++i)
          if (v[i] >= 0) out += fmt::format("{}{} {:.1f}", out.empty() ? "" : ", ", names[i], v[i]);
        return out.empty() ? std::string("-") : out;
      };
      for (const auto& l : ex->kernels())
        notes.push_back(fmt::format("  {}: {} | {}", l.layer, us(l.us_one), us(l.us_many)));
    }
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
    // Per layer (--layers): each layer that runs an op, alone, in stage and exit order (the
    // closures own the layer's graph, executor and input).
    struct LayerRun {
      nn::Graph g{nullptr};
      std::unique_ptr<cpu::Executor> ex;
      torch::Tensor x;
      nn::Activations acts;
    };
    if (a.layers) {
      const auto plan = plan_lines(*ex);
      std::vector<std::string> order;
      for (const auto& st : spec.stages)
        order.insert(order.end(), st.layers.begin(), st.layers.end());
      for (const auto& e : spec.exits) order.insert(order.end(), e.layers.begin(), e.layers.end());
      for (const auto& name : order) {
        const std::string what = plan.at(name);
        if (what == "view" || what.starts_with("fused into ")) continue;
        auto lp = layer_package(pkg, name, plan);
        if (!lp.ok()) {  // aggregates: their inputs are several layers
          notes.push_back(
              fmt::format("{}: no row for layer {}: {}", label, name, lp.status().to_string()));
          continue;
        }
        auto r = std::make_shared<LayerRun>();
        r->g = nn::Graph(lp->spec);
        IDN_RETURN_IF_ERROR(r->g->load_weights(lp->weights));
        r->g->eval();
        IDN_ASSIGN_OR_RETURN(r->ex, cpu::Executor::load(*lp, executor_options(a, batch)));
        std::vector<int64_t> lshape{batch};
        lshape.insert(lshape.end(), lp->spec.inputs[0].shape.begin(),
                      lp->spec.inputs[0].shape.end());
        r->x = torch::rand(lshape);
        r->acts = r->g->begin({r->x});
        IDN_RETURN_IF_ERROR(
            r->ex->set_input({r->x.data_ptr<float>(), static_cast<size_t>(r->x.numel())}, batch));
        const std::string label_line = plan_lines(*r->ex).at(name);
        const std::string item = "layer " + name + ": " + label_line;
        auto kept = std::find_if(layer_pkgs.begin(), layer_pkgs.end(), [&](const auto& l) {
          return l.label == label && l.pkg.spec.stages[0].layers == lp->spec.stages[0].layers;
        });
        if (kept == layer_pkgs.end())
          kept = layer_pkgs.insert(layer_pkgs.end(), LayerPackage{label, *lp, {}});
        kept->items[batch] = item;
        items.push_back(
            {item, [r] { r->g->run_stage(0, r->acts); }, [r] { (void)r->ex->run_stage(0); }});
      }
    }
    const size_t first = rows.size();
    for (const auto& it : items) rows.push_back({label, it.name, batch, {}, {}, {}});
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

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Exports `pkg` to ONNX under `dir` and times it with onnx_bench.mjs; merges its rows into
// `rows` (same model, batch and item) and adds the call-overhead row after each batch's rows.
// With `layer`, `pkg` is one layer's package: only its stage's times are kept, as that layer's
// rows (the overhead row is the model's).
Status add_ort_rows(const std::string& label, const model::Package& pkg, const fs::path& dir,
                    const EngineBenchArgs& a, std::vector<Row>& rows,
                    const LayerPackage* layer = nullptr) {
  IDN_ASSIGN_OR_RETURN(onnx::OnnxExport ex, onnx::export_package(pkg));
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  if (ec) return Status::io_error("cannot create " + dir.string() + ": " + ec.message());
  auto write = [&](const std::string& name, const std::string& bytes) -> Status {
    std::ofstream f(dir / name, std::ios::binary);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return f ? Status::ok() : Status::io_error("cannot write " + (dir / name).string());
  };
  for (const auto& g : ex.graphs) IDN_RETURN_IF_ERROR(write(g.file, g.bytes));
  IDN_RETURN_IF_ERROR(write(onnx::kManifestFile, ex.manifest));
  std::string batches;
  for (int b : a.batches) batches += (batches.empty() ? "" : ",") + std::to_string(b);
  const std::string cmd = "node " + shell_quote(a.ort_script) + " --dir " +
                          shell_quote(dir.string()) + " --batches " + batches + " --iterations " +
                          std::to_string(a.iterations) + " --warmup " + std::to_string(a.warmup) +
                          " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return Status::io_error("cannot start node: " + std::string(std::strerror(errno)));
  std::string out;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int rc = pclose(p);
  if (rc != 0)
    return Status::io_error("`" + cmd + "` failed (exit " + std::to_string(rc) + "): " + out);
  size_t pos = 0;
  while (pos < out.size()) {
    size_t end = out.find('\n', pos);
    if (end == std::string::npos) end = out.size();
    const auto j = nlohmann::json::parse(out.substr(pos, end - pos), nullptr, false);
    pos = end + 1;
    if (j.is_discarded() || !j.is_object() || !j.contains("us")) continue;
    std::string item = j.value("item", "");
    const int batch = j.value("batch", 0);
    auto us = j.at("us").get<std::vector<double>>();
    if (layer) {
      auto named = layer->items.find(batch);
      if (item != pkg.spec.stages[0].name || named == layer->items.end()) continue;
      item = named->second;
    }
    auto same = [&](const Row& r) { return r.model == label && r.batch == batch; };
    auto it = std::find_if(rows.begin(), rows.end(),
                           [&](const Row& r) { return same(r) && r.item == item; });
    if (it != rows.end()) {
      it->ort_us = std::move(us);
      continue;
    }
    auto last = std::find_if(rows.rbegin(), rows.rend(), same);
    rows.insert(last.base(), Row{label, item, batch, {}, {}, std::move(us)});
  }
  return Status::ok();
}

// "ran onnx_bench.mjs ..." or why the ORT column is empty; adds the ORT rows to `rows`.
std::string run_ort(const std::vector<std::pair<std::string, model::Package>>& pkgs,
                    const std::vector<LayerPackage>& layer_pkgs, const EngineBenchArgs& a,
                    std::vector<Row>& rows) {
  if (a.no_ort) return "skipped (--no-ort)";
  const fs::path script(a.ort_script);
  const fs::path modules = script.parent_path() / "node_modules" / "onnxruntime-node";
  if (!fs::exists(script) || !fs::exists(modules) ||
      std::system("command -v node >/dev/null 2>&1") != 0)
    return "skipped: needs node, " + script.string() + " and " + modules.string() +
           " (run scripts/setup; give --ort-script when not run from the repository root)";
  std::string note;
  for (size_t i = 0; i < pkgs.size(); ++i) {
    const fs::path dir = fs::path(a.out_dir) / "onnx" / fmt::format("model_{}", i);
    Status s = add_ort_rows(pkgs[i].first, pkgs[i].second, dir, a, rows);
    if (!s.is_ok()) note += "; " + pkgs[i].first + " skipped: " + s.to_string();
  }
  // --layers: each layer's own package, exported and timed alone like the model's.
  for (size_t i = 0; i < layer_pkgs.size(); ++i) {
    const LayerPackage& l = layer_pkgs[i];
    const fs::path dir = fs::path(a.out_dir) / "onnx" / fmt::format("layer_{}", i);
    Status s = add_ort_rows(l.label, l.pkg, dir, a, rows, &l);
    if (!s.is_ok())
      note += "; " + l.label + " layer " + l.pkg.spec.stages[0].layers[0] +
              " skipped: " + s.to_string();
  }
  return "onnxruntime-node under " + a.ort_script +
         " (CPU EP, 1 intra-op + 1 inter-op thread, graph optimisation all, its own process "
         "after the other two; each call includes building the input tensors from JS and "
         "awaiting session.run, see the Identity row)" +
         note;
}

std::string cell(const std::vector<double>& v) {
  return v.empty() ? "-" : fmt::format("{:.1f} ({:.1f})", percentile(v, 0.5), percentile(v, 0.99));
}
std::string ratio(const std::vector<double>& num, const std::vector<double>& den) {
  return num.empty() || den.empty()
             ? "-"
             : fmt::format("{:.2f}×", percentile(num, 0.5) / percentile(den, 0.5));
}

// One package over the test images at batch 1, on both backends, with the package's exit rule
// (temperature softmax and criterion per exit, the last exit always answers), image by image,
// the two backends alternating which goes first. Timed per image: preprocessing, every stage
// up to the exit taken, every head on the way and each exit decision.
struct TestSetResult {
  std::string model;
  std::vector<double> torch_us, cpu_us;
  std::vector<int64_t> exit_count;
  std::vector<int> exit_of;  // per image, the cpu executor's exit
  int64_t correct = 0, agree = 0, n = 0;
  double flops = 0;  // mean per image for the exits taken
};

Result<TestSetResult> run_test_set(const std::string& label, const model::Package& pkg,
                                   const data::Dataset& d, const EngineBenchArgs& a) {
  const auto& spec = pkg.spec;
  nn::Graph g(spec);
  IDN_RETURN_IF_ERROR(g->load_weights(pkg.weights));
  g->eval();
  torch::NoGradGuard ng;
  IDN_ASSIGN_OR_RETURN(auto ex, cpu::Executor::load(pkg, executor_options(a, 1)));
  const int64_t c = d.c;
  torch::Tensor mean, inv_std;
  if (!spec.preprocess_mean.empty()) {
    mean = torch::tensor(spec.preprocess_mean).reshape({1, c, 1, 1});
    std::vector<float> inv;
    for (float sd : spec.preprocess_std) inv.push_back(1.f / sd);
    inv_std = torch::tensor(inv).reshape({1, c, 1, 1});
  }
  TestSetResult r{label, {}, {}, std::vector<int64_t>(spec.exits.size(), 0)};
  std::vector<float> probs(spec.num_classes());
  // Each backend's answer for one image: exit taken and predicted class.
  auto decide = [&](int e, std::span<const float> logits) {
    model::softmax_with_temperature(logits, spec.exits[e].temperature, probs);
    const bool last = e + 1 == static_cast<int>(spec.exits.size());
    return last || model::should_exit(spec.exits[e].criterion, spec.exits[e].threshold, probs);
  };
  auto torch_run = [&](const float* img) -> std::pair<int, int> {
    torch::Tensor x = torch::from_blob(const_cast<float*>(img), {1, c, d.h, d.w});
    if (mean.defined()) x = (x - mean) * inv_std;
    auto acts = g->begin({x});
    for (int s = 0; s < g->num_stages(); ++s) {
      g->run_stage(s, acts);
      for (int e = 0; e < g->num_exits(); ++e) {
        if (spec.exits[e].stage != s) continue;
        torch::Tensor z = g->run_exit(e, acts).contiguous();
        if (decide(e, {z.data_ptr<float>(), static_cast<size_t>(z.numel())}))
          return {e, model::argmax(probs)};
      }
    }
    return {-1, -1};
  };
  auto cpu_run = [&](std::span<const float> img) -> std::pair<int, int> {
    if (!ex->set_input(img, 1).is_ok()) return {-1, -1};
    for (int s = 0; s < static_cast<int>(spec.stages.size()); ++s) {
      if (!ex->run_stage(s).ok()) return {-1, -1};
      for (int e = 0; e < static_cast<int>(spec.exits.size()); ++e) {
        if (spec.exits[e].stage != s) continue;
        auto z = ex->run_exit(e);
        if (!z.ok()) return {-1, -1};
        if (decide(e, *z)) return {e, model::argmax(probs)};
      }
    }
    return {-1, -1};
  };
  const int64_t n = a.limit > 0 ? std::min(a.limit, d.n) : d.n;
  for (int64_t i = -a.warmup; i < n; ++i) {
    const int64_t idx = i < 0 ? (-i - 1) % d.n : i;
    std::pair<int, int> got[2];
    double us[2];
    for (int turn = 0; turn < 2; ++turn) {
      const int b = (turn == 0) == (i % 2 == 0) ? 0 : 1;  // 0: LibTorch, 1: cpu
      auto t0 = Clock::now();
      got[b] = b == 0 ? torch_run(d.image(idx).data()) : cpu_run(d.image(idx));
      us[b] = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    }
    if (got[1].first < 0)
      return Status::internal("cpu executor failed on image " + std::to_string(idx));
    if (i < 0) continue;
    r.torch_us.push_back(us[0]);
    r.cpu_us.push_back(us[1]);
    ++r.n;
    r.agree += got[0] == got[1];
    r.correct += got[1].second == d.labels[idx];
    const int e = got[1].first;
    ++r.exit_count[e];
    r.exit_of.push_back(e);
    // FLOPs: every stage up to the exit's, every head of those stages up to this exit.
    double f = 0;
    for (int s = 0; s <= spec.exits[e].stage; ++s) f += static_cast<double>(spec.stages[s].flops);
    for (int j = 0; j <= e; ++j) f += static_cast<double>(spec.exits[j].flops);
    r.flops += f;
  }
  r.flops /= static_cast<double>(std::max<int64_t>(1, r.n));
  return r;
}

// Sum over exits of (share of images leaving there) x (median µs of those images): a mean per
// image that a few preempted calls on a shared machine cannot move.
double mix_median(const TestSetResult& r, const std::vector<double>& us) {
  double t = 0;
  for (size_t e = 0; e < r.exit_count.size(); ++e) {
    std::vector<double> v;
    for (size_t i = 0; i < us.size(); ++i)
      if (r.exit_of[i] == static_cast<int>(e)) v.push_back(us[i]);
    if (!v.empty()) t += percentile(v, 0.5) * static_cast<double>(v.size()) / us.size();
  }
  return t;
}

int run_test_set_mode(const EngineBenchArgs& a,
                      const std::vector<std::pair<std::string, model::Package>>& pkgs) {
  const fs::path dir =
      a.data_dir.empty() ? data::default_fashion_mnist_dir() : fs::path(a.data_dir);
  auto d = data::load_fashion_mnist(dir, data::Split::kTest);
  if (!d.ok()) return report(d.status());
  std::vector<TestSetResult> res;
  for (const auto& [label, pkg] : pkgs) {
    if (pkg.spec.inputs.size() != 1 ||
        pkg.spec.inputs[0].shape != std::vector<int64_t>{d->c, d->h, d->w})
      return report(Status::invalid_argument(label + ": --test-set needs a model of one [" +
                                             fmt::format("{}, {}, {}", d->c, d->h, d->w) +
                                             "] input"));
    auto r = run_test_set(label, pkg, *d, a);
    if (!r.ok()) return report(r.status().with_context(label));
    res.push_back(std::move(*r));
  }
  std::printf(
      "FashionMNIST test set, %lld images at batch 1 (after %d warm-up), one thread, the "
      "package's exit rule; speed-ups against %s (the first --model)\n\n",
      static_cast<long long>(res[0].n), a.warmup, res[0].model.c_str());
  std::printf(
      "| model | accuracy | loss vs first (points) | exit %% per exit | MFLOPs per image | "
      "FLOPs speed-up | LibTorch mean µs (median; mix x exit medians) | cpu mean µs (median; "
      "mix x exit medians) | speed-up LibTorch, mean (mix) | speed-up cpu, mean (mix) | cpu / "
      "FLOPs, mean (mix) | backends agree |\n");
  std::printf("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  const fs::path csv = fs::path(a.out_dir) / "engine_test_set.csv";
  std::error_code ec;
  fs::create_directories(a.out_dir, ec);
  std::ofstream o(csv);
  o << "model,images,accuracy,exit_fractions,mflops_per_image,torch_mean_us,torch_median_us,"
       "torch_mix_median_us,cpu_mean_us,cpu_median_us,cpu_mix_median_us,agree\n";
  const auto& base = res[0];
  for (const auto& r : res) {
    std::string mix;
    for (size_t e = 0; e < r.exit_count.size(); ++e)
      mix += fmt::format("{}{:.1f}", e ? " / " : "", 100.0 * r.exit_count[e] / r.n);
    const double acc = 100.0 * r.correct / r.n, base_acc = 100.0 * base.correct / base.n;
    const double flops_up = base.flops / r.flops;
    const double up_t = mean(base.torch_us) / mean(r.torch_us);
    const double up_c = mean(base.cpu_us) / mean(r.cpu_us);
    const double mt = mix_median(r, r.torch_us), mc = mix_median(r, r.cpu_us);
    const double mup_t = mix_median(base, base.torch_us) / mt;
    const double mup_c = mix_median(base, base.cpu_us) / mc;
    std::printf(
        "| %s | %.2f%% | %+.2f | %s | %.3f | %.2f× | %.1f (%.1f; %.1f) | %.1f (%.1f; %.1f) | "
        "%.2f× (%.2f×) | %.2f× (%.2f×) | %.0f%% (%.0f%%) | %.2f%% |\n",
        r.model.c_str(), acc, base_acc - acc, mix.c_str(), r.flops / 1e6, flops_up,
        mean(r.torch_us), percentile(r.torch_us, 0.5), mt, mean(r.cpu_us),
        percentile(r.cpu_us, 0.5), mc, up_t, mup_t, up_c, mup_c, 100.0 * up_c / flops_up,
        100.0 * mup_c / flops_up, 100.0 * r.agree / r.n);
    o << '"' << r.model << "\"," << r.n << "," << fmt::format("{:.4f}", acc / 100) << ",\"" << mix
      << "\"," << fmt::format("{:.4f}", r.flops / 1e6) << ","
      << fmt::format("{:.3f},{:.3f},{:.3f},{:.3f},{:.3f},{:.3f},{:.4f}", mean(r.torch_us),
                     percentile(r.torch_us, 0.5), mt, mean(r.cpu_us), percentile(r.cpu_us, 0.5), mc,
                     static_cast<double>(r.agree) / r.n)
      << "\n";
  }
  std::printf("\nwrote %s\n", csv.c_str());
  return 0;
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
  if (a.test_set) return run_test_set_mode(a, pkgs);
  std::vector<Row> rows;
  std::vector<std::string> notes;
  std::vector<LayerPackage> layer_pkgs;
  for (const auto& [label, pkg] : pkgs) {
    auto r = bench_package(label, pkg, a, notes, layer_pkgs);
    if (!r.ok()) return report(r.status().with_context(label));
    rows.insert(rows.end(), r->begin(), r->end());
  }
  std::error_code ec;
  fs::create_directories(a.out_dir, ec);
  const std::string ort_note = run_ort(pkgs, layer_pkgs, a, rows);
  const fs::path csv = fs::path(a.out_dir) / "engine.csv";
  std::ofstream o(csv);
  o << "model,batch,item,backend,mean_us,median_us,p99_us,iterations\n";
  std::printf(
      "%d threads, %d iterations (after %d warm-up), LibTorch and cpu interleaved; cpu "
      "gemm: %s\nONNX Runtime: %s\n",
      a.threads, a.iterations, a.warmup,
      cpu::kernels::has_avx512() && !a.avx2_only ? "AVX-512" : "AVX2", ort_note.c_str());
  for (const auto& n : notes) std::printf("%s\n", n.c_str());
  std::printf("\n");
  std::printf(
      "| model | batch | item | LibTorch median µs (p99) | cpu median µs (p99) | ORT median µs "
      "(p99) | cpu speed-up vs LibTorch | vs ORT |\n");
  std::printf("|---|---:|---|---:|---:|---:|---:|---:|\n");
  const char* kBackends[] = {"libtorch", "cpu", "onnxruntime"};
  for (const auto& r : rows) {
    const std::vector<double>* vs[] = {&r.torch_us, &r.cpu_us, &r.ort_us};
    for (int b = 0; b < 3; ++b) {
      const auto& v = *vs[b];
      if (v.empty()) continue;
      o << '"' << r.model << "\"," << r.batch << ",\"" << r.item << "\"," << kBackends[b] << ","
        << fmt::format("{:.3f},{:.3f},{:.3f}", mean(v), percentile(v, 0.5), percentile(v, 0.99))
        << "," << v.size() << "\n";
    }
    std::printf("| %s | %d | %s | %s | %s | %s | %s | %s |\n", r.model.c_str(), r.batch,
                r.item.c_str(), cell(r.torch_us).c_str(), cell(r.cpu_us).c_str(),
                cell(r.ort_us).c_str(), ratio(r.torch_us, r.cpu_us).c_str(),
                ratio(r.ort_us, r.cpu_us).c_str());
  }
  std::printf("\nwrote %s\n", csv.c_str());
  // One plot: median µs per row (x = row number), a series per backend and batch.
  PlotSpec spec{
      "idn bench engine: median µs per call", "row (see engine.csv)", "median µs", {}, false, true};
  const char* kNames[] = {"LibTorch", "cpu", "ORT"};
  for (int batch : a.batches)
    for (int b = 0; b < 3; ++b) {
      PlotSeries s{fmt::format("{} batch {}", kNames[b], batch), {}, {}, false};
      for (size_t i = 0; i < rows.size(); ++i) {
        const auto& v = b == 0 ? rows[i].torch_us : b == 1 ? rows[i].cpu_us : rows[i].ort_us;
        if (rows[i].batch == batch && !v.empty()) {
          s.x.push_back(static_cast<double>(i));
          s.y.push_back(percentile(v, 0.5));
        }
      }
      if (!s.x.empty()) spec.series.push_back(std::move(s));
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
      "executor, interleaved, and on ONNX Runtime (mean/median/p99 µs, CSV and plot)");
  b->add_option("--model", a->models, "Package directories")->check(CLI::ExistingDirectory);
  b->add_option("--arch", a->archs,
                "Architectures (b-lenet, lenet, b-alexnet, alexnet) with random weights");
  b->add_option("--batch", a->batches, "Batch sizes")->delimiter(',')->capture_default_str();
  b->add_option("--iterations", a->iterations, "Timed calls per row and backend")
      ->capture_default_str();
  b->add_option("--warmup", a->warmup, "Untimed calls first")->capture_default_str();
  b->add_option("--threads", a->threads, "LibTorch intra-op threads")->capture_default_str();
  b->add_flag("--avx2-only", a->avx2_only, "Keep the cpu executor's gemm on AVX2 (no AVX-512)");
  b->add_flag("--no-ort", a->no_ort, "Leave out the ONNX Runtime column");
  b->add_option("--kernels", a->kernels,
                "cpu executor's conv/linear kernels: measure (chosen at load by timing), rule "
                "(the fixed rule), or gemm, batched, onednn forced where a layer has it")
      ->check(CLI::IsMember({"measure", "rule", "gemm", "batched", "onednn"}))
      ->capture_default_str();
  b->add_flag("--layers", a->layers,
              "Also a row per layer: each layer that runs an op (with what the cpu executor "
              "fused into it) as a model of its own on LibTorch, the cpu executor and ONNX "
              "Runtime (its own ONNX export), with the kernel the executor chose ([batch 1 | "
              "batch 2..N])");
  b->add_option("--ort-script", a->ort_script,
                "interop/onnx_bench.mjs (node_modules beside it holds onnxruntime-node)")
      ->capture_default_str();
  b->add_flag("--test-set", a->test_set,
              "Instead: each --model over FashionMNIST's test images at batch 1 with its exit "
              "rule on both backends (accuracy, exit mix, µs per image, speed-up against the "
              "first model (--model ones before --arch ones) and what FLOPs predict)");
  b->add_option("--data", a->data_dir,
                "FashionMNIST IDX directory for --test-set (default: Debian's)");
  b->add_option("--limit", a->limit, "--test-set: only the first N images");
  b->add_option("--out", a->out_dir,
                "Directory for engine.csv, engine.png and the ONNX export (onnx/)")
      ->capture_default_str();
  b->callback([a] { run_or_exit(run_bench_engine(*a)); });
}

}  // namespace idn::cli
