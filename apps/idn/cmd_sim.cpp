// idn sim computeswap: many simulated peers running the real ComputeSwap (sim/computeswap_sim.h)
// under simulated time; prints a summary and writes a per-minute CSV and a plot of who gets
// the work.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "cli.h"
#include "ml/plot.h"
#include "sim/computeswap_sim.h"

namespace idn::cli {
namespace {

namespace fs = std::filesystem;

struct SimArgs {
  sim::ComputeSwapScenario s;
  std::string out = "bench/out/sim-computeswap";
};

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;
}

int run_sim(const SimArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  auto r = sim::run_computeswap_sim(a.s);
  if (!r.ok()) return report(r.status());
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::error_code ec;
  fs::create_directories(a.out, ec);
  const fs::path csv = fs::path(a.out) / "computeswap_minutes.csv";
  if (Status st = sim::write_minutes_csv(*r, csv); !st.is_ok()) return report(st);

  std::printf(
      "ComputeSwap simulation: %zu peers (%zu cooperators, %zu freeloaders, %zu liars), "
      "%zu services, %.2f h, seed %llu; %llu events in %.1f s wall, peak RSS %.0f MiB\n",
      a.s.peers, r->peers[0], r->peers[1], r->peers[2], a.s.services, a.s.hours,
      static_cast<unsigned long long>(a.s.seed), static_cast<unsigned long long>(r->events), wall,
      peak_rss_mib());
  std::printf("after warm-up (%.0f %% of the run):\n", 100 * a.s.warmup_fraction);
  std::printf("  %-11s %10s %10s %9s %10s %8s %9s %12s\n", "kind", "requests", "answered",
              "served %", "refusals", "unserved", "caught", "ops received");
  for (size_t k = 0; k < sim::kPeerKinds; ++k) {
    const auto& c = r->after_warmup[k];
    std::printf("  %-11s %10llu %10llu %8.1f%% %10llu %8llu %9llu %12.3g\n",
                std::string(sim::peer_kind_name(sim::PeerKind(k))).c_str(),
                static_cast<unsigned long long>(c.requests),
                static_cast<unsigned long long>(c.answered), 100 * r->served_rate[k],
                static_cast<unsigned long long>(c.refusals),
                static_cast<unsigned long long>(c.unserved),
                static_cast<unsigned long long>(c.caught), double(c.ops));
  }
  std::printf("  freeloaders' share of all work served: %.2f %%\n", 100 * r->freeloader_work_share);
  if (r->peers[size_t(sim::PeerKind::kLiar)] > 0)
    std::printf("  liar-requester pairs where the requester caught the liar: %.1f %%\n",
                100 * r->liars_caught);
  std::printf("wrote %s\n", csv.c_str());

  PlotSpec spec;
  spec.title = "Share of the work served, per minute, by kind of requester";
  spec.xlabel = "minute";
  spec.ylabel = "share of operations";
  for (size_t k = 0; k < sim::kPeerKinds; ++k) {
    if (r->peers[k] == 0) continue;
    PlotSeries s;
    s.title = std::string(sim::peer_kind_name(sim::PeerKind(k)));
    for (const auto& m : r->minutes) {
      uint64_t all = 0;
      for (const auto& c : m.kinds) all += c.ops;
      s.x.push_back(m.minute);
      s.y.push_back(all ? double(m.kinds[k].ops) / double(all) : 0);
    }
    spec.series.push_back(std::move(s));
  }
  const fs::path png = fs::path(a.out) / "computeswap_work_share.png";
  if (Status st = plot_png(spec, png); !st.is_ok()) return report(st);
  std::printf("wrote %s\n", png.c_str());
  return 0;
}

}  // namespace

void register_sim(CLI::App& app) {
  auto* sim = app.add_subcommand("sim", "Simulations of many peers running IDN's real classes");
  sim->require_subcommand(1);
  auto a = std::make_shared<SimArgs>();
  // About one request's work (services cost 1-100 MFLOPs): eq. 7.1's +1 would refuse a
  // cooperator's second request to any peer it has not served yet.
  a->s.swap.grace_ops = 20'000'000;
  auto* c = sim->add_subcommand(
      "computeswap",
      "N peers under simulated time, each running the real ComputeSwap (§7.5): who gets served "
      "when some only consume or lie");
  c->footer(
      "Cooperators host services and serve; freeloaders only consume; liars answer wrongly and "
      "are caught by challenges. Requests arrive per peer as a Poisson process for "
      "Zipf-popular services; a requester knows --known providers of each service (the same "
      "ones every time) and tries up to --candidates of them, best provider_score first. "
      "Messages take --latency-ms one way. Deterministic: the same seed gives byte-identical "
      "CSV. Writes OUT/computeswap_minutes.csv and OUT/computeswap_work_share.png.");
  auto& s = a->s;
  c->add_option("--peers", s.peers, "Peers")->capture_default_str();
  c->add_option("--services", s.services, "Services")->capture_default_str();
  c->add_option("--hours", s.hours, "Simulated hours")->capture_default_str();
  c->add_option("--freeloaders", s.freeloaders, "Share of peers that only consume")
      ->capture_default_str();
  c->add_option("--liars", s.liars, "Share of peers that answer wrongly")->capture_default_str();
  c->add_option("--rate", s.requests_per_peer_min, "Requests per peer per minute (mean)")
      ->capture_default_str();
  c->add_option("--zipf", s.zipf, "Service popularity exponent")->capture_default_str();
  c->add_option("--hosted", s.hosted_per_peer, "Services each serving peer hosts")
      ->capture_default_str();
  c->add_option("--known", s.known_providers,
                "Providers a requester knows per service (its provider cache)")
      ->capture_default_str();
  c->add_option("--candidates", s.candidates, "Of those, providers a request may try")
      ->capture_default_str();
  c->add_option("--latency-ms", s.latency_ms, "One-way message latency")->capture_default_str();
  c->add_option("--m", s.swap.m, "p(r): debt ratio where service stops")->capture_default_str();
  c->add_option("--n", s.swap.n, "p(r): how late the fall starts")->capture_default_str();
  c->add_option("--grace-ops", s.swap.grace_ops, "Eq. 7.1's +1, in operations")
      ->capture_default_str();
  c->add_option("--ignore-s", s.swap.ignore_period_s, "T_g: ignore period after a refusal, s")
      ->capture_default_str();
  c->add_option("--challenge-rate", s.swap.challenge_rate, "Share of requests sent as challenges")
      ->capture_default_str();
  c->add_option("--warmup", s.warmup_fraction, "Share of the run before the summary counts")
      ->capture_default_str();
  c->add_option("--seed", s.seed, "Random seed")->capture_default_str();
  c->add_option("--out", a->out, "Output directory")->capture_default_str();
  c->callback([a] { run_or_exit(run_sim(*a)); });
}

}  // namespace idn::cli
