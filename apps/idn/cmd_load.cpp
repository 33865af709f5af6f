// idn load: a consumer node that keeps its identity and ComputeSwap ledgers in a data dir and
// sends a steady request load to a service on the network, counting what it accepted and what
// it receipted to each provider. Those counters are the consumer's own record, kept apart
// from its ledger: a test compares them with both sides' ledgers (tests/cli/swap_crash_test.sh).
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cli.h"
#include "client/selector.h"
#include "ise/service_descriptor.h"
#include "node/config.h"
#include "node/http.h"
#include "node/model_host.h"
#include "node/node.h"
#include "routing/dht_routing.h"
#include "store/bitswap.h"

namespace idn::cli {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// A failed request waits this long before the worker tries again: while the provider is down
// every request fails fast, and retrying at once would only burn the CPU the provider needs to
// come back.
constexpr std::chrono::milliseconds kRetryAfterFailure{100};
// How often a paused worker looks at the pause file again.
constexpr std::chrono::milliseconds kPausePoll{20};
// How long to keep looking for the service's descriptor at start (its provider may still be
// announcing itself).
constexpr std::chrono::seconds kFindServiceFor{60};

struct LoadArgs {
  std::string service;
  std::vector<std::string> bootstrap, listen;
  std::string config, identity, passphrase_file, data_dir, http, pause_file, log_level;
  double duration_s = 0;
  uint64_t requests = 0;
  int concurrency = 1;
  int fanout = 1;
  int deadline_ms = 2000;
  double progress_s = 5;
  uint64_t seed = 1;
};

struct ProviderCount {
  uint64_t receipts = 0, operations = 0;
};

// What the load has done so far. Touched on the node's io thread only (and read by the main
// thread once that thread has ended).
struct Counters {
  Clock::time_point started_at = Clock::now();
  uint64_t started = 0, answered = 0, failed = 0;
  int in_flight = 0;
  uint64_t receipts = 0, receipted_operations = 0;
  std::map<std::string, ProviderCount> providers;  // by peer ID text
  std::string last_error;
};

// Counts every receipt the session records, per provider, then hands the event to the node's
// observer (its SwapAgent, which writes the receipt into the ledger). Every RequestObserver
// method must be forwarded here.
class CountingObserver final : public client::RequestObserver {
 public:
  CountingObserver(std::shared_ptr<client::RequestObserver> inner, std::shared_ptr<Counters> c)
      : inner_(std::move(inner)), c_(std::move(c)) {}
  void on_peer_done(const core::Multihash& service, uint64_t request_id,
                    const client::PeerReport& report) override {
    if (inner_) inner_->on_peer_done(service, request_id, report);
  }
  void on_receipt_sent(const identity::PeerId& provider, protocol::Receipt r) override {
    c_->receipts++;
    c_->receipted_operations += r.operations;
    auto& p = c_->providers[provider.to_string()];
    p.receipts++;
    p.operations += r.operations;
    if (inner_) inner_->on_receipt_sent(provider, std::move(r));
  }
  bool delivers_receipts() const override { return inner_ && inner_->delivers_receipts(); }
  void on_challenge(const core::Multihash& service, const identity::PeerId& peer, bool passed,
                    const std::string& detail) override {
    if (inner_) inner_->on_challenge(service, peer, passed, detail);
  }

