// idn eval (accuracy-time trade-off of a package on the test split) and idn infer (one input).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "../cli.h"
#include "backend_option.h"
#include "client/blocking.h"
#include "cpu/executor.h"
#include "engine/engine.h"
#include "engine/latency.h"
#include "ise/service_descriptor.h"
#include "model/package.h"
#include "model/safetensors.h"
#include "motifs/branchynet.h"
#include "node/node.h"
#include "plot.h"
#include "routing/dht_routing.h"

namespace idn::cli {
namespace {

struct EvalArgs {
  std::string dir;
  motifs::DataOptions data;
  bool json = false;
  std::string csv, plot;
  int threads = 1;
  std::string backend = "auto";
};

std::string join(const std::vector<double>& v, const char* fmt, const char* sep = "/") {
  std::string s;
  char buf[64];
  for (size_t i = 0; i < v.size(); ++i) {
    std::snprintf(buf, sizeof buf, fmt, v[i]);
    s += (i ? sep : "") + std::string(buf);
  }
  return s;
}

// measure_component_costs for the cpu backend: the batch-1 median time of each stage and exit
// head on cpu::Executor, over `samples` (model inputs, not preprocessed) `reps` times.
Result<motifs::ComponentCosts> cpu_component_costs(const model::Package& pkg,
                                                   const torch::Tensor& samples, int reps) {
  IDN_ASSIGN_OR_RETURN(auto ex, cpu::Executor::load(pkg));
  const auto& spec = pkg.spec;
  std::vector<std::vector<double>> st(spec.stages.size()), et(spec.exits.size());
  using Clock = std::chrono::steady_clock;
  auto us = [](Clock::time_point t0) {
    return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
  };
  for (int r = 0; r < reps; ++r)
    for (int64_t i = 0; i < samples.size(0); ++i) {
      auto x = samples[i].contiguous();
      IDN_RETURN_IF_ERROR(ex->set_input({x.data_ptr<float>(), static_cast<size_t>(x.numel())}, 1));
      for (size_t s = 0; s < spec.stages.size(); ++s) {
        auto t0 = Clock::now();
        IDN_RETURN_IF_ERROR(ex->run_stage(static_cast<int>(s)).status());
        st[s].push_back(us(t0));
        for (size_t e = 0; e < spec.exits.size(); ++e) {
          if (spec.exits[e].stage != static_cast<int>(s)) continue;
          auto t1 = Clock::now();
          IDN_RETURN_IF_ERROR(ex->run_exit(static_cast<int>(e)).status());
          et[e].push_back(us(t1));
        }
      }
    }
  auto median = [](std::vector<double> v) {
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v[v.size() / 2];
  };
  motifs::ComponentCosts c;
  for (size_t s = 0; s < st.size(); ++s) {
    c.stage_us.push_back(median(st[s]));
    c.stage_flops.push_back(spec.stages[s].flops);
  }
  for (size_t e = 0; e < et.size(); ++e) {
    c.exit_us.push_back(median(et[e]));
    c.exit_flops.push_back(spec.exits[e].flops);
  }
  return c;
}

int run_eval(EvalArgs& a) {
  torch::set_num_threads(a.threads);
  auto pkg = model::load_package(a.dir);
  if (!pkg.ok()) return report(pkg.status());
  auto engine =
      engine::Engine::load(a.dir, {.threads = a.threads, .backend = backend_of(a.backend)});
  if (!engine.ok()) return report(engine.status());
  a.data.validation = 0;
  auto data = motifs::load_fashion_mnist_tensors(a.data);
  if (!data.ok()) return report(data.status());
  const auto& spec = pkg->spec;
  if (static_cast<int>(data->class_names.size()) != spec.num_classes())
    return report(Status::invalid_argument("model has " + std::to_string(spec.num_classes()) +
                                           " classes, the data set " +
                                           std::to_string(data->class_names.size())));
  // Profile on the test split: every exit's calibrated probabilities, component costs.
  nn::Graph graph(spec);
  if (auto st = graph->load_weights(pkg->weights); !st) return report(st);
  graph->eval();
  auto x = data->test.x;
  if (!spec.preprocess_mean.empty())
    x = motifs::normalize(x, spec.preprocess_mean, spec.preprocess_std);
  auto logits = motifs::exit_logits(graph, x);
  std::vector<double> temps;
  for (auto& e : spec.exits) temps.push_back(e.temperature);
  auto scores = motifs::exit_scores(logits, temps);
  auto labels = motifs::to_labels(data->test.y);
  // Part costs on the backend that runs (the profile's times are modelled from them).
  motifs::ComponentCosts costs;
  if ((*engine)->backend() == engine::Backend::kCpu) {
    auto c = cpu_component_costs(*pkg, data->test.x.slice(0, 0, 64), 5);
    if (!c.ok()) return report(c.status());
    costs = std::move(*c);
  } else {
    costs = motifs::measure_component_costs(graph, x.slice(0, 0, 64), 5);
  }
  auto profile = motifs::sweep_thresholds(spec, scores, labels, costs);
  auto front = motifs::pareto_front(profile);
  std::vector<double> current;
  for (auto& e : spec.exits) current.push_back(e.threshold);
  auto modelled = motifs::evaluate_point(spec, scores, labels, costs, current);
  // Measured: the engine's batch-1 fast inference at the package's thresholds.
  auto samples = motifs::to_samples(data->test.x);
  auto run = engine::run_labelled(**engine, samples, labels);
  if (!run.ok()) return report(run.status());

  nlohmann::json j;
  j["model"] = spec.name;
  j["package"] = a.dir;
  j["test_samples"] = samples.size();
  j["threads"] = a.threads;
  j["backend"] = engine::backend_name((*engine)->backend());
  j["backend_reason"] = (*engine)->backend_reason();
  j["measured"] = {{"accuracy", run->accuracy},           {"mean_us", run->latency.mean_us},
                   {"median_us", run->latency.median_us}, {"p99_us", run->latency.p99_us},
                   {"mean_flops", run->mean_flops},       {"exit_fraction", run->exit_fraction}};
  j["modelled_at_thresholds"] = motifs::to_json(modelled);
  j["exits"] = nlohmann::json::array();
  for (size_t e = 0; e < spec.exits.size(); ++e) {
    double acc = logits[e].argmax(1).eq(data->test.y).to(torch::kFloat64).mean().item<double>();
    j["exits"].push_back({{"name", spec.exits[e].name},
                          {"stage", spec.exits[e].stage},
                          {"criterion", model::criterion_name(spec.exits[e].criterion)},
                          {"threshold", spec.exits[e].threshold},
                          {"temperature", spec.exits[e].temperature},
                          {"head_flops", spec.exits[e].flops},
                          {"head_us", costs.exit_us[e]},
                          {"accuracy_alone", acc}});
  }
  j["stages"] = nlohmann::json::array();
  for (size_t s = 0; s < spec.stages.size(); ++s)
    j["stages"].push_back({{"name", spec.stages[s].name},
                           {"flops", spec.stages[s].flops},
                           {"us", costs.stage_us[s]}});
  j["pareto_front"] = nlohmann::json::array();
  for (auto& p : front) j["pareto_front"].push_back(motifs::to_json(p));

  if (!a.csv.empty()) {
    std::ofstream f(a.csv);
    f << "thresholds,accuracy,mean_us_modelled,median_us_modelled,mean_flops,exit_fraction,"
         "pareto\n";
    for (auto& p : profile) {
      bool on_front = false;
      for (auto& q : front) on_front |= q.thresholds == p.thresholds;
      f << join(p.thresholds, "%.6g", ";") << "," << p.accuracy << "," << p.mean_us << ","
        << p.median_us << "," << p.mean_flops << "," << join(p.exit_fraction, "%.4f", ";") << ","
        << on_front << "\n";
    }
    if (!f) return report(Status::io_error("cannot write " + a.csv));
  }
  if (!a.plot.empty()) {
    PlotSpec ps;
    ps.title = spec.name + ": accuracy vs batch-1 time (FashionMNIST test)";
    ps.xlabel = "mean time per sample (us, modelled from measured stage costs)";
    ps.ylabel = "accuracy (%)";
    PlotSeries curve{"Pareto front of exit thresholds", {}, {}, true};
    for (auto& p : front) curve.x.push_back(p.mean_us), curve.y.push_back(100 * p.accuracy);
    PlotSeries op{
        "operating point (measured)", {run->latency.mean_us}, {100 * run->accuracy}, false};
    ps.series = {curve, op};
    if (auto st = plot_png(ps, a.plot); !st) return report(st);
  }
  if (a.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("model %s (%s): %zu stages, %zu exits; %zu test samples; %d thread(s)\n",
              spec.name.c_str(), spec.motif.c_str(), spec.stages.size(), spec.exits.size(),
              samples.size(), a.threads);
  std::printf("engine backend %s\n\n", (*engine)->backend_reason().c_str());
  std::printf(
      "| part | MFLOPs | median us (batch 1) | criterion | threshold | T | accuracy alone |\n");
  std::printf("|---|---:|---:|---|---:|---:|---:|\n");
  for (size_t s = 0; s < spec.stages.size(); ++s) {
    std::printf("| %s | %.3f | %.1f | | | | |\n", spec.stages[s].name.c_str(),
                spec.stages[s].flops / 1e6, costs.stage_us[s]);
    for (size_t e = 0; e < spec.exits.size(); ++e) {
      if (spec.exits[e].stage != static_cast<int>(s)) continue;
      auto& ej = j["exits"][e];
      std::printf("| %s head | %.3f | %.1f | %s | %.4f | %.3f | %.2f%% |\n",
                  spec.exits[e].name.c_str(), spec.exits[e].flops / 1e6, costs.exit_us[e],
                  std::string(model::criterion_name(spec.exits[e].criterion)).c_str(),
                  spec.exits[e].threshold, spec.exits[e].temperature,
                  100 * ej["accuracy_alone"].get<double>());
    }
  }
  std::printf("\nmeasured at the package's thresholds (batch 1, %zu samples):\n", samples.size());
  std::printf("  accuracy %.2f%%  mean %.1f us  median %.1f us  p99 %.1f us  mean %.3f MFLOPs\n",
              100 * run->accuracy, run->latency.mean_us, run->latency.median_us,
              run->latency.p99_us, run->mean_flops / 1e6);
  std::vector<double> exit_pct;
  for (double f : run->exit_fraction) exit_pct.push_back(100 * f);
  std::printf("  exit mix %s %% (per exit)\n", join(exit_pct, "%.1f").c_str());
  std::printf(
      "\ntrade-off profile on the test split (Pareto front; time modelled from the part costs "
      "above):\n");
  std::printf(
      "| thresholds | accuracy | mean us | median us | MFLOPs | exit %% "
      "|\n|---|---:|---:|---:|---:|---|\n");
  size_t step = std::max<size_t>(1, front.size() / 15);
  for (size_t i = 0; i < front.size(); i += step) {
    auto& p = front[i];
    std::vector<double> early(p.thresholds.begin(), p.thresholds.end() - 1);
    std::vector<double> pct;
    for (double f : p.exit_fraction) pct.push_back(100 * f);
    std::printf("| %s | %.2f%% | %.1f | %.1f | %.3f | %s |\n", join(early, "%.4f", ",").c_str(),
                100 * p.accuracy, p.mean_us, p.median_us, p.mean_flops / 1e6,
                join(pct, "%.0f").c_str());
  }
  if (!a.csv.empty()) std::printf("\nprofile written to %s\n", a.csv.c_str());
  if (!a.plot.empty()) std::printf("plot written to %s\n", a.plot.c_str());
  return 0;
}

struct InferArgs {
  std::string dir, input;
  int64_t test_index = -1;
  std::string data_dir;
  int threads = 1;
  std::string backend = "auto";
  // Remote: a service on the network instead of a local package.
  std::string service;
  std::vector<std::string> bootstrap;
  // Ask these peers (multiaddrs ending in /p2p/<id>) instead of the DHT's providers: a peer
  // outside the DHT, such as a js-libp2p peer of @idn/client serving the service.
  std::vector<std::string> providers;
  int fanout = 2;
  int deadline_ms = 5000;
};

// Reads an input tensor: .safetensors (the tensor named "input", or the only one) or a binary
// PGM image (P5, 8-bit), scaled to [0, 1].
Result<core::Tensor> read_input(const std::string& path) {
  if (path.size() > 12 && path.substr(path.size() - 12) == ".safetensors") {
    IDN_ASSIGN_OR_RETURN(auto st, model::load_safetensors(path));
    if (st.tensors.count("input")) return st.tensors.at("input");
    if (st.tensors.size() == 1) return st.tensors.begin()->second;
    return Status::invalid_argument(path +
                                    ": expected a tensor named 'input' or exactly one tensor");
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::not_found("cannot open input file " + path);
  std::string magic;
  int w = 0, h = 0, maxv = 0;
  f >> magic >> w >> h >> maxv;
  f.get();
  if (magic != "P5" || w <= 0 || h <= 0 || maxv <= 0 || maxv > 255 || w * h > (1 << 24))
    return Status::invalid_argument(path +
                                    ": not a .safetensors file or an 8-bit binary PGM (P5) image");
  std::vector<uint8_t> px(static_cast<size_t>(w) * h);
  f.read(reinterpret_cast<char*>(px.data()), px.size());
  if (f.gcount() != static_cast<std::streamsize>(px.size()))
    return Status::corruption(path + ": PGM image truncated");
  std::vector<float> v(px.size());
  for (size_t i = 0; i < px.size(); ++i) v[i] = px[i] / static_cast<float>(maxv);
  return core::Tensor::f32({1, h, w}, v);
}

// The input of `idn infer`: --input FILE or --test-index N (with its label).
Result<std::pair<core::Tensor, int64_t>> infer_input(const InferArgs& a) {
  if (!a.input.empty()) {
    IDN_ASSIGN_OR_RETURN(auto in, read_input(a.input));
    return std::pair{std::move(in), int64_t{-1}};
  }
  motifs::DataOptions d;
  d.dir = a.data_dir;
  d.validation = 0;
  d.limit_train = 1;
  IDN_ASSIGN_OR_RETURN(auto data, motifs::load_fashion_mnist_tensors(d));
  if (a.test_index < 0 || a.test_index >= data.test.size())
    return Status::invalid_argument("--test-index must be in [0, " +
                                    std::to_string(data.test.size() - 1) + "]");
  return std::pair{motifs::to_samples(data.test.x.slice(0, a.test_index, a.test_index + 1))[0],
                   data.test.y[a.test_index].item<int64_t>()};
}

// idn infer --service ID: joins the network through --bootstrap as a client node, asks
// --fanout providers at once and prints every improving answer as it arrives.
int run_remote_infer(const InferArgs& a) {
  auto sid = ise::parse_service_id(a.service);
  if (!sid.ok()) return report(sid.status().with_context("--service"));
  if (a.bootstrap.empty() && a.providers.empty())
    return report(Status::invalid_argument(
        "--service needs --bootstrap MULTIADDR of a node of the network (ending in /p2p/<id>) "
        "or --provider MULTIADDR of a peer to ask"));
  auto in = infer_input(a);
  if (!in.ok()) return report(in.status());
  std::vector<core::Multiaddr> direct;
  for (const auto& text : a.providers) {
    auto addr = core::Multiaddr::parse(text);
    if (!addr.ok()) return report(addr.status().with_context("--provider " + text));
    direct.push_back(std::move(*addr));
  }
  return with_client_node(a.bootstrap, [&](node::Node& nd) {
    client::SessionOptions so;
    so.fanout = static_cast<size_t>(a.fanout);
    so.deadline = std::chrono::milliseconds(a.deadline_ms);
    if (direct.empty()) {
      if (Status s = nd.routing()->wait_connected(std::chrono::seconds(20)); !s.is_ok())
        return report(s.with_context("joining the DHT"));
    }
    auto session = nd.block_on([&]() -> p2p::awaitable<Result<std::shared_ptr<client::Session>>> {
      if (direct.empty()) co_return nd.session(*sid, so);
      std::vector<identity::PeerId> peers;
      for (const auto& addr : direct) {
        auto peer = co_await nd.host().dial(addr);
        if (!peer.ok()) co_return peer.status().with_context("--provider " + addr.to_string());
        peers.push_back(*peer);
      }
      co_return std::make_shared<client::Session>(
          nd.io().get_executor(), nd.host(), client::fixed_providers(std::move(peers)), *sid, so);
    });
    if (!session.ok()) return report(session.status());
    auto stream = client::infer_stream_blocking(**session, in->first);
    for (const auto& ev : stream) {
      std::printf("answer  class %d  exit %u  confidence %.4f  peer %s  %.2f ms%s\n", ev.predicted,
                  ev.exit_index, ev.confidence, ev.peer.to_string().c_str(),
                  ev.latency.count() / 1000.0, ev.final_from_peer ? "  (final)" : "");
    }
    auto sum = stream.summary();
    for (const auto& p : sum.peers)
      std::printf("peer    %s  %s%s%s\n", p.peer.to_string().c_str(),
                  std::string(client::outcome_name(p.outcome)).c_str(),
                  p.detail.empty() ? "" : ": ", p.detail.c_str());
    std::printf("bytes   %llu sent, %llu received\n",
                static_cast<unsigned long long>(sum.bytes_sent),
                static_cast<unsigned long long>(sum.bytes_received));
    if (in->second >= 0) std::printf("label   %lld\n", static_cast<long long>(in->second));
    if (!sum.status.is_ok()) return report(sum.status);
    return 0;
  });
}

int run_infer(InferArgs& a) {
  if (!a.service.empty()) return run_remote_infer(a);
  if (a.dir.empty())
    return report(Status::invalid_argument("give a model package DIR or --service ID"));
  auto engine =
      engine::Engine::load(a.dir, {.threads = a.threads, .backend = backend_of(a.backend)});
  if (!engine.ok()) return report(engine.status());
  auto in = infer_input(a);
  if (!in.ok()) return report(in.status());
  core::Tensor input = std::move(in->first);
  int64_t label = in->second;
  (void)(*engine)->infer(input);  // warm-up, so the time below is steady-state
  auto t0 = std::chrono::steady_clock::now();
  auto ev = (*engine)->infer(input);
  double us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  if (!ev.ok()) return report(ev.status());
  const auto& labels = (*engine)->spec().labels;
  auto name = [&](int64_t c) {
    return c >= 0 && c < static_cast<int64_t>(labels.size()) ? labels[c] : std::to_string(c);
  };
  std::printf(
      "prediction %d (%s)  exit %s (%d of %zu)  confidence %.4f  entropy %.4f  time %.1f us  %.3f "
      "MFLOPs\n",
      ev->predicted, name(ev->predicted).c_str(),
      (*engine)->spec().exits[ev->exit_index].name.c_str(), ev->exit_index + 1,
      (*engine)->spec().exits.size(), ev->confidence, ev->entropy, us, ev->flops / 1e6);
  if (label >= 0)
    std::printf("label      %lld (%s)\n", static_cast<long long>(label), name(label).c_str());
  return 0;
}

}  // namespace

void register_eval(CLI::App& app) {
  auto ea = std::make_shared<EvalArgs>();
  auto* eval = app.add_subcommand(
      "eval",
      "Evaluate a model package on the FashionMNIST test split: per-exit accuracy and "
      "cost, measured batch-1 latency at its thresholds, and the accuracy-time profile");
  eval->add_option("dir", ea->dir, "Model package directory")->required();
  eval->add_option("--data", ea->data.dir,
                   "Directory with FashionMNIST IDX files (default: Debian's)");
  eval->add_option("--limit", ea->data.limit_test,
                   "Evaluate on a random subset of this many test images");
  eval->add_flag("--json", ea->json, "Print JSON instead of tables");
  eval->add_option("--csv", ea->csv, "Write every threshold combination tried to this CSV file");
  eval->add_option("--plot", ea->plot, "Write the trade-off curve to this PNG file");
  eval->add_option("--threads", ea->threads, "LibTorch threads")->capture_default_str();
  add_backend_option(eval, ea->backend);
  eval->callback([ea] { run_or_exit(run_eval(*ea)); });

  auto ia = std::make_shared<InferArgs>();
  auto* infer = app.add_subcommand(
      "infer",
      "Classify one input with a model package (fast early-exit inference), or with a "
      "service on the network (--service, --bootstrap)");
  infer->add_option("dir", ia->dir, "Model package directory");
  infer->add_option("--service", ia->service,
                    "Service ID: run on providers found in the network instead of locally");
  infer->add_option("--bootstrap", ia->bootstrap,
                    "Multiaddr of a node of the network (ending in /p2p/<id>), repeatable");
  infer->add_option("--provider", ia->providers,
                    "Ask this peer (multiaddr ending in /p2p/<id>, repeatable) instead of the "
                    "DHT's providers, e.g. a JavaScript peer serving the service");
  infer->add_option("--fanout", ia->fanout, "Providers asked at once")->capture_default_str();
  infer->add_option("--deadline-ms", ia->deadline_ms, "Give up after this long")
      ->capture_default_str();
  auto* ti = infer->add_option("--test-index", ia->test_index, "Use this FashionMNIST test image");
  auto* in = infer->add_option("--input", ia->input, "Input file: .safetensors or 8-bit PGM image");
  ti->excludes(in);
  infer->add_option("--data", ia->data_dir,
                    "Directory with FashionMNIST IDX files (default: Debian's)");
  infer->add_option("--threads", ia->threads, "LibTorch threads")->capture_default_str();
  add_backend_option(infer, ia->backend);
  infer->callback([ia] {
    if (ia->input.empty() && ia->test_index < 0)
      run_or_exit(report(Status::invalid_argument("give --test-index N or --input FILE")));
    run_or_exit(run_infer(*ia));
  });
}

}  // namespace idn::cli
