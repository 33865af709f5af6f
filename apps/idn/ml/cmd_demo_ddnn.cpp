// idn demo ddnn: DDNN on loopback (dissertation ch. 4, §4.4). A config (c) model (MP local exit,
// CC cloud; --model, or a default trained on first run and cached) is deployed on six device
// peers, each owning one camera's replay of generated multi-view test data (frame i = sample i)
// and serving its packed device section, and a cloud peer serving the cloud section; the
// aggregator node streams the samples: each device's scores, the local exit when η ≤ T, else the
// present devices' packed features to the cloud in one request. Per sample it prints the exit,
// the devices present, the bytes on the wire and the running accuracy; at the end the exits,
// accuracy, bytes per sample by hop against sending the raw views, and eq. 4.1.
// --kill-device-after N stops one device peer before sample N: every sample is still answered.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "../cli.h"
#include "client/ddnn_session.h"
#include "data/dataset.h"
#include "data/multiview.h"
#include "ddnn_loopback.h"
#include "demo_util.h"
#include "motifs/ddnn.h"
#include "motifs/ddnn_train.h"
#include "node/ddnn.h"
#include "node/node.h"
#include "node/node_thread.h"
#include "store/blockstore.h"

namespace idn::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Args {
  int samples = 100;
  int kill_after = -1;
  int kill_device = 2;
  double threshold = -1;  // < 0: the package's
  int device_deadline_ms = 500;
  std::string model, data;
  int train_samples = 2000, epochs = 10;
  uint64_t seed = 1;
  bool quiet = false, retrain = false;
};

Result<data::Dataset> fashion(const std::string& dir, data::Split split) {
  return data::load_fashion_mnist(dir.empty() ? data::default_fashion_mnist_dir() : fs::path(dir),
                                  split);
}

// Config (c), six devices, MP local, CC cloud, trained with Adam on generated views of
// FashionMNIST training images (§4.5.1's defaults; --train-samples and --epochs size it).
Status train_default(const fs::path& dir, const Args& a) {
  std::fprintf(stderr, "training DDNN (c) MP-CC on %d samples x 6 cameras, %d epochs into %s\n",
               a.train_samples, a.epochs, dir.c_str());
  IDN_ASSIGN_OR_RETURN(auto source, fashion(a.data, data::Split::kTrain));
  data::MultiViewOptions mo;
  mo.samples = a.train_samples;
  mo.seed = a.seed;
  IDN_ASSIGN_OR_RETURN(auto views, data::generate_multiview(source, mo));
  IDN_ASSIGN_OR_RETURN(auto config, motifs::ddnn_config('c', 6));
  IDN_ASSIGN_OR_RETURN(auto train, motifs::multiview_tensors(views, config));
  torch::manual_seed(a.seed);
  motifs::DdnnPackage p;
  p.name = "demo-ddnn-c";
  p.model = motifs::Ddnn(config);
  p.labels = views.class_names;
  motifs::DdnnTrainOptions o;
  o.epochs = a.epochs;
  o.seed = a.seed;
  torch::set_num_threads(2);
  auto r = motifs::train_ddnn(p.model, train, o);
  torch::set_num_threads(1);
  if (!r.ok()) return r.status();
  p.training = {{"samples", a.train_samples}, {"epochs", a.epochs}, {"seed", a.seed}};
  return motifs::save_ddnn(p, dir);
}

