// idn train branchynet: joint training, calibration and operating-point choice, into a package.
#include <cstdio>
#include <memory>
#include <sstream>

#include <torch/torch.h>

#include "../cli.h"
#include "motifs/branchynet.h"
#include "motifs/branchynet_arch.h"

namespace idn::cli {
namespace {

struct TrainArgs {
  std::string arch = "b-lenet";
  std::string out;
  motifs::TrainOptions train;
  motifs::DataOptions data;
  motifs::OperatingPointOptions op;
  std::vector<double> weights;
  double alpha = -1;
  double max_drop_points = 0.5;
  std::string baseline;
  int threads = 2;
  bool no_sgdr = false;
};

void print_fit_summary(const motifs::FitResult& r, const std::string& out) {
  const auto& p = r.profile;
  std::printf("\ncalibration (validation NLL before -> after, temperature):\n");
  for (size_t e = 0; e < p.calibration.size(); ++e)
    std::printf("  exit%zu  %.4f -> %.4f  T=%.3f\n", e, p.calibration[e].nll_before,
                p.calibration[e].nll_after, p.calibration[e].temperature);
  std::printf("\nbatch-1 cost of each part (median us, MFLOPs):\n");
  for (size_t s = 0; s < p.costs.stage_us.size(); ++s)
    std::printf("  stage%zu     %8.1f us  %8.3f MFLOPs\n", s, p.costs.stage_us[s],
                p.costs.stage_flops[s] / 1e6);
  for (size_t e = 0; e < p.costs.exit_us.size(); ++e)
    std::printf("  exit%zu head %8.1f us  %8.3f MFLOPs\n", e, p.costs.exit_us[e],
                p.costs.exit_flops[e] / 1e6);
  std::printf("\naccuracy-time trade-off on the validation split (Pareto front):\n");
  std::printf("  %-24s %9s %10s %10s  %s\n", "thresholds", "accuracy", "mean us", "MFLOPs",
              "exit %");
  auto front = motifs::pareto_front(p.profile);
  size_t step = std::max<size_t>(1, front.size() / 12);
  for (size_t i = 0; i < front.size(); i += step) {
    const auto& pt = front[i];
    std::ostringstream th, ex;
    for (size_t e = 0; e + 1 < pt.thresholds.size(); ++e) th << (e ? "," : "") << pt.thresholds[e];
    for (size_t e = 0; e < pt.exit_fraction.size(); ++e)
      ex << (e ? " / " : "") << static_cast<int>(100 * pt.exit_fraction[e] + 0.5);
    std::printf("  %-24s %8.2f%% %10.1f %10.3f  %s\n", th.str().c_str(), 100 * pt.accuracy,
                pt.mean_us, pt.mean_flops / 1e6, ex.str().c_str());
  }
  std::printf("\noperating point: %s\n", p.spec.operating_point.value("rule", "").c_str());
  std::printf("  thresholds");
  for (auto& e : p.spec.exits) std::printf(" %s=%.4f", e.name.c_str(), e.threshold);
  std::printf(
      "\n  validation accuracy %.2f%% (final exit alone %.2f%%, %s %.2f%%), modelled mean "
      "%.1f us\n",
      100 * p.chosen.accuracy, 100 * p.final_accuracy, p.reference.c_str(),
      100 * p.reference_accuracy, p.chosen.mean_us);
  std::printf("  loss against %s: %.2f points, upper bound %.2f points%s\n", p.reference.c_str(),
              100 * p.chosen.loss, 100 * p.chosen.loss_upper,
              p.budget_met ? ""
                           : " (no point is within budget at this confidence: the smallest "
                             "bound was chosen)");
  if (!r.test.empty()) {
    std::printf("test accuracy per exit:");
    for (size_t e = 0; e < r.test.size(); ++e)
      std::printf(" exit%zu %.2f%%", e, 100 * r.test[e].accuracy);
    std::printf("\n");
  }
  std::printf("\npackage written to %s (model.json + weights.safetensors)\n", out.c_str());
}

int run_train(TrainArgs& a) {
  if (a.out.empty()) return report(Status::invalid_argument("--out DIR is required"));
  if (a.threads > 0) torch::set_num_threads(a.threads);
  a.train.sgdr = !a.no_sgdr;
  a.train.exit_weights = a.weights;
  if (a.alpha >= 0) a.train.alpha = a.alpha;
  a.op.max_accuracy_drop = a.max_drop_points / 100.0;
  a.op.baseline = a.baseline;
  a.data.seed = a.train.seed;
  std::fprintf(stderr, "loading FashionMNIST...\n");
  auto data = motifs::load_fashion_mnist_tensors(a.data);
  if (!data.ok()) return report(data.status());
  std::fprintf(stderr, "training %s on %lld images (%lld validation, %lld test), %d threads\n",
               a.arch.c_str(), static_cast<long long>(data->train.size()),
               static_cast<long long>(data->val.size()), static_cast<long long>(data->test.size()),
               a.threads);
  auto res = motifs::fit_branchynet(a.arch, *data, a.train, a.op, a.out);
  if (!res.ok()) return report(res.status());
  print_fit_summary(*res, a.out);
  return 0;
}

}  // namespace

void register_train(CLI::App& app) {
  auto* train = app.add_subcommand("train", "Train a model and write a model package");
  train->require_subcommand(1);
  auto a = std::make_shared<TrainArgs>();
  auto* b = train->add_subcommand(
      "branchynet",
      "Jointly train a BranchyNet (or its baseline) on FashionMNIST, calibrate each exit's "
      "softmax temperature, choose exit thresholds from the accuracy-time trade-off and save "
      "model.json + weights.safetensors");
  b->add_option("--arch", a->arch, "Architecture")
      ->check(CLI::IsMember(motifs::branchynet_arch_names()))
      ->capture_default_str();
  b->add_option("--out", a->out, "Output package directory (created)")->required();
  b->add_option("--epochs", a->train.epochs, "Training epochs")->capture_default_str();
  b->add_option("--batch", a->train.batch_size, "Mini-batch size")->capture_default_str();
  auto* optimizer =
      b->add_option("--optimizer", a->train.optimizer,
                    "sgd (with momentum) or adam (default: the architecture's recipe: adam for "
                    "the AlexNet-style ones, sgd otherwise)")
          ->check(CLI::IsMember({"sgd", "adam"}));
  auto* lr = b->add_option("--lr", a->train.lr,
                           "Learning rate, SGDR's maximum (default: 0.05 for sgd, 0.001 for adam)");
  b->add_option("--momentum", a->train.momentum, "SGD momentum")->capture_default_str();
  b->add_option("--weight-decay", a->train.weight_decay, "L2 weight decay")->capture_default_str();
  b->add_flag("--no-sgdr", a->no_sgdr, "Constant learning rate instead of SGDR");
  b->add_option("--sgdr-t0", a->train.sgdr_t0, "Epochs in SGDR's first cycle")
      ->capture_default_str();
  b->add_option("--exit-weights", a->weights, "Loss weight per exit, e.g. 1,1 (default equal)")
      ->delimiter(',');
  b->add_option("--alpha", a->alpha, "Use the exponentially weighted loss with this alpha (§3.2.1)")
      ->check(CLI::Range(0.0, 1.0));
  b->add_flag("--augment", a->train.augment, "Pad-4 random crop and horizontal flip");
  b->add_option("--seed", a->train.seed, "Random seed")->capture_default_str();
  b->add_option("--data", a->data.dir, "Directory with FashionMNIST IDX files (default: Debian's)");
  b->add_option("--validation", a->data.validation, "Training images held out for validation")
      ->capture_default_str();
  b->add_option("--limit", a->data.limit_train, "Train on a random subset of this many images");
  b->add_option("--max-drop", a->max_drop_points,
                "Operating point: fastest whose accuracy loss against the baseline (or the final "
                "exit), bounded at --confidence, is within this many points")
      ->capture_default_str();
  b->add_option("--confidence", a->op.confidence,
                "One-sided confidence level of that bound (paired per validation sample)")
      ->check(CLI::Range(0.5, 0.9999))
      ->capture_default_str();
  b->add_option("--baseline", a->baseline,
                "A trained package the operating point must not fall behind (e.g. the plain "
                "trunk: --baseline build/models/lenet); default: this model's own final exit")
      ->check(CLI::ExistingDirectory);
  b->add_option("--threads", a->threads, "LibTorch threads")->capture_default_str();
  b->add_flag("--resume", a->train.resume, "Continue from OUT/checkpoint if present");
  b->callback([a, optimizer, lr] {
    // Options the user left alone follow the architecture's recipe.
    auto recipe = motifs::recommended_train_options(a->arch);
    if (optimizer->count() == 0) a->train.optimizer = recipe.optimizer;
    if (lr->count() == 0)
      a->train.lr = a->train.optimizer == recipe.optimizer ? recipe.lr
                    : a->train.optimizer == "adam"         ? 1e-3
                                                           : motifs::TrainOptions{}.lr;
    run_or_exit(run_train(*a));
  });
}

}  // namespace idn::cli