 private:
  std::shared_ptr<client::RequestObserver> inner_;
  std::shared_ptr<Counters> c_;
};

nlohmann::json counters_json(const Counters& c, bool paused) {
  nlohmann::json j;
  j["elapsed_s"] = std::chrono::duration<double>(Clock::now() - c.started_at).count();
  j["started"] = c.started;
  j["answered"] = c.answered;
  j["failed"] = c.failed;
  j["in_flight"] = c.in_flight;
  j["paused"] = paused;
  j["receipts"] = c.receipts;
  j["receipted_operations"] = c.receipted_operations;
  j["last_error"] = c.last_error;
  nlohmann::json providers = nlohmann::json::array();
  for (const auto& [peer, p] : c.providers) {
    providers.push_back(
        {{"peer_id", peer}, {"receipts", p.receipts}, {"operations", p.operations}});
  }
  j["providers"] = std::move(providers);
  return j;
}

Result<node::Config> build_config(const LoadArgs& a) {
  node::Config c = node::Config::defaults();
  if (!a.config.empty()) {
    IDN_ASSIGN_OR_RETURN(c, node::load_config(a.config));
  }
  c.http.reset();  // this command serves /status itself (the node's plus the load counters)
  if (!a.identity.empty()) c.identity_file = a.identity;
  if (!a.passphrase_file.empty()) c.passphrase_file = a.passphrase_file;
  if (!a.data_dir.empty()) c.data_dir = a.data_dir;
  if (!a.log_level.empty()) {
    if (!node::is_log_level(a.log_level)) {
      return Status::invalid_argument(fmt::format(
          "--log-level '{}' is not one of trace, debug, info, warn, error, off", a.log_level));
    }
    c.log_level = a.log_level;
  } else if (a.config.empty()) {
    c.log_level = "warn";
  }
  if (!a.bootstrap.empty()) c.bootstrap.clear();
  for (const auto& b : a.bootstrap) {
    auto ma = node::parse_bootstrap_addr(b);
    if (!ma.ok()) return ma.status().with_context("--bootstrap");
    c.bootstrap.push_back(*ma);
  }
  bool loopback = true;
  for (const auto& b : c.bootstrap) {
    if (auto ip = b.ip(); !ip || !ip->starts_with("127.")) loopback = false;
  }
  if (c.bootstrap.empty()) {
    return Status::invalid_argument(
        "give --bootstrap MULTIADDR of a node of the network (ending in /p2p/<id>)");
  }
  if (!a.listen.empty()) {
    c.listen.clear();
    for (const auto& s : a.listen) {
      auto ma = core::Multiaddr::parse(s);
      if (!ma.ok()) return ma.status().with_context("--listen");
      c.listen.push_back(std::move(*ma));
    }
  } else if (c.listen == node::Config::defaults().listen) {
    // Not a server: any free port, on loopback when the network is on loopback.
    c.listen = {
        core::Multiaddr::parse(loopback ? "/ip4/127.0.0.1/tcp/0" : "/ip4/0.0.0.0/tcp/0").value()};
  }
  if (!c.dht.enabled) return Status::invalid_argument("idn load finds providers in the DHT");
  return c;
}

// The service's descriptor: from the local store, else fetched from its providers.
p2p::awaitable<Result<ise::ServiceDescriptor>> find_descriptor(node::Node& nd,
                                                               core::Multihash sid) {
  auto local = nd.models().local_descriptor(sid);
  if (local.ok()) co_return local;
  auto found = co_await nd.models().providers(sid, 4, {});
  if (!found.ok()) co_return found.status();
  Status st = co_await nd.bitswap().fetch_dag(node::ModelHost::descriptor_cid(sid), *found);
  if (!st.is_ok()) co_return st;
  co_return nd.models().local_descriptor(sid);
}

// A fixed input of the descriptor's first input shape, drawn once from `seed`.
Result<core::Tensor> make_input(const ise::ServiceDescriptor& d, uint64_t seed) {
  if (d.inputs.empty()) return Status::invalid_argument("the service descriptor has no input");
  const auto& in = d.inputs.front();
  if (in.dtype != core::DType::kF32) {
    return Status::invalid_argument(fmt::format("input '{}' is {}, idn load sends f32 only",
                                                in.name, core::dtype_name(in.dtype)));
  }
  size_t n = 1;
  for (int64_t dim : in.shape) {
    if (dim <= 0 || dim > (1 << 24) || n * size_t(dim) > (size_t(1) << 26)) {
      return Status::invalid_argument("the service's input shape is not a small fixed shape");
    }
    n *= size_t(dim);
  }
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return core::Tensor::f32(in.shape, v);
}

struct Run {
  const LoadArgs& args;
  node::Node& nd;
  std::shared_ptr<Counters> counters = std::make_shared<Counters>();
  bool stopping = false;
  Clock::time_point end = Clock::time_point::max();
  int workers_left = 0;
  int rc = 0;
  node::HttpServer* http = nullptr;

  bool paused() const {
    std::error_code ec;
    return !args.pause_file.empty() && fs::exists(args.pause_file, ec);
  }
  bool budget_left() const {
    if (stopping || Clock::now() >= end) return false;
    return args.requests == 0 || counters->started < args.requests;
  }

