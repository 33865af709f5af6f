#include "motifs/parallelnet_train.h"

#include <cmath>

#include "model/package.h"
#include "nn/inference_ops.h"

namespace idn::motifs {
namespace {

double accuracy(const torch::Tensor& logits, const torch::Tensor& y) {
  return logits.argmax(1).eq(y).to(torch::kFloat64).mean().item<double>();
}

}  // namespace

Result<torch::Tensor> masked_logits(nn::Graph& graph, const Mask& mask, const torch::Tensor& x,
                                    int64_t batch) {
  if (graph->num_exits() != 1)
    return Status::invalid_argument("masked_logits needs a model with one exit");
  IDN_RETURN_IF_ERROR(apply_mask(graph, mask));
  auto logits = exit_logits(graph, x, batch)[0];
  IDN_RETURN_IF_ERROR(apply_mask(graph, Mask{}));
  return logits;
}

Result<ParallelNetFit> fit_parallelnet(const std::string& arch, const LabeledData& data,
                                       const ParallelNetTrainOptions& opts,
                                       const std::filesystem::path& out_dir) {
  // Trained weights drift into denormals (a 15-epoch genesis at p_train 0.6: 18% of them), and
  // every multiply with one costs ~100 cycles (that genesis's inference: 30x slower). Flushed to
  // zero on this thread, which runs the forward and backward passes (one LibTorch thread).
  nn::DenormalsAreZero daz;
  IDN_RETURN_IF_ERROR(opts.p_train.validate().with_context("p_train"));
  if (opts.eval_masks < 1) return Status::invalid_argument("eval_masks must be at least 1");
  IDN_ASSIGN_OR_RETURN(auto spec,
                       parallelnet_arch(arch, static_cast<int>(data.class_names.size())));
  spec.labels = data.class_names;
  spec.preprocess_mean = data.mean;
  spec.preprocess_std = data.std;
  IDN_ASSIGN_OR_RETURN(auto layers, thinned_layers(spec));
  // Catches per-layer p for layers that are not thinned before any training.
  if (auto m = draw_mask(spec, opts.p_train, opts.train.seed); !m.ok()) return m.status();
  torch::manual_seed(opts.train.seed);
  nn::Graph graph(spec);
  Density eval_p = opts.p_train;
  eval_p.cycle.clear();
  TrainOptions t = opts.train;
  if (t.checkpoint_dir.empty()) t.checkpoint_dir = out_dir / "checkpoint";
  t.transform = [&](torch::Tensor& batch, uint64_t seed) {
    if (opts.train.augment) batch = augment_batch(batch, /*pad=*/4, seed);
    batch = normalize(batch, data.mean, data.std);
  };
  Status hook_status = Status::ok();  // hooks cannot return one: kept for after training
  t.before_step = [&](int64_t step) {
    auto m = draw_mask(graph->spec(), opts.p_train, opts.train.seed, step);
    if (m.ok()) set_scale(*m, opts.scaling, opts.p_train, step);
    Status s = m.ok() ? apply_thinned(graph, *m) : m.status();
    if (!s.is_ok() && hook_status.is_ok()) hook_status = s;
  };
  t.before_eval = [&] {
    auto m = draw_mask(graph->spec(), eval_p, /*seed=*/1);
    if (m.ok()) set_scale(*m, opts.scaling, eval_p);
    Status s = m.ok() ? apply_thinned(graph, *m) : m.status();
    if (!s.is_ok() && hook_status.is_ok()) hook_status = s;
  };
  auto x_val = normalize(data.val.x, data.mean, data.std);
  ParallelNetFit fit;
  IDN_ASSIGN_OR_RETURN(fit.epochs,
                       train_branchynet(graph, data.train.x, data.train.y, x_val, data.val.y, t));
  IDN_RETURN_IF_ERROR(hook_status);
  IDN_RETURN_IF_ERROR(apply_thinned(graph, Mask{}));

  torch::Tensor sum;
  for (int k = 1; k <= opts.eval_masks; ++k) {
    IDN_ASSIGN_OR_RETURN(auto mask, draw_mask(spec, eval_p, static_cast<uint64_t>(k)));
    set_scale(mask, opts.scaling, eval_p);
    IDN_ASSIGN_OR_RETURN(auto z, masked_logits(graph, mask, x_val));
    fit.val_accuracy.push_back(accuracy(z, data.val.y));
    sum = sum.defined() ? sum + z : z;
  }
  fit.val_ensemble_accuracy = accuracy(sum, data.val.y);
  IDN_ASSIGN_OR_RETURN(auto full, masked_logits(graph, Mask{}, x_val));
  fit.val_genesis_accuracy = accuracy(full, data.val.y);

  double mean = 0, var = 0;
  for (double a : fit.val_accuracy) mean += a / fit.val_accuracy.size();
  for (double a : fit.val_accuracy) var += (a - mean) * (a - mean) / fit.val_accuracy.size();
  nlohmann::json thinned = nlohmann::json::array();
  for (const auto& l : layers) thinned.push_back(l.name);
  model::Package pkg{spec, graph->export_weights()};
  pkg.spec.operating_point = {
      {"parallelnet",
       {{"role", "genesis"},
        {"p_train", to_json(opts.p_train)},
        {"scaling", scaling_name(opts.scaling)},
        {"scaling_rule", opts.scaling == Scaling::kInverted
                             ? "each kept unit's output x 1/p_train of its layer at "
                               "every step; a model generated at p_test folds 1/p_test of "
                               "each layer into its kept units' weights and biases"
                             : "none: kept units' outputs x 1 (beta only)"},
        {"thinned_layers", thinned},
        {"validation",
         {{"p_test", eval_p.p},
          {"models", opts.eval_masks},
          {"mask_seeds", "1.." + std::to_string(opts.eval_masks)},
          {"accuracy_mean", mean},
          {"accuracy_sd", std::sqrt(var)},
          {"ensemble_accuracy", fit.val_ensemble_accuracy},
          {"genesis_accuracy", fit.val_genesis_accuracy},
          {"samples", data.val.size()}}}}},
      {"training",
       {{"seed", opts.train.seed},
        {"data_split_seed", data.split_seed},
        {"train_samples", data.train.size()},
        {"epochs", opts.train.epochs},
        {"batch_size", opts.train.batch_size},
        {"optimizer", opts.train.optimizer},
        {"lr", opts.train.lr},
        {"augment", opts.train.augment},
        {"threads", torch::get_num_threads()}}}};
  IDN_RETURN_IF_ERROR(model::save_package(pkg, out_dir));
  return fit;
}

Result<CheckedGeneration> generate_checked_parallelnet(const std::filesystem::path& genesis_dir,
                                                       const GenerateOptions& opts, int candidates,
                                                       const TensorSplit& val) {
  if (candidates < 1 || candidates > 64)
    return Status::invalid_argument("candidates must be in 1..64");
  CheckedGeneration best;
  best.seed = opts.seed;
  IDN_ASSIGN_OR_RETURN(best.generated, generate_parallelnet(genesis_dir, opts));
  if (candidates == 1) return best;
  if (val.size() == 0) return Status::invalid_argument("checking generated models needs images");
  // No DenormalsAreZero here: thinning multiplies weights by 1/p, and with denormals flushed the
  // tiny ones would become 0 and the package would differ from generate_parallelnet's for the
  // same seed (the graph flushes them itself while it infers).
  const auto& spec = best.generated.package.spec;
  const auto x = normalize(val.x, spec.preprocess_mean, spec.preprocess_std);
  for (int j = 0; j < candidates; ++j) {
    GenerateOptions o = opts;
    o.seed = opts.seed + static_cast<uint64_t>(j) * kCandidateSeedStride;
    Generated g;
    if (j == 0) {
      g = best.generated;
    } else {
      IDN_ASSIGN_OR_RETURN(g, generate_parallelnet(genesis_dir, o));
    }
    nn::Graph graph(g.package.spec);
    IDN_RETURN_IF_ERROR(graph->load_weights(g.package.weights));
    IDN_ASSIGN_OR_RETURN(auto logits, masked_logits(graph, Mask{}, x));
    const double acc = logits.argmax(1).eq(val.y).to(torch::kFloat64).mean().item<double>();
    if (acc > best.validation_accuracy) {
      best.validation_accuracy = acc;
      best.seed = o.seed;
      best.generated = std::move(g);
    }
  }
  auto& op = best.generated.package.spec.operating_point;
  op["parallelnet"]["selection"] = {
      {"rule", "best of the candidates by accuracy on images held out of the genesis's training"},
      {"candidates", candidates},
      {"first_seed", opts.seed},
      {"seed_stride", kCandidateSeedStride},
      {"validation_accuracy", best.validation_accuracy},
      {"validation_samples", val.size()}};
  return best;
}

Status check_held_out(const model::ModelSpec& genesis, const LabeledData& data) {
  const auto& op = genesis.operating_point;
  if (!op.is_object() || !op.contains("training") || !op["training"].is_object())
    return Status::invalid_argument(
        "the genesis records no training split, so its held-out images are unknown");
  const auto& t = op["training"];
  const uint64_t split = t.value("data_split_seed", uint64_t{0});
  const int64_t trained = t.value("train_samples", int64_t{0});
  if (split != data.split_seed || trained != data.train.size())
    return Status::invalid_argument(
        "the genesis was trained on another split of the data (split seed " +
        std::to_string(split) + ", " + std::to_string(trained) +
        " training images; here: split seed " + std::to_string(data.split_seed) + ", " +
        std::to_string(data.train.size()) +
        "), so the validation images may include ones it trained on");
  return Status::ok();
}

}  // namespace idn::motifs
