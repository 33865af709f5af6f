#include "motifs/branchynet_train.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "model/safetensors.h"

namespace idn::motifs {
namespace {

constexpr double kPi = 3.14159265358979323846;

// SGDR (Loshchilov & Hutter): lr at fractional epoch t.
double sgdr_lr(const TrainOptions& o, double t) {
  double cycle = o.sgdr_t0, start = 0;
  while (t >= start + cycle) {
    start += cycle;
    cycle *= o.sgdr_mult;
  }
  double frac = (t - start) / cycle;
  return o.lr_min + 0.5 * (o.lr - o.lr_min) * (1 + std::cos(kPi * frac));
}

void set_lr(torch::optim::Optimizer& opt, double lr) {
  for (auto& g : opt.param_groups()) g.options().set_lr(lr);
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(nn::Graph& g, const TrainOptions& o) {
  if (o.optimizer == "adam")
    return std::make_unique<torch::optim::Adam>(
        g->parameters(), torch::optim::AdamOptions(o.lr).weight_decay(o.weight_decay));
  return std::make_unique<torch::optim::SGD>(
      g->parameters(),
      torch::optim::SGDOptions(o.lr).momentum(o.momentum).weight_decay(o.weight_decay));
}

void print_progress(int epoch, int epochs, int64_t done, int64_t total, double loss,
                    const std::vector<ExitMetrics>& exits) {
  constexpr int kWidth = 24;
  int filled = total ? static_cast<int>(kWidth * done / total) : kWidth;
  std::string bar(filled, '#');
  bar.resize(kWidth, '.');
  std::fprintf(stderr, "\repoch %d/%d [%s] %3d%% loss %.4f", epoch, epochs, bar.c_str(),
               static_cast<int>(100 * done / std::max<int64_t>(total, 1)), loss);
  for (size_t e = 0; e < exits.size(); ++e)
    std::fprintf(stderr, " | exit%zu %.3f %5.1f%%", e, exits[e].loss, 100 * exits[e].accuracy);
  std::fflush(stderr);
}

struct CheckpointState {
  int epochs_done = 0;
};

Status save_checkpoint(nn::Graph& g, torch::optim::Optimizer& opt, const std::filesystem::path& dir,
                       int epochs_done) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return Status::io_error("cannot create checkpoint dir " + dir.string() + ": " + ec.message());
  IDN_RETURN_IF_ERROR(
      model::save_safetensors(dir / "weights.safetensors", g->export_weights(), {}));
  try {
    torch::save(opt, (dir / "optimizer.pt.tmp").string());
  } catch (const std::exception& e) {
    return Status::io_error("saving optimizer state: " + std::string(e.what()));
  }
  std::filesystem::rename(dir / "optimizer.pt.tmp", dir / "optimizer.pt", ec);
  // state.json last: its presence means the rest of the checkpoint is complete.
  nlohmann::json j{{"epochs_done", epochs_done}};
  {
    std::ofstream f(dir / "state.json.tmp");
    f << j.dump(2);
    if (!f) return Status::io_error("writing " + (dir / "state.json").string());
  }
  std::filesystem::rename(dir / "state.json.tmp", dir / "state.json", ec);
  if (ec) return Status::io_error("renaming checkpoint state: " + ec.message());
  return Status::ok();
}

Result<int> load_checkpoint(nn::Graph& g, torch::optim::Optimizer& opt,
                            const std::filesystem::path& dir) {
  std::ifstream f(dir / "state.json");
  if (!f) return 0;  // nothing to resume
  nlohmann::json j = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.contains("epochs_done"))
    return Status::corruption((dir / "state.json").string() + " is not a valid checkpoint state");
  IDN_ASSIGN_OR_RETURN(auto st, model::load_safetensors(dir / "weights.safetensors"));
  IDN_RETURN_IF_ERROR(model::check_weights(g->spec(), st.tensors).with_context("checkpoint"));
  IDN_RETURN_IF_ERROR(g->load_weights(st.tensors));
  try {
    torch::load(opt, (dir / "optimizer.pt").string());
  } catch (const std::exception& e) {
    return Status::corruption("checkpoint optimizer state: " + std::string(e.what()));
  }
  return j["epochs_done"].get<int>();
}

}  // namespace

TrainOptions recommended_train_options(const std::string& arch) {
  TrainOptions t;
  if (arch.find("alexnet") != std::string::npos) {
    t.optimizer = "adam";
    t.lr = 1e-3;
  }
  return t;
}

std::vector<double> exit_loss_weights(int n, const TrainOptions& o) {
  std::vector<double> w(n, 1.0);
  if (o.alpha) {
    double a = *o.alpha;
    for (int i = 0; i < n; ++i) w[i] = (i == 0 ? 1.0 : a) * std::pow(1 - a, n - 1 - i);
  } else if (!o.exit_weights.empty()) {
    for (int i = 0; i < n && i < static_cast<int>(o.exit_weights.size()); ++i)
      w[i] = o.exit_weights[i];
  }
  return w;
}

std::vector<torch::Tensor> exit_logits(nn::Graph& graph, const torch::Tensor& x, int64_t batch) {
  torch::NoGradGuard ng;
  graph->eval();
  std::vector<std::vector<torch::Tensor>> parts(graph->num_exits());
  for (int64_t i = 0; i < x.size(0); i += batch) {
    auto out = graph->forward_all(x.slice(0, i, std::min(i + batch, x.size(0))));
    for (size_t e = 0; e < out.size(); ++e) parts[e].push_back(out[e]);
  }
  std::vector<torch::Tensor> res;
  for (auto& p : parts) res.push_back(torch::cat(p, 0));
  return res;
}

