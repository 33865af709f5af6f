// idn demo parallelnet: ParallelNet on loopback (dissertation ch. 5). From a genesis model
// (--genesis, or a small default trained on first run and cached), each of --peers nodes on
// 127.0.0.1 gets its own generated member (p_test --p, seed = its index + 1: physically thinner,
// its own service), publishes it and serves it. A client node sends each test image to a provider
// of every member at once and combines the answers as they arrive (Fig. 5.5); per request it
// prints the answers used, the combined class and confidence, the peers it left out as
// byzantine, and the latency. --kill N stops N honest peers before request --kill-after;
// --byzantine N makes the last N peers answer garbage (a confident, fixed class). At the end:
// accuracy against the single members, how often each liar was caught and honest peers were
// wrongly flagged, and latency percentiles.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "../cli.h"
#include "client/ensemble_session.h"
#include "demo_util.h"
#include "model/package.h"
#include "motifs/labeled_data.h"
#include "motifs/parallelnet.h"
#include "motifs/parallelnet_train.h"
#include "node/node.h"
#include "node/node_thread.h"
#include "rpc/dispatcher.h"

namespace idn::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Args {
  int peers = 8;
  int requests = 40;
  double p = 0.5;
  int kill = 0;
  int kill_after = -1;  // default: a third of the way
  int byzantine = 0;
  std::string rule = "probabilities";
  std::string genesis;
  std::string data;
  bool quiet = false;
};

// The default genesis: the tiny ParallelNet arch, p_train 0.5, 7 epochs on 10,000 FashionMNIST
// images (about a minute on one core), cached. After 3 epochs its members' answers were nearly
// flat (combined confidence 0.14-0.18) and a liar's 1/N of the mass could still win; after 7 a
// member drawn at 0.5 scores 76 %, four together 80 %, the genesis 80.5 % (1,000 validation
// images).
constexpr int kDefaultEpochs = 7;
Status train_default(const fs::path& dir, const std::string& data_dir) {
  std::fprintf(stderr, "training the default genesis (tiny ParallelNet, p_train 0.5) into %s\n",
               dir.c_str());
  motifs::DataOptions d;
  if (!data_dir.empty()) d.dir = data_dir;
  d.limit_train = 10000;
  d.validation = 1000;
  d.limit_test = 1000;
  IDN_ASSIGN_OR_RETURN(auto data, motifs::load_fashion_mnist_tensors(d));
  motifs::ParallelNetTrainOptions o;
  o.train = motifs::recommended_train_options("alexnet");
  o.train.lr = 2e-3;
  o.train.epochs = kDefaultEpochs;
  o.train.batch_size = 32;
  o.train.progress = false;
  o.p_train.p = 0.5;
  o.eval_masks = 4;
  // One thread: two spin at every barrier when the other core is busy (a shared machine, CI).
  torch::set_num_threads(1);
  return motifs::fit_parallelnet("tiny", data, o, dir).status();
}

// A cached default from before inverted scaling or from the 3-epoch recipe (members' answers
// near uniform) is retrained.
bool is_current_default(const fs::path& dir) {
  auto pkg = model::load_package(dir);
  if (!pkg.ok()) return false;
  const auto& op = pkg->spec.operating_point;
  auto pn = op.value("parallelnet", nlohmann::json::object());
  auto training = op.value("training", nlohmann::json::object());
  return pn.value("scaling", std::string()) == "inverted" &&
         training.value("epochs", 0) >= kDefaultEpochs;
}

// Garbage that looks well formed: all the probability on the last class, whatever the input.
rpc::Dispatcher::InferHandler garbage(std::vector<int64_t> shape) {
  return [shape](rpc::InferContext& ctx) -> p2p::awaitable<void> {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> probs(static_cast<size_t>(n), 0.0f);
    probs.back() = 1.0f;
    protocol::InferProgress p;
    p.output = core::Tensor::f32(shape, probs);
    p.confidence = 1.0f;
    p.operations = 1000;
    p.final = true;
    (void)co_await ctx.send(std::move(p));
  };
}