  p2p::awaitable<void> worker(std::shared_ptr<client::Session> session, core::Tensor input) {
    asio::steady_timer t(nd.io());
    auto& c = *counters;
    while (budget_left()) {
      std::chrono::milliseconds wait{0};
      if (paused()) {
        wait = kPausePoll;
      } else {
        c.started++;
        c.in_flight++;
        auto r = co_await session->infer_once(input);
        c.in_flight--;
        if (r.ok()) {
          c.answered++;
        } else {
          c.failed++;
          c.last_error = r.status().to_string();
          wait = kRetryAfterFailure;
        }
      }
      if (wait.count() > 0) {
        t.expires_after(wait);
        boost::system::error_code ec;
        co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
    }
    if (--workers_left == 0) finish();
  }

  p2p::awaitable<void> progress() {
    asio::steady_timer t(nd.io());
    while (!stopping && args.progress_s > 0) {
      t.expires_after(std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(args.progress_s)));
      boost::system::error_code ec;
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (stopping) break;
      const auto& c = *counters;
      std::printf(
          "progress elapsed_s %.1f started %llu answered %llu failed %llu receipts %llu "
          "operations %llu in_flight %d%s\n",
          std::chrono::duration<double>(Clock::now() - c.started_at).count(),
          (unsigned long long)c.started, (unsigned long long)c.answered,
          (unsigned long long)c.failed, (unsigned long long)c.receipts,
          (unsigned long long)c.receipted_operations, c.in_flight, paused() ? " paused" : "");
      std::fflush(stdout);
    }
  }

  p2p::awaitable<void> start(core::Multihash sid) {
    auto give_up = Clock::now() + kFindServiceFor;
    Result<ise::ServiceDescriptor> desc = Status::not_found("not looked up yet");
    asio::steady_timer t(nd.io());
    while (!stopping) {
      desc = co_await find_descriptor(nd, sid);
      if (desc.ok() || Clock::now() >= give_up) break;
      t.expires_after(std::chrono::milliseconds(200));
      boost::system::error_code ec;
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    if (stopping) co_return;
    if (!desc.ok()) {
      rc = report(desc.status().with_context("finding service " + ise::service_id_text(sid)));
      finish();
      co_return;
    }
    auto input = make_input(*desc, args.seed);
    if (!input.ok()) {
      rc = report(input.status());
      finish();
      co_return;
    }
    client::SessionOptions so;
    so.fanout = size_t(args.fanout);
    so.deadline = std::chrono::milliseconds(args.deadline_ms);
    std::shared_ptr<client::RequestObserver> inner;
    if (nd.swap()) inner = nd.swap()->shared_from_this();
    so.observer = std::make_shared<CountingObserver>(inner, counters);
    auto session = nd.session(sid, so);
    counters->started_at = Clock::now();
    if (args.duration_s > 0) {
      end = counters->started_at + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(args.duration_s));
    }
    std::printf("service %s name %s\n", ise::service_id_text(sid).c_str(), desc->name.c_str());
    std::printf("ready\n");
    std::fflush(stdout);
    workers_left = args.concurrency;
    for (int i = 0; i < args.concurrency; ++i) {
      asio::co_spawn(nd.io(), worker(session, *input), asio::detached);
    }
    asio::co_spawn(nd.io(), progress(), asio::detached);
  }

  // On the io thread: stop starting requests; once the workers are done, stop the node.
  void finish() {
    stopping = true;
    if (workers_left > 0) return;
    if (http) http->stop();
    nd.shutdown();
  }
};

int run_load(const LoadArgs& a) {
  auto sid = ise::parse_service_id(a.service);
  if (!sid.ok()) return report(sid.status().with_context("--service"));
  if (a.concurrency < 1) return report(Status::invalid_argument("--concurrency must be >= 1"));
  if (a.fanout < 1) return report(Status::invalid_argument("--fanout must be >= 1"));
  auto cfg = build_config(a);
  if (!cfg.ok()) return report(cfg.status());
  spdlog::set_default_logger(spdlog::stderr_color_mt("idn"));
  spdlog::set_level(spdlog::level::from_str(cfg->log_level));
  std::optional<node::HttpAddress> http_addr;
  if (!a.http.empty()) {
    auto h = node::parse_http_address(a.http);
    if (!h.ok()) return report(h.status().with_context("--http"));
    http_addr = *h;
  }
  auto n = node::Node::create(std::move(*cfg));
  if (!n.ok()) return report(n.status());
  node::Node& nd = **n;
  if (nd.ephemeral_identity()) {
    std::fprintf(stderr,
                 "idn: note: no identity file given; this run's ledgers belong to an ephemeral "
                 "identity (create a lasting one with `idn id new --out consumer.key`)\n");
  }
  Run run{a, nd};
  std::unique_ptr<node::HttpServer> http;
  if (http_addr) {
    http = std::make_unique<node::HttpServer>(nd.io().get_executor());
    if (Status s = http->listen(*http_addr); !s.is_ok()) return report(s.with_context("--http"));
    // The node's own /status (its peers and swap ledgers) with this command's counters added.
    http->route("/status", [&run, &nd] {
      auto j = nlohmann::json::parse(nd.status_json());
      j["load"] = counters_json(*run.counters, run.paused());
      return node::HttpResponse{200, "application/json", j.dump(2) + "\n"};
    });
    http->route("/metrics", [&nd] {
      return node::HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", nd.metrics_text()};
    });
    http->start();
    run.http = http.get();
  }
  std::printf("peer_id %s\n", nd.id().to_string().c_str());
  for (const auto& addr : nd.listen_addrs())
    std::printf("listening %s\n", addr.to_string().c_str());
  if (http) std::printf("http %s\n", http->local_address().to_string().c_str());
  std::printf("data_dir %s\n", nd.data_dir().string().c_str());
  std::fflush(stdout);

  asio::signal_set signals(nd.io(), SIGINT, SIGTERM);
  signals.async_wait([&run](const boost::system::error_code& ec, int) {
    if (!ec) run.finish();
  });
  std::thread io([&] { (void)nd.run(/*handle_signals=*/false); });
  if (Status s = nd.routing()->wait_connected(std::chrono::seconds(30)); !s.is_ok()) {
    run.rc = report(s.with_context("joining the DHT"));
    asio::post(nd.io(), [&run] { run.finish(); });
  } else {
    asio::co_spawn(nd.io(), run.start(*sid), asio::detached);
  }
  io.join();
  http.reset();

  const Counters& c = *run.counters;
  std::printf(
      "done elapsed_s %.1f started %llu answered %llu failed %llu receipts %llu operations "
      "%llu\n",
      std::chrono::duration<double>(Clock::now() - c.started_at).count(),
      (unsigned long long)c.started, (unsigned long long)c.answered, (unsigned long long)c.failed,
      (unsigned long long)c.receipts, (unsigned long long)c.receipted_operations);
  for (const auto& [peer, p] : c.providers) {
    std::printf("provider %s receipts %llu operations %llu\n", peer.c_str(),
                (unsigned long long)p.receipts, (unsigned long long)p.operations);
  }
  if (!c.last_error.empty()) std::printf("last_error %s\n", c.last_error.c_str());
  std::fflush(stdout);
  return run.rc;
}

}  // namespace

