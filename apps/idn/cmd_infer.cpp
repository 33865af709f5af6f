// idn infer: one input through a model package in this process (the engine; LibTorch or the cpu
// executor) or through a service on the network. Torch-free: also in a build without LibTorch.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>

#include "cli.h"
#include "client/blocking.h"
#include "data/dataset.h"
#include "engine/engine.h"
#include "ise/service_descriptor.h"
#include "ml/backend_option.h"
#include "model/safetensors.h"
#include "node/node.h"
#include "routing/dht_routing.h"

namespace idn::cli {
namespace {

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
  const std::filesystem::path dir =
      a.data_dir.empty() ? data::default_fashion_mnist_dir() : std::filesystem::path(a.data_dir);
  IDN_ASSIGN_OR_RETURN(auto test, data::load_fashion_mnist(dir, data::Split::kTest));
  if (a.test_index < 0 || a.test_index >= test.n)
    return Status::invalid_argument("--test-index must be in [0, " + std::to_string(test.n - 1) +
                                    "]");
  const auto px = test.image(a.test_index);
  return std::pair{core::Tensor::f32({test.c, test.h, test.w}, px),
                   test.labels[static_cast<size_t>(a.test_index)]};
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

void register_infer(CLI::App& app) {
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