int run(const Args& a) {
  if (a.samples < 1) return report(Status::invalid_argument("--samples must be >= 1"));
  if (a.kill_device < 0 || a.kill_device >= 6)
    return report(Status::invalid_argument("--kill-device must be 0..5"));
  if (a.threshold > 1) return report(Status::invalid_argument("--threshold must be <= 1"));
  spdlog::set_level(spdlog::level::warn);
  torch::set_num_threads(1);
  const auto t0 = Clock::now();
  auto secs = [&] { return std::chrono::duration<double>(Clock::now() - t0).count(); };

  const fs::path dir = a.model.empty() ? default_models_dir() / "demo-ddnn-c" : fs::path(a.model);
  if (a.retrain || !motifs::load_ddnn(dir).ok()) {
    if (!a.model.empty() && !a.retrain && fs::exists(dir))
      return report(Status::not_found(dir.string() + " is not a DDNN package"));
    std::error_code ec;
    fs::remove_all(dir, ec);
    if (Status s = train_default(dir, a); !s.is_ok()) return report(s);
  }
  auto info = serve::read_ddnn_info(dir);
  if (!info.ok()) return report(info.status());
  if (info->devices != 6 || info->letter != 'c')
    return report(Status::invalid_argument("the demo deploys a six-device configuration (c)"));
  // The cameras' replay: generated from FashionMNIST test images (the model never saw them).
  auto source = fashion(a.data, data::Split::kTest);
  if (!source.ok()) return report(source.status());
  data::MultiViewOptions mo;
  mo.samples = a.samples;
  mo.seed = a.seed + 1000;
  auto frames = data::generate_multiview(*source, mo);
  if (!frames.ok()) return report(frames.status());
  auto replay = std::make_shared<const data::MultiViewDataset>(std::move(*frames));

  std::printf(
      "model    %s: DDNN (c), 6 devices, local %s, T = %.2f, device features %lldx%lldx%lld "
      "(%lld B packed)\n",
      dir.c_str(), info->local.c_str(), a.threshold >= 0 ? a.threshold : info->local_threshold,
      (long long)info->features.c, (long long)info->features.h, (long long)info->features.w,
      (long long)info->feature_bytes());
  std::fflush(stdout);
  auto net = LoopbackDdnn::start(
      dir, replay,
      [](const std::string& section, const node::Node& peer, const core::Multihash& service) {
        std::printf("%-8s %s serves %s\n", section.c_str(), short_id(peer.id()).c_str(),
                    ise::service_id_text(service).c_str());
      });
  if (!net.ok()) return report(net.status());
  node::DdnnSessionOptions so;
  so.device_deadline = std::chrono::milliseconds(a.device_deadline_ms);
  if (a.threshold >= 0) so.threshold = a.threshold;
  auto session = (*net)->session(so);
  if (!session.ok()) return report(session.status());
  std::printf("local aggregator %s asks the devices through the DHT (%.1f s)\n\n",
              short_id((*net)->aggregator().id()).c_str(), secs());

  const auto& names = replay->class_names;
  auto name = [&](int c) {
    return c >= 0 && c < static_cast<int>(names.size()) ? names[static_cast<size_t>(c)]
                                                        : std::string("?");
  };
  DdnnWireTally t;
  if (!a.quiet)
    std::printf("%6s  %-9s %-9s %-3s %-5s %7s %6s %7s %8s  %s\n", "sample", "label", "answer", "ok",
                "exit", "devices", "wire B", "raw B", "accuracy", "ms");
  for (int i = 0; i < a.samples; ++i) {
    if (i == a.kill_after) {
      std::printf("-- stopping device peer %d (%s)\n", a.kill_device,
                  short_id((*net)->device_id(a.kill_device)).c_str());
      (*net)->stop_device(a.kill_device);
    }
    auto r = (*net)->infer(**session, static_cast<uint64_t>(i));
    if (!r.ok()) {
      std::printf("%6d  LOST: %s\n", i, r.status().to_string().c_str());
      continue;
    }
    const int label = static_cast<int>(replay->labels[static_cast<size_t>(i)]);
    t.add(*r, label);
    if (!a.quiet)
      std::printf(
          "%6d  %-9s %-9s %-3s %-5s %7d %6llu %7llu %7.1f%%  %.1f\n", i, name(label).c_str(),
          name(r->predicted).c_str(), r->predicted == label ? "yes" : "no",
          r->exit == client::DdnnAnswer::Exit::kLocal ? "local"
                                                      : (r->cloud_failed ? "lost" : "cloud"),
          __builtin_popcountll(r->present), (unsigned long long)r->total_bytes(),
          (unsigned long long)r->raw_bytes, 100.0 * t.correct / t.answered, t.latency_ms.back());
  }
  const int answered = t.answered, correct = t.correct, local = t.local,
            local_correct = t.local_correct;
  const uint64_t scores_b = t.scores, features_b = t.features, cloud_b = t.cloud,
                 payload_b = t.payload, present_n = t.present;
  const std::vector<double>& lat_ms = t.latency_ms;
  const double n = std::max(answered, 1);
  const double wire = t.wire_per_sample();
  const double raw = t.raw_per_sample();
  const double l = local / n;
  const double per_device = 4.0 * static_cast<double>(info->classes) +
                            (1 - l) * static_cast<double>(info->feature_bytes());
  std::printf("\nsamples %d, answered %d, lost %d\n", a.samples, answered, a.samples - answered);
  std::printf("exits: local %d (%.1f%%), cloud %d (%.1f%%)\n", local, 100 * l, answered - local,
              100 * (1 - l));
  std::printf("accuracy: overall %.1f%% (%d/%d), local exits %.1f%%\n", 100.0 * correct / n,
              correct, answered, local ? 100.0 * local_correct / local : 0.0);
  std::printf(
      "bytes per sample on the wire (IDN messages, both directions): devices<->aggregator "
      "scores %.0f, features %.0f, aggregator<->cloud %.0f, total %.0f\n",
      static_cast<double>(scores_b) / n, static_cast<double>(features_b) / n,
      static_cast<double>(cloud_b) / n, wire);
  std::printf(
      "raw views to the cloud (the present views in one request, and its answer): %.0f "
      "B per sample: %.1fx the DDNN's wire bytes\n",
      raw, wire > 0 ? raw / wire : 0.0);
  std::printf(
      "eq. 4.1 payload measured %.1f B per sample (%.1f per present device); eq. 4.1 "
      "per device 4|C| + (1-l) f o/8 = %.1f B; raw views %.0f B per present device\n",
      static_cast<double>(payload_b) / n,
      present_n ? static_cast<double>(payload_b) / static_cast<double>(present_n) : 0.0, per_device,
      static_cast<double>(info->channels * info->size * info->size));
  if (!lat_ms.empty())
    std::printf("latency ms: median %.1f  p90 %.1f  max %.1f\n", percentile(lat_ms, 0.5),
                percentile(lat_ms, 0.9), percentile(lat_ms, 1.0));
  std::printf("done in %.1f s\n", secs());
  net->reset();  // stops the peers, newest first
  return answered == a.samples ? 0 : 1;
}