int run(const Args& a) {
  if (a.peers < 1 || a.peers > 32) return report(Status::invalid_argument("--peers must be 1..32"));
  if (a.requests < 1) return report(Status::invalid_argument("--requests must be >= 1"));
  if (!(a.p > 0 && a.p <= 1)) return report(Status::invalid_argument("--p must be in (0, 1]"));
  client::EnsembleOptions eo;
  if (a.rule == "logits") {
    eo.rule = client::CombineRule::kMeanLogits;
  } else if (a.rule == "probabilities") {
    eo.rule = client::CombineRule::kMeanProbabilities;
  } else if (a.rule == "geometric") {
    eo.rule = client::CombineRule::kGeometricMean;
  } else {
    return report(Status::invalid_argument(
        "--rule must be logits, probabilities or geometric, not '" + a.rule + "'"));
  }
  if (a.kill < 0 || a.byzantine < 0 || a.kill + a.byzantine >= a.peers)
    return report(Status::invalid_argument(
        "--kill and --byzantine must be >= 0 and leave at least one honest peer running"));
  spdlog::set_level(spdlog::level::warn);
  torch::set_num_threads(1);
  const auto t0 = Clock::now();
  auto secs = [&] { return std::chrono::duration<double>(Clock::now() - t0).count(); };

  fs::path genesis =
      a.genesis.empty() ? default_models_dir() / "demo-parallelnet-tiny" : fs::path(a.genesis);
  if (!a.genesis.empty() && !model::load_package(genesis).ok())
    return report(Status::not_found(genesis.string() + " is not a model package"));
  if (a.genesis.empty() && !is_current_default(genesis)) {
    std::error_code ec;
    fs::remove_all(genesis, ec);
    if (Status s = train_default(genesis, a.data); !s.is_ok()) return report(s);
  }
  auto data = demo_test_data(a.data, a.requests);
  if (!data.ok()) return report(data.status());
  auto images = motifs::to_samples(data->test.x);
  auto labels = motifs::to_labels(data->test.y);

  // One member per peer, written next to the genesis.
  std::printf("genesis  %s\n", genesis.c_str());
  std::vector<fs::path> member_dirs;
  for (int i = 0; i < a.peers; ++i) {
    motifs::GenerateOptions g;
    g.p_test.p = a.p;
    g.seed = uint64_t(i + 1);
    auto m = motifs::generate_parallelnet(genesis, g);
    if (!m.ok()) return report(m.status());
    fs::path dir =
        genesis.parent_path() / (genesis.filename().string() + "-members") / (m->package.spec.name);
    if (Status st = model::save_package(m->package, dir); !st.is_ok()) return report(st);
    member_dirs.push_back(dir);
    if (i == 0)
      std::printf("members  p_test %.2f: %lld of %lld parameters, %lld of %lld FLOPs (seed 1)\n",
                  a.p, (long long)m->parameters, (long long)m->genesis_parameters,
                  (long long)m->flops, (long long)m->genesis_flops);
  }

  std::printf("starting %d peer(s) on 127.0.0.1, each publishing its own member\n", a.peers);
  std::fflush(stdout);
  std::vector<std::unique_ptr<node::NodeThread>> peers;
  std::vector<core::Multiaddr> boot;
  std::vector<core::Multihash> sid;
  std::vector<identity::PeerId> ids;
  for (int i = 0; i < a.peers; ++i) {
    auto p = node::NodeThread::start(node::loopback_config(boot));
    if (!p.ok()) return report(p.status());
    if (boot.empty()) boot = (**p)->listen_addrs();
    peers.push_back(std::move(*p));
  }
  for (int i = 0; i < a.peers; ++i) {
    node::Node& n = **peers[i];
    auto pub = n.block_on([&] {
      return n.models().publish(member_dirs[i], "ParallelNet member (idn demo parallelnet)");
    });
    if (!pub.ok()) return report(pub.status().with_context("peer " + std::to_string(i)));
    sid.push_back(pub->service_id);
    ids.push_back(n.id());
  }
  const int first_liar = a.peers - a.byzantine;
  for (int i = first_liar; i < a.peers; ++i) {
    node::Node& n = **peers[i];
    auto shape = n.block_on([&]() -> p2p::awaitable<std::vector<int64_t>> {
      auto desc = n.models().local_descriptor(sid[i]);
      co_return desc.ok() && !desc->outputs.empty() ? desc->outputs.front().shape
                                                    : std::vector<int64_t>{10};
    });
    n.block_on([&]() -> p2p::awaitable<int> {
      n.dispatcher().on_infer_request(garbage(shape));
      co_return 0;
    });
    std::printf("peer %-3d %s answers garbage (byzantine)\n", i, short_id(ids[i]).c_str());
  }
  auto client_peer = node::NodeThread::start(node::loopback_config(boot));
  if (!client_peer.ok()) return report(client_peer.status());
  node::Node& cn = ***client_peer;
  client::SessionOptions so;
  so.deadline = std::chrono::milliseconds(5000);
  auto ens = cn.block_on([&]() -> p2p::awaitable<std::shared_ptr<client::EnsembleSession>> {
    co_return cn.ensemble(sid, so, eo);
  });
  std::printf("client   %s asks all %d members at once, combines the mean of their %s (%.1f s)\n\n",
              short_id(cn.id()).c_str(), a.peers, a.rule.c_str(), secs());

  const int kill_after = a.kill_after >= 0 ? a.kill_after : a.requests / 3;
  const auto& names = data->class_names;
  auto name = [&](int c) {
    return c >= 0 && c < static_cast<int>(names.size()) ? names[c] : std::string("?");
  };
  std::map<size_t, int> flagged;  // peer index -> requests it was left out of
  std::vector<double> lat_ms;
  int correct = 0, lost = 0;
  if (!a.quiet)
    std::printf("%5s  %-12s %-12s %-3s %6s %5s  %-8s %8s\n", "req", "label", "combined", "ok",
                "conf", "used", "excluded", "ms");
  for (int r = 0; r < a.requests; ++r) {
    if (r == kill_after && a.kill > 0) {
      for (int k = 0; k < a.kill; ++k) {
        std::printf("-- stopping peer %d (%s)\n", k, short_id(ids[k]).c_str());
        peers[k]->stop();
      }
    }
    const auto start = Clock::now();
    auto out = cn.block_on([&]() -> p2p::awaitable<client::EnsembleSummary> {
      co_return co_await ens->infer(images[r]);
    });
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    if (!out.status.is_ok() || !out.final) {
      ++lost;
      std::printf("%5d  %-12s LOST: %s\n", r, name(int(labels[r])).c_str(),
                  out.status.to_string().c_str());
      continue;
    }
    lat_ms.push_back(ms);
    const bool ok = out.final->predicted == labels[r];
    correct += ok;
    std::string excluded;
    for (const auto& p : out.byzantine) {
      for (size_t i = 0; i < ids.size(); ++i)
        if (ids[i] == p) {
          flagged[i]++;
          excluded += (excluded.empty() ? "" : ",") + std::to_string(i);
        }
    }
    if (!a.quiet)
      std::printf("%5d  %-12s %-12s %-3s %6.3f %5zu  %-8s %8.1f\n", r, name(int(labels[r])).c_str(),
                  name(out.final->predicted).c_str(), ok ? "yes" : "no", out.final->confidence,
                  out.final->used.size(), excluded.empty() ? "-" : excluded.c_str(), ms);
  }
  const int answered = a.requests - lost;
  std::printf("\nrequests %d, answered %d, lost %d\n", a.requests, answered, lost);
  if (answered > 0) {
    std::printf("accuracy of the combined answers %.1f%% (%d/%d)\n", 100.0 * correct / answered,
                correct, answered);
    std::printf("latency ms: median %.1f  p90 %.1f  max %.1f\n", percentile(lat_ms, 0.5),
                percentile(lat_ms, 0.9), percentile(lat_ms, 1.0));
  }
  for (int i = first_liar; i < a.peers; ++i)
    std::printf("byzantine peer %d excluded in %d of %d answered requests\n", i, flagged[size_t(i)],
                answered);
  int false_flags = 0;
  for (int i = 0; i < first_liar; ++i) false_flags += flagged[size_t(i)];
  std::printf("honest answers wrongly excluded: %d\n", false_flags);
  std::printf("done in %.1f s\n", secs());
  (*client_peer)->stop();
  stop_newest_first(peers);
  return lost == 0 ? 0 : 1;
}

}  // namespace