std::vector<ExitMetrics> evaluate_exits(nn::Graph& graph, const torch::Tensor& x,
                                        const torch::Tensor& y, int64_t batch) {
  std::vector<ExitMetrics> m;
  for (auto& logits : exit_logits(graph, x, batch)) {
    ExitMetrics em;
    em.loss = torch::nn::functional::cross_entropy(logits, y).item<double>();
    em.accuracy = logits.argmax(1).eq(y).to(torch::kFloat64).mean().item<double>();
    m.push_back(em);
  }
  return m;
}

Result<std::vector<EpochReport>> train_branchynet(nn::Graph& graph, const torch::Tensor& x,
                                                  const torch::Tensor& y,
                                                  const torch::Tensor& x_val,
                                                  const torch::Tensor& y_val,
                                                  const TrainOptions& opts) {
  if (x.size(0) != y.size(0) || x.size(0) == 0)
    return Status::invalid_argument("training set is empty or images/labels counts differ");
  if (opts.batch_size <= 0 || opts.epochs < 0 || opts.lr <= 0)
    return Status::invalid_argument("batch size and learning rate must be positive");
  if (opts.alpha && (*opts.alpha < 0 || *opts.alpha > 1))
    return Status::invalid_argument("alpha must be in [0, 1]");
  torch::manual_seed(opts.seed);
  auto optimizer = make_optimizer(graph, opts);
  int start_epoch = 0;
  if (opts.resume && !opts.checkpoint_dir.empty()) {
    IDN_ASSIGN_OR_RETURN(start_epoch, load_checkpoint(graph, *optimizer, opts.checkpoint_dir));
    if (start_epoch > 0 && opts.progress)
      std::fprintf(stderr, "resuming from %s after epoch %d\n", opts.checkpoint_dir.c_str(),
                   start_epoch);
  }
  const int n_exits = graph->num_exits();
  const auto weights = exit_loss_weights(n_exits, opts);
  const int64_t n = x.size(0);
  const int64_t steps = (n + opts.batch_size - 1) / opts.batch_size;
  std::vector<EpochReport> reports;
  for (int epoch = start_epoch; epoch < opts.epochs; ++epoch) {
    auto t0 = std::chrono::steady_clock::now();
    graph->train();
    // Order and dropout masks depend only on (seed, epoch), so a resumed run sees the same
    // batches and masks as one that never stopped.
    auto gen = at::detail::createCPUGenerator(opts.seed * 1000003 + epoch);
    torch::manual_seed(opts.seed * 1000003 + epoch + 0x9e3779b9ULL);
    auto perm = torch::randperm(n, gen);
    std::vector<ExitMetrics> running(n_exits);
    double running_loss = 0;
    int64_t seen = 0;
    for (int64_t s = 0; s < steps; ++s) {
      if (opts.sgdr) set_lr(*optimizer, sgdr_lr(opts, epoch + double(s) / steps));
      auto idx = perm.slice(0, s * opts.batch_size, std::min(n, (s + 1) * opts.batch_size));
      auto xb = x.index_select(0, idx);
      auto yb = y.index_select(0, idx);
      if (opts.transform) opts.transform(xb, opts.seed ^ (uint64_t(epoch) << 32) ^ uint64_t(s));
      if (opts.before_step) opts.before_step(epoch * steps + s);
      optimizer->zero_grad();
      auto logits = graph->forward_all(xb);
      torch::Tensor loss = torch::zeros({});
      const int64_t b = idx.size(0);
      for (int e = 0; e < n_exits; ++e) {
        auto le = torch::nn::functional::cross_entropy(logits[e], yb);
        loss = loss + weights[e] * le;
        // Running means over the epoch so far.
        double acc = logits[e].argmax(1).eq(yb).sum().item<double>();
        running[e].loss = (running[e].loss * seen + le.item<double>() * b) / (seen + b);
        running[e].accuracy = (running[e].accuracy * seen + acc) / (seen + b);
      }
      loss.backward();
      optimizer->step();
      running_loss = (running_loss * seen + loss.item<double>() * b) / (seen + b);
      seen += b;
      if (opts.progress && (s % 20 == 0 || s + 1 == steps))
        print_progress(epoch + 1, opts.epochs, s + 1, steps, running_loss, running);
    }
    EpochReport r;
    r.epoch = epoch + 1;
    r.train_loss = running_loss;
    r.train = running;
    if (x_val.defined() && x_val.size(0) > 0) {
      if (opts.before_eval) opts.before_eval();
      r.val = evaluate_exits(graph, x_val, y_val);
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (opts.progress) {
      std::fprintf(stderr, " (%.1fs)\n", r.seconds);
      if (!r.val.empty()) {
        std::fprintf(stderr, "  validation:");
        for (size_t e = 0; e < r.val.size(); ++e)
          std::fprintf(stderr, " exit%zu loss %.4f acc %.2f%%", e, r.val[e].loss,
                       100 * r.val[e].accuracy);
        std::fprintf(stderr, "\n");
      }
    }
    reports.push_back(std::move(r));
    if (!opts.checkpoint_dir.empty())
      IDN_RETURN_IF_ERROR(save_checkpoint(graph, *optimizer, opts.checkpoint_dir, epoch + 1));
  }
  graph->eval();
  return reports;
}

}  // namespace idn::motifs