void register_load(CLI::App& app) {
  auto a = std::make_shared<LoadArgs>();
  auto* l = app.add_subcommand(
      "load",
      "Send a steady request load to a service on the network as a consumer node that keeps "
      "its identity and ComputeSwap ledgers in --data-dir; counts answers and the operations "
      "it receipted to each provider (printed at the end and under \"load\" in /status)");
  l->footer(
      "Stops after --requests or --duration, or on SIGINT/SIGTERM, and prints `done ...` and one "
      "`provider PEER receipts N operations N` line per provider. While --pause-file exists no "
      "new request starts (those in flight finish): a test pauses the load to compare ledgers.");
  l->add_option("--service", a->service, "Service ID to send requests to")->required();
  l->add_option("--bootstrap", a->bootstrap,
                "Multiaddr of a node of the network (ending in /p2p/<id>), repeatable");
  l->add_option("--listen", a->listen,
                "Multiaddr to listen on, repeatable (default: a free port, on 127.0.0.1 when "
                "every bootstrap peer is)");
  l->add_option("--config", a->config,
                "Node TOML config (e.g. its [swap] table); flags override it");
  l->add_option("--identity", a->identity,
                "Key file from `idn id new` (without one the ledgers belong to a throwaway ID)");
  l->add_option("--passphrase-file", a->passphrase_file,
                "File holding the key's passphrase (else $IDN_PASSPHRASE)");
  l->add_option("--data-dir", a->data_dir,
                "Keeps the swap ledgers (swap/ledgers.sqlite) across runs (default: a temporary "
                "directory)");
  auto* req = l->add_option("--requests", a->requests, "Stop after starting this many requests");
  auto* dur = l->add_option("--duration", a->duration_s, "Stop after this many seconds");
  req->excludes(dur);
  l->add_option("--concurrency", a->concurrency, "Requests in flight at once")
      ->capture_default_str();
  l->add_option("--fanout", a->fanout, "Providers asked per request")->capture_default_str();
  l->add_option("--deadline-ms", a->deadline_ms, "Give a request up after this long")
      ->capture_default_str();
  l->add_option("--http", a->http,
                "HOST:PORT serving /status (the node's, plus \"load\" counters) and /metrics");
  l->add_option("--pause-file", a->pause_file, "While this file exists, start no new request");
  l->add_option("--progress-s", a->progress_s, "Print a progress line this often (0: never)")
      ->capture_default_str();
  l->add_option("--seed", a->seed, "Seed of the (fixed) random input")->capture_default_str();
  l->add_option("--log-level", a->log_level, "trace, debug, info, warn (default), error or off");
  l->callback([a] { run_or_exit(run_load(*a)); });
}

}  // namespace idn::cli