// idn ddnn publish: the offline half of deploying a DDNN package, as `idn publish` is for a
// model package. Hosting needs what only a peer has (a device section its camera).
int run_publish(const std::string& data_dir, const std::string& package) {
  auto bs = store::Blockstore::open(fs::path(data_dir) / "store");
  if (!bs.ok()) return report(bs.status());
  auto s = node::store_ddnn(**bs, package);
  if (!s.ok()) return report(s.status());
  std::printf("package %s\n", s->package.to_string().c_str());
  for (size_t d = 0; d < s->devices.size(); ++d)
    std::printf("device%zu  %s  (camera view %lld)\n", d,
                ise::service_id_text(s->devices[d]).c_str(), (long long)s->info.views[d]);
  std::printf("cloud    %s\n", ise::service_id_text(s->cloud).c_str());
  std::fprintf(stderr,
               "stored and pinned in %s with one descriptor per section (motif ddnn); a device "
               "peer hosts its section with its own camera, the cloud peer the cloud section "
               "(node::host_ddnn_section; `idn demo ddnn` does both)\n",
               data_dir.c_str());
  return 0;
}

}  // namespace

void register_ddnn_publish(CLI::App& app) {
  auto data_dir = std::make_shared<std::string>(default_data_dir());
  auto package = std::make_shared<std::string>();
  auto* ddnn = app.add_subcommand("ddnn", "DDNN packages on the network");
  ddnn->require_subcommand(1);
  auto* cmd = ddnn->add_subcommand(
      "publish",
      "Store and pin a DDNN package (ddnn.json) and one service descriptor per section (motif "
      "ddnn: device<d>, cloud), print each section's service ID");
  cmd->add_option("PACKAGE_DIR", *package, "DDNN package directory")->required();
  cmd->add_option("--data-dir", *data_dir, "The node's data directory")->capture_default_str();
  cmd->callback([data_dir, package] { run_or_exit(run_publish(*data_dir, *package)); });
}

void register_demo_ddnn(CLI::App& demo) {
  auto a = std::make_shared<Args>();
  auto* c = demo.add_subcommand(
      "ddnn",
      "DDNN on 127.0.0.1: six device peers with their own cameras, the local aggregator and the "
      "cloud; per sample the exit, the bytes on the wire and the running accuracy");
  c->add_option("--samples", a->samples, "Frames to stream (generated test views)")
      ->capture_default_str();
  c->add_option("--kill-device-after", a->kill_after,
                "Stop one device peer before sample N (the system keeps answering)");
  c->add_option("--kill-device", a->kill_device, "Which device peer --kill-device-after stops")
      ->capture_default_str();
  c->add_option("--threshold", a->threshold, "The local exit's T (default: the package's)");
  c->add_option("--device-deadline-ms", a->device_deadline_ms,
                "A device silent this long counts as absent")
      ->capture_default_str();
  c->add_option("--model", a->model,
                "DDNN package, config (c) (default: trained on first run and cached)");
  c->add_option("--train-samples", a->train_samples, "Samples to train the default on")
      ->capture_default_str();
  c->add_option("--epochs", a->epochs, "Epochs to train the default for")->capture_default_str();
  c->add_option("--seed", a->seed, "Seed of the training data and the replay")
      ->capture_default_str();
  c->add_option("--data", a->data, "Directory with FashionMNIST IDX files (default: Debian's)");
  c->add_flag("--retrain", a->retrain, "Train the model again");
  c->add_flag("--quiet", a->quiet, "Only the summary, not one line per sample");
  c->callback([a] { run_or_exit(run(*a)); });
}

}  // namespace idn::cli
