// idn node: run a long-lived IDN peer from a TOML config (flags override it);
// idn peers: ask a running node's HTTP endpoint (/status) for its connected peers.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli.h"
#include "ise/service_descriptor.h"
#include "node/config.h"
#include "node/http.h"
#include "node/model_host.h"
#include "node/node.h"

namespace idn::cli {
namespace {

struct NodeArgs {
  std::string config;
  std::vector<std::string> listen;
  std::string identity;
  std::string passphrase_file;
  std::vector<std::string> bootstrap;
  std::string http;
  std::string log_level;
  std::string data_dir;
  std::vector<std::string> host;
  std::vector<std::string> publish;
  bool no_dht = false;
  int dht_port = -1;
  int workers = 0;
  std::string backend;  // empty: the config's [engine] backend
  int busy_poll_us = -1;
  int poll_while_waiting_us = -1;
};

Result<node::Config> build_config(const NodeArgs& a) {
  node::Config c = node::Config::defaults();
  if (!a.config.empty()) {
    IDN_ASSIGN_OR_RETURN(c, node::load_config(a.config));
  }
  if (!a.listen.empty()) {
    c.listen.clear();
    for (const auto& s : a.listen) {
      auto ma = core::Multiaddr::parse(s);
      if (!ma.ok()) return ma.status().with_context("--listen");
      c.listen.push_back(std::move(*ma));
    }
  }
  if (!a.identity.empty()) c.identity_file = a.identity;
  if (!a.passphrase_file.empty()) c.passphrase_file = a.passphrase_file;
  if (!a.bootstrap.empty()) {
    c.bootstrap.clear();
    for (const auto& s : a.bootstrap) {
      auto ma = node::parse_bootstrap_addr(s);
      if (!ma.ok()) return ma.status().with_context("--bootstrap");
      c.bootstrap.push_back(std::move(*ma));
    }
  }
  if (!a.http.empty()) {
    if (a.http == "off") {
      c.http.reset();
    } else {
      auto h = node::parse_http_address(a.http);
      if (!h.ok()) return h.status().with_context("--http");
      c.http = *h;
    }
  }
  if (!a.data_dir.empty()) c.data_dir = a.data_dir;
  for (const auto& h : a.host) {
    auto id = ise::parse_service_id(h);
    if (!id.ok()) return id.status().with_context("--host");
    c.host.push_back(h);
  }
  if (a.no_dht) c.dht.enabled = false;
  if (a.dht_port >= 0) {
    if (a.dht_port > 65535) return Status::invalid_argument("--dht-port must be 0..65535");
    c.dht.port = static_cast<uint16_t>(a.dht_port);
  }
  if (a.workers > 0) c.serve.workers = static_cast<size_t>(a.workers);
  if (!a.backend.empty()) c.engine.backend = a.backend;
  if (a.busy_poll_us >= 0) c.busy_poll = std::chrono::microseconds(a.busy_poll_us);
  if (a.poll_while_waiting_us >= 0)
    c.poll_while_waiting = std::chrono::microseconds(a.poll_while_waiting_us);
  if (!a.log_level.empty()) {
    if (!node::is_log_level(a.log_level)) {
      return Status::invalid_argument(fmt::format(
          "--log-level '{}' is not one of trace, debug, info, warn, error, off", a.log_level));
    }
    c.log_level = a.log_level;
  }
  return c;
}

int run_node(const NodeArgs& a) {
  auto cfg = build_config(a);
  if (!cfg.ok()) return report(cfg.status());
  // Logs go to stderr: stdout carries the "key value" lines below, for scripts.
  spdlog::set_default_logger(spdlog::stderr_color_mt("idn"));
  spdlog::set_level(spdlog::level::from_str(cfg->log_level));
  auto n = node::Node::create(std::move(*cfg));
  if (!n.ok()) return report(n.status());
  node::Node& nd = **n;
  if (nd.ephemeral_identity()) {
    std::fprintf(stderr,
                 "idn: note: no identity file given; using an ephemeral identity for this run "
                 "(create a lasting one with `idn id new --out node.key`)\n");
  }
  // One "key value" line each, so scripts and tests can read them.
  std::printf("peer_id %s\n", nd.id().to_string().c_str());
  for (const auto& addr : nd.listen_addrs())
    std::printf("listening %s\n", addr.to_string().c_str());
  if (nd.http_address()) {
    std::printf("http %s\n", nd.http_address()->to_string().c_str());
  }
  if (!nd.dht_endpoint().empty()) std::printf("dht %s\n", nd.dht_endpoint().c_str());
  std::printf("data_dir %s\n", nd.data_dir().string().c_str());
  // Publish before serving peers: a package that fails its checks stops the node with the
  // reason instead of leaving it half set up.
  for (const auto& dir : a.publish) {
    auto pub = node::store_publication(nd.blockstore(), dir);
    if (!pub.ok()) return report(pub.status().with_context("--publish"));
    if (Status s = node::add_hosted(nd.data_dir(), pub->service_id); !s.is_ok()) return report(s);
    std::printf("published %s model %s service %s\n", dir.c_str(),
                pub->model_cid.to_string().c_str(), ise::service_id_text(pub->service_id).c_str());
    if (pub->descriptor.origin)
      std::printf("origin of %s: %s\n", dir.c_str(),
                  ise::describe(*pub->descriptor.origin).c_str());
    if (!pub->left_out.empty()) {
      std::printf("not published from %s (kept local, not needed to serve): %s\n", dir.c_str(),
                  fmt::format("{}", fmt::join(pub->left_out, ", ")).c_str());
    }
  }
  std::printf("ready\n");
  std::fflush(stdout);
  Status st = nd.run(/*handle_signals=*/true);
  if (!st.is_ok()) return report(st);
  std::printf("stopped\n");
  return 0;
}

int run_peers(const std::string& http) {
  auto addr = node::parse_http_address(http);
  if (!addr.ok()) return report(addr.status().with_context("--http"));
  auto r = node::http_get(*addr, "/status");
  if (!r.ok()) {
    return report(r.status().with_context(
        fmt::format("is `idn node` running with its HTTP endpoint on {}?", addr->to_string())));
  }
  if (r->status != 200) {
    return report(Status::unavailable(
        fmt::format("GET http://{}/status answered HTTP {}", addr->to_string(), r->status)));
  }
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (!j.is_object() || !j.contains("peers") || !j["peers"].is_array()) {
    return report(Status::corruption(
        fmt::format("http://{}/status did not return an IDN status document", addr->to_string())));
  }
  auto str = [](const nlohmann::json& v) {
    return v.is_string() ? v.get<std::string>() : std::string("-");
  };
  std::printf("node %s, %zu peer(s)\n", str(j.value("peer_id", nlohmann::json())).c_str(),
              j["peers"].size());
  if (!j["peers"].empty())
    std::printf("%-54s %-9s %9s  %-34s %s\n", "PEER", "DIRECTION", "RTT(ms)", "ADDRESS", "AGENT");
  for (const auto& p : j["peers"]) {
    std::string rtt = p.contains("rtt_ms") && p["rtt_ms"].is_number()
                          ? fmt::format("{:.3f}", p["rtt_ms"].get<double>())
                          : "-";
    std::printf("%-54s %-9s %9s  %-34s %s\n", str(p.value("peer_id", nlohmann::json())).c_str(),
                str(p.value("direction", nlohmann::json())).c_str(), rtt.c_str(),
                str(p.value("addr", nlohmann::json())).c_str(),
                str(p.value("agent", nlohmann::json())).c_str());
  }
  if (j.contains("swap") && j["swap"].is_object() && j["swap"].contains("peers")) {
    const auto& sw = j["swap"];
    auto num = [](const nlohmann::json& o, const char* k) {
      return o.contains(k) && o[k].is_number() ? o[k].get<double>() : 0.0;
    };
    auto secs = [](const nlohmann::json& o, const char* k) {
      return o.contains(k) && o[k].is_number() ? fmt::format("{:.1f}", o[k].get<double>())
                                               : std::string("-");
    };
    std::printf(
        "\nComputeSwap (m %.2f, n %.2f, grace %.3g ops): served %.0f, refused %.0f, "
        "refused by peers %.0f\n",
        num(sw, "m"), num(sw, "n"), num(sw, "grace_ops"), num(sw, "admitted"), num(sw, "refused"),
        num(sw, "refused_by_peers"));
    std::printf("%-54s %-7s %12s %12s %8s %6s %9s %9s %s\n", "PEER", "STATE", "DEBT(ops)",
                "CREDIT(ops)", "r", "p(r)", "SEEN(s)", "CHALLENGE", "NOTE");
    for (const auto& p : sw["peers"]) {
      std::string note;
      if (p.value("trusted", false)) note += "trusted ";
      if (p.value("blacklisted", false)) note += "blacklisted ";
      if (p.value("contempt", false)) note += "contempt ";
      // Answers against the majority of the other peers' (counted, not punished).
      if (num(p, "suspicious") > 0) note += fmt::format("{:.0f} suspicious ", num(p, "suspicious"));
      if (p.contains("ignored_for_s") && p["ignored_for_s"].is_number())
        note += fmt::format("ignored {:.0f}s more ", p["ignored_for_s"].get<double>());
      if (p.contains("reason") && p["reason"].is_string() &&
          !p["reason"].get<std::string>().empty())
        note += "(" + p["reason"].get<std::string>() + ")";
      std::printf("%-54s %-7s %12.4g %12.4g %8.3f %6.3f %9s %4.0f/%-4.0f %s\n",
                  str(p.value("peer_id", nlohmann::json())).c_str(),
                  str(p.value("state", nlohmann::json())).c_str(), num(p, "debt"), num(p, "credit"),
                  num(p, "r"), num(p, "p"), secs(p, "last_seen_s_ago").c_str(),
                  num(p, "challenges_passed"), num(p, "challenges_failed"), note.c_str());
    }
  }
  if (j.contains("ise") && j["ise"].is_object()) {
    const auto& ise = j["ise"];
    auto num = [](const nlohmann::json& o, const char* k) {
      return o.contains(k) && o[k].is_number() ? o[k].get<double>() : 0.0;
    };
    std::printf(
        "\nInference Service Engine (auto_host %s, k %.0f, T_s %.0f s, need idle %.0f s): "
        "started %.0f, stopped %.0f, failed starts %.0f\n",
        ise.value("auto_host", false) ? "on" : "off", num(ise, "k"),
        num(ise, "min_service_period_s"), num(ise, "need_idle_s"), num(ise, "started"),
        num(ise, "stopped"), num(ise, "start_failures"));
    if (ise.contains("need_list") && ise["need_list"].is_array() && !ise["need_list"].empty()) {
      // Each with its requests within need_idle (need_counts, same order; absent: older nodes).
      std::string need;
      const auto& ids = ise["need_list"];
      const nlohmann::json counts = ise.value("need_counts", nlohmann::json::array());
      for (size_t i = 0; i < ids.size(); ++i) {
        need += (need.empty() ? "" : ", ") + str(ids[i]);
        if (counts.is_array() && i < counts.size() && counts[i].is_number())
          need += fmt::format(" x{}", counts[i].get<double>());
      }
      std::printf("need list: %s\n", need.c_str());
    }
    if (ise.contains("queue") && ise["queue"].is_array() && !ise["queue"].empty()) {
      std::printf("%-48s %9s %6s %8s %-7s %s\n", "SERVICE", "SCORE", "PEERS", "REQUESTS", "HOSTED",
                  "WHY");
      for (const auto& e : ise["queue"]) {
        std::string hosted = e.value("pinned", false)   ? "pinned"
                             : e.value("hosted", false) ? "yes"
                                                        : "no";
        std::printf("%-48s %9.3f %6.0f %8.0f %-7s %s\n",
                    str(e.value("service_id", nlohmann::json())).c_str(), num(e, "score"),
                    num(e, "peers"), num(e, "requests"), hosted.c_str(),
                    str(e.value("why", nlohmann::json())).c_str());
      }
    }
  }
  return 0;
}

}  // namespace

void register_node(CLI::App& app) {
  auto a = std::make_shared<NodeArgs>();
  CLI::App* n = app.add_subcommand(
      "node", "Run a long-lived IDN peer (Ctrl-C or SIGTERM stops it gracefully)");
  n->add_option("--config", a->config, "TOML config file (see src/node/config.h for keys)");
  n->add_option("--listen", a->listen, "Multiaddr to listen on, repeatable (replaces config)");
  n->add_option("--identity", a->identity,
                "Key file from `idn id new`; without one an ephemeral identity is used");
  n->add_option("--passphrase-file", a->passphrase_file,
                "File holding the key's passphrase (else $IDN_PASSPHRASE)");
  n->add_option(
      "--bootstrap", a->bootstrap,
      "Peer multiaddr ending in /p2p/<id> to dial at start, repeatable (replaces config)");
  n->add_option("--http", a->http, "HOST:PORT for /metrics and /status, or 'off'");
  n->add_option("--log-level", a->log_level, "trace, debug, info, warn, error or off");
  n->add_option("--data-dir", a->data_dir,
                "Store, models and hosted services live here (default: a temporary directory)");
  n->add_option("--publish", a->publish,
                "Model package directory to publish and host (repeatable); prints its model "
                "CID and service ID");
  n->add_option("--host", a->host, "Service ID to host (initModel: find, fetch, load, provide)");
  n->add_flag("--no-dht", a->no_dht, "Run without the DHT (no provider records, no lookups)");
  n->add_option("--dht-port", a->dht_port,
                "UDP port of the DHT (default: the number of the first TCP listen port)");
  n->add_option("--workers", a->workers, "Inference worker threads");
  n->add_option("--backend", a->backend,
                "What runs hosted models (replaces the config's [engine] backend, default auto): "
                "auto (of the torch-free cpu executor and LibTorch, the faster on a probe input "
                "when they agree within 1e-4, else LibTorch; the cpu executor in a build without "
                "LibTorch), torch (LibTorch), cpu (the cpu executor; a package it cannot run is "
                "not hosted)")
      ->check(CLI::IsMember({"auto", "torch", "cpu"}));
  n->add_option("--busy-poll-us", a->busy_poll_us,
                "Poll this long after work before sleeping (lower latency on VMs, more CPU)")
      ->check(CLI::Range(0, 1'000'000));
  n->add_option("--poll-while-waiting-us", a->poll_while_waiting_us,
                "While our own inference requests await answers, poll up to this long instead "
                "of sleeping")
      ->check(CLI::Range(0, 1'000'000));
  n->callback([a] { run_or_exit(run_node(*a)); });

  auto http = std::make_shared<std::string>(std::string(node::kDefaultHttp));
  CLI::App* p = app.add_subcommand("peers", "List the peers of a running `idn node`");
  p->add_option("--http", *http, "The node's HTTP endpoint")->capture_default_str();
  p->callback([http] { run_or_exit(run_peers(*http)); });
}

}  // namespace idn::cli
