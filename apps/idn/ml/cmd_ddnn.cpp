// DDNN (dissertation ch. 4) on the command line: `idn train ddnn` generates multi-view data from
// FashionMNIST (or reads a user's own, data/multiview.h), jointly trains one configuration of
// Fig. 4.1 with Adam, prints per-epoch losses and §4.5's measures on the test set, and writes
// the DDNN package (motifs/ddnn.h).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include <torch/torch.h>

#include "../cli.h"
#include "data/dataset.h"
#include "data/multiview.h"
#include "motifs/ddnn.h"
#include "motifs/ddnn_train.h"

namespace idn::cli {
namespace {

struct DdnnArgs {
  std::string config = "c", local = "MP", edge = "CC", cloud = "CC";
  std::string out, data_dir, test_data_dir;
  int64_t samples = 2000, test_samples = 500, views = 6;
  int64_t device_filters = 4, edge_filters = 8, cloud_filters = 16;
  int64_t epochs = 20, batch = 32;
  double lr = 1e-3, threshold = 0.8, edge_threshold = 0.8;
  double device_dropout = 0;
  uint64_t seed = 1;
  bool reference_absent = false, individual = false;
  int threads = 2;
};

std::string pct(double v) {
  if (std::isnan(v)) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.2f%%", 100 * v);
  return b;
}

Result<data::MultiViewDataset> multiview(const std::string& dir, data::Split split, int64_t samples,
                                         uint64_t seed) {
  if (!dir.empty()) return data::read_multiview(dir);
  auto source = data::load_fashion_mnist(data::default_fashion_mnist_dir(), split);
  if (!source.ok()) return source.status();
  data::MultiViewOptions o;
  o.samples = samples;
  o.seed = seed;
  return data::generate_multiview(*source, o);
}

int run_ddnn(const DdnnArgs& a) {
  if (a.threads > 0) torch::set_num_threads(a.threads);
  if (a.config.size() != 1)
    return report(
        Status::invalid_argument("--config must be one letter a-f, got '" + a.config + "'"));
  auto config = motifs::ddnn_config(a.config[0], a.views);
  if (!config.ok()) return report(config.status());
  for (auto [flag, value, field] : {std::tuple{"--local", &a.local, &config->local},
                                    std::tuple{"--edge", &a.edge, &config->edge},
                                    std::tuple{"--cloud", &a.cloud, &config->cloud}}) {
    auto agg = motifs::parse_aggregation(*value);
    if (!agg.ok()) return report(agg.status().with_context(flag));
    *field = *agg;
  }
  config->device_filters = a.device_filters;
  config->edge_filters = a.edge_filters;
  config->cloud_filters = a.cloud_filters;
  config->mask_absent = !a.reference_absent;
  std::fprintf(stderr, "preparing multi-view data...\n");
  // Train and test draw from FashionMNIST's own train and test images, with different seeds.
  auto train_set = multiview(a.data_dir, data::Split::kTrain, a.samples, a.seed);
  if (!train_set.ok()) return report(train_set.status().with_context("training data"));
  auto test_set = multiview(a.test_data_dir, data::Split::kTest, a.test_samples, a.seed + 1000);
  if (!test_set.ok()) return report(test_set.status().with_context("test data"));
  config->channels = train_set->c;
  config->size = train_set->h;
  config->classes = train_set->classes();
  if (Status s = motifs::validate(*config); !s.is_ok()) return report(s);
  auto train = motifs::multiview_tensors(*train_set, *config);
  if (!train.ok()) return report(train.status().with_context("training data"));
  auto test = motifs::multiview_tensors(*test_set, *config);
  if (!test.ok()) return report(test.status().with_context("test data"));

  torch::manual_seed(a.seed);
  motifs::Ddnn model(*config);
  motifs::DdnnTrainOptions o;
  o.epochs = a.epochs;
  o.batch_size = a.batch;
  o.lr = a.lr;
  o.seed = a.seed;
  o.device_dropout = a.device_dropout;
  o.on_epoch = [](const motifs::DdnnEpoch& e) {
    std::printf("epoch %3lld  loss: devices %.4f  local %.4f  edge %.4f  cloud %.4f  (%.1f s)\n",
                static_cast<long long>(e.epoch), e.loss.device, e.loss.local, e.loss.edge,
                e.loss.cloud, e.seconds);
    std::fflush(stdout);
  };
  std::fprintf(stderr,
               "training DDNN (%c) %s-%s%s on %lld samples x %lld devices, %lld epochs, Adam "
               "lr %g\n",
               config->letter, std::string(motifs::aggregation_name(config->local)).c_str(),
               std::string(motifs::aggregation_name(config->cloud)).c_str(),
               config->has_edge()
                   ? (" (edge " + std::string(motifs::aggregation_name(config->edge)) + ")").c_str()
                   : "",
               static_cast<long long>(train->size()), static_cast<long long>(config->devices()),
               static_cast<long long>(a.epochs), a.lr);
  auto fit = motifs::train_ddnn(model, *train, o);
  if (!fit.ok()) return report(fit.status());
  const motifs::DdnnThresholds t{a.threshold, a.edge_threshold};
  auto eval = motifs::evaluate_ddnn(model, *test, t);
  if (!eval.ok()) return report(eval.status());
  const auto& e = *eval;
  std::printf("test (%lld samples), thresholds local %.2f edge %.2f:\n",
              static_cast<long long>(e.samples), t.local, t.edge);
  std::printf("  accuracy: local %s  edge %s  cloud %s  overall %s\n", pct(e.local).c_str(),
              pct(e.edge).c_str(), pct(e.cloud).c_str(), pct(e.overall).c_str());
  std::printf("  exits: local %s  edge %s  cloud %s\n", pct(e.local_exit).c_str(),
              pct(e.edge_exit).c_str(), pct(e.cloud_exit).c_str());
  std::printf("  each device's own exit:");
  for (double v : e.device) std::printf(" %s", pct(v).c_str());
  std::printf(
      "\n  communication: eq. 4.1 %.1f B per device; measured %.1f B per sample from "
      "all devices (raw views: %.1f B), %.1f B edge -> cloud\n",
      e.eq41_bytes, e.device_bytes_per_sample, e.raw_bytes_per_sample, e.edge_bytes_per_sample);
  if (e.device_param_bytes > 0)
    std::printf("  device section: %lld B of packed parameters\n",
                static_cast<long long>(e.device_param_bytes));
  nlohmann::json individual = nlohmann::json::array();
  if (a.individual) {
    std::printf("  individual (each device trained alone, §4.5.3):");
    for (int64_t v : config->views) {
      auto acc = motifs::individual_accuracy(*train_set, *test_set, v, *config, o);
      if (!acc.ok()) return report(acc.status().with_context("individual"));
      std::printf(" %s", pct(*acc).c_str());
      std::fflush(stdout);
      individual.push_back(*acc);
    }
    std::printf("\n");
  }
  motifs::DdnnPackage p;
  p.name = std::string("ddnn-") + config->letter + "-" +
           std::string(motifs::aggregation_name(config->local)) + "-" +
           std::string(motifs::aggregation_name(config->cloud));
  p.model = model;
  p.thresholds = t;
  p.labels = train_set->class_names;
  p.training = {{"seed", a.seed},
                {"epochs", a.epochs},
                {"batch", a.batch},
                {"optimizer", "adam"},
                {"lr", a.lr},
                {"device_dropout", a.device_dropout},
                {"samples", train->size()},
                {"data", a.data_dir.empty() ? "generated from FashionMNIST train" : a.data_dir},
                {"threads", a.threads}};
  p.evaluation = motifs::to_json(e);
  p.evaluation["data"] =
      a.test_data_dir.empty() ? "generated from FashionMNIST test" : a.test_data_dir;
  if (a.individual) p.evaluation["individual_accuracy"] = individual;
  if (Status s = motifs::save_ddnn(p, a.out); !s.is_ok()) return report(s);
  std::printf("DDNN package written to %s (ddnn.json, weights.safetensors%s)\n", a.out.c_str(),
              config->has_local() ? ", device<d>.idnb" : "");
  return 0;
}

}  // namespace

void register_ddnn(CLI::App& app) {
  auto a = std::make_shared<DdnnArgs>();
  CLI::App* train = app.get_subcommand("train");
  auto* d = train->add_subcommand(
      "ddnn",
      "Jointly train a DDNN (ch. 4) on multi-view data generated from FashionMNIST: device "
      "sections of binary ConvP + FC blocks, a local aggregator, an optional edge and the "
      "cloud; print per-epoch losses and §4.5's accuracies, and write the DDNN package");
  d->add_option("--config", a->config, "Fig. 4.1's configuration: a, b, c, d, e or f")
      ->capture_default_str();
  d->add_option("--local", a->local, "Local aggregation: MP, AP or CC")->capture_default_str();
  d->add_option("--edge", a->edge, "Edge aggregation of device features (d-f): MP, AP or CC")
      ->capture_default_str();
  d->add_option("--cloud", a->cloud, "Cloud aggregation: MP, AP or CC")->capture_default_str();
  d->add_option("--out", a->out, "Output package directory (created)")->required();
  d->add_option("--samples", a->samples, "Generated training samples")->capture_default_str();
  d->add_option("--test-samples", a->test_samples, "Generated test samples")->capture_default_str();
  d->add_option("--views", a->views, "Devices (cameras) for c, e, f")->capture_default_str();
  d->add_option("--data", a->data_dir, "Read training data from a multi-view directory instead");
  d->add_option("--test-data", a->test_data_dir, "Read test data from a multi-view directory");
  d->add_option("--epochs", a->epochs, "Training epochs")->capture_default_str();
  d->add_option("--batch", a->batch, "Mini-batch size")->capture_default_str();
  d->add_option("--lr", a->lr, "Adam's learning rate")->capture_default_str();
  d->add_option("--seed", a->seed, "Seed: initialisation, data, batch order")
      ->capture_default_str();
  d->add_option("--filters", a->device_filters, "ConvP filters per device")->capture_default_str();
  d->add_option("--edge-filters", a->edge_filters, "ConvP filters per edge")->capture_default_str();
  d->add_option("--cloud-filters", a->cloud_filters, "ConvP filters in the cloud")
      ->capture_default_str();
  d->add_option("--device-dropout", a->device_dropout,
                "Train with each present device of a sample absent with this probability per "
                "epoch (never all of a sample's), so no device becomes indispensable; in [0, 1)")
      ->capture_default_str();
  d->add_option("--threshold", a->threshold, "Local exit's normalized-entropy threshold T")
      ->capture_default_str();
  d->add_option("--edge-threshold", a->edge_threshold, "Edge exit's threshold")
      ->capture_default_str();
  d->add_flag("--reference-absent", a->reference_absent,
              "Absent views take part in aggregation as their device's output on the blank "
              "view (the reference code) instead of being left out");
  d->add_flag("--individual", a->individual,
              "Also train each device alone and report its individual accuracy (§4.5.3)");
  d->add_option("--threads", a->threads, "LibTorch threads")->capture_default_str();
  d->callback([a] { run_or_exit(run_ddnn(*a)); });
}

}  // namespace idn::cli