void register_demo_parallelnet(CLI::App& demo) {
  auto a = std::make_shared<Args>();
  auto* c = demo.add_subcommand(
      "parallelnet",
      "ParallelNet on 127.0.0.1: each peer serves its own thinned member of one genesis model; "
      "a client combines their answers as they arrive, survives stopped peers and leaves out "
      "liars");
  c->add_option("--peers", a->peers, "Peers, each serving one generated member")
      ->capture_default_str();
  c->add_option("--requests", a->requests, "Test images to send")->capture_default_str();
  c->add_option("--p", a->p, "p_test: density of every member")->capture_default_str();
  c->add_option("--kill", a->kill, "Honest peers to stop before request --kill-after")
      ->capture_default_str();
  c->add_option("--kill-after", a->kill_after,
                "Request before which --kill peers stop (default: "
                "a third of the way)");
  c->add_option("--byzantine", a->byzantine, "Peers (the last ones) that answer garbage")
      ->capture_default_str();
  c->add_option("--rule", a->rule,
                "How answers combine: logits (Fig. 5.4: the mean of the logits), probabilities "
                "(each answer moves at most 1/N of the mass, so a liar not caught cannot carry "
                "it) or geometric")
      ->capture_default_str();
  c->add_option("--genesis", a->genesis,
                "Genesis package (default: a tiny ParallelNet trained on first run and cached)");
  c->add_option("--data", a->data, "Directory with FashionMNIST IDX files (default: Debian's)");
  c->add_flag("--quiet", a->quiet, "Only the summary, not one line per request");
  c->callback([a] { run_or_exit(run(*a)); });
}

}  // namespace idn::cli
