// idn sim computeswap: many simulated peers running the real ComputeSwap and ISE queue
// (sim/computeswap_sim.h) under simulated time; prints a summary and writes CSVs, a summary JSON
// and plots: who gets the work, hosts per service against popularity, debt ratios.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "ml/plot.h"
#include "sim/computeswap_sim.h"

namespace idn::cli {
namespace {

namespace fs = std::filesystem;

struct SimArgs {
  sim::ComputeSwapScenario s;
  std::string out = "bench/out/sim-computeswap";
  std::vector<std::string> sweep;  // "PARAM=v1,v2,..."
  size_t seeds = 1;
};

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;
}

// The smallest n with caught_within[n-1] >= q, or 0 if the curve never gets there.
size_t answers_to_catch(const std::vector<double>& curve, double q) {
  for (size_t n = 0; n < curve.size(); ++n)
    if (curve[n] >= q) return n + 1;
  return 0;
}

Status write_summary_json(const SimArgs& a, const sim::ComputeSwapResult& r, double wall,
                          const fs::path& path) {
  const auto& s = a.s;
  nlohmann::json j = {{"peers", s.peers},
                      {"services", s.services},
                      {"hours", s.hours},
                      {"seed", s.seed},
                      {"partitions", r.partitions},
                      {"threads", r.threads},
                      {"thread_busy_s", r.thread_busy_s},
                      {"thread_wait_s", r.thread_wait_s},
                      {"init_s", r.init_s},
                      {"teardown_s", r.teardown_s},
                      {"freeloaders", s.freeloaders},
                      {"liars", s.liars},
                      {"churn", s.churn},
                      {"rate", s.requests_per_peer_min},
                      {"k", s.k},
                      {"auto_host", s.auto_host},
                      {"m", s.swap.m},
                      {"n", s.swap.n},
                      {"grace_ops", s.swap.grace_ops},
                      {"ignore_s", s.swap.ignore_period_s},
                      {"list_refresh_s", s.swap.list_refresh_s},
                      {"min_service_s", s.min_service_s},
                      {"keep_factor", s.keep_factor},
                      {"per_provider", s.per_provider},
                      {"challenge_rate", s.swap.challenge_rate},
                      {"probation_challenges", s.swap.probation_challenges},
                      {"freeloader_work_share", r.freeloader_work_share},
                      {"answers_per_pair", r.answers_per_pair},
                      {"served_rate_cooperator", r.served_rate[0]},
                      {"served_rate_freeloader", r.served_rate[1]},
                      {"served_rate_liar", r.served_rate[2]},
                      {"spearman_hosts_popularity", r.spearman_hosts_popularity},
                      {"liar_pairs", r.liar_pairs},
                      {"liars_caught", r.liars_caught},
                      {"liar_answers_to_catch_99", answers_to_catch(r.caught_within, 0.99)},
                      {"ise_starts", r.ise_starts},
                      {"ise_stops", r.ise_stops},
                      {"leaves", r.leaves},
                      {"joins", r.joins},
                      {"events", r.events},
                      {"wall_s", wall},
                      {"peak_rss_mib", peak_rss_mib()}};
  for (size_t k = 0; k < sim::kPeerKinds; ++k) {
    const std::string kind(sim::peer_kind_name(sim::PeerKind(k)));
    if (r.debt_ratios[k].empty()) continue;
    j["debt_ratio_p50_" + kind] = sim::sorted_quantile(r.debt_ratios[k], 0.5);
    j["debt_ratio_p90_" + kind] = sim::sorted_quantile(r.debt_ratios[k], 0.9);
  }
  std::ofstream f(path);
  f << j.dump(2) << "\n";
  f.flush();
  if (!f) return Status::io_error("writing " + path.string() + " failed");
  return Status::ok();
}

Status plot_all(const sim::ComputeSwapResult& r, const fs::path& out) {
  PlotSpec work;
  work.title = "Share of the work served, per minute, by kind of requester";
  work.xlabel = "minute";
  work.ylabel = "share of operations";
  for (size_t k = 0; k < sim::kPeerKinds; ++k) {
    if (r.peers[k] == 0) continue;
    PlotSeries s;
    s.title = std::string(sim::peer_kind_name(sim::PeerKind(k)));
    for (const auto& m : r.minutes) {
      uint64_t all = 0;
      for (const auto& c : m.kinds) all += c.ops;
      s.x.push_back(m.minute);
      s.y.push_back(all ? double(m.kinds[k].ops) / double(all) : 0);
    }
    work.series.push_back(std::move(s));
  }
  IDN_RETURN_IF_ERROR(plot_png(work, out / "computeswap_work_share.png"));

  PlotSpec hosts;
  hosts.title = fmt::format("Hosts per service against popularity (Spearman {:.3f})",
                            r.spearman_hosts_popularity);
  hosts.xlabel = "popularity (share of requests)";
  hosts.ylabel = "peers hosting it (mean after warm-up)";
  hosts.logx = hosts.logy = true;
  PlotSeries hs;
  hs.title = "service";
  hs.lines = false;
  for (const auto& s : r.services) {
    hs.x.push_back(s.popularity);
    hs.y.push_back(std::max(s.mean_hosts, 0.1));  // log axis: 0.1 stands for none
  }
  hosts.series.push_back(std::move(hs));
  IDN_RETURN_IF_ERROR(plot_png(hosts, out / "computeswap_hosts.png"));

  PlotSpec debt;
  debt.title = "Debt ratios providers see, by kind of peer served (at the end)";
  debt.xlabel = "debt ratio r (log)";
  debt.ylabel = "share of (provider, peer) ledgers with r at most x";
  debt.logx = true;
  for (size_t k = 0; k < sim::kPeerKinds; ++k) {
    const auto& v = r.debt_ratios[k];
    if (v.empty()) continue;
    PlotSeries s;
    s.title = std::string(sim::peer_kind_name(sim::PeerKind(k)));
    for (int q = 0; q <= 100; ++q) {
      s.x.push_back(std::max(sim::sorted_quantile(v, q / 100.0), 1e-6));
      s.y.push_back(q / 100.0);
    }
    debt.series.push_back(std::move(s));
  }
  if (!debt.series.empty())
    IDN_RETURN_IF_ERROR(plot_png(debt, out / "computeswap_debt_ratios.png"));
  return Status::ok();
}

int run_sim(const SimArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  auto r = sim::run_computeswap_sim(a.s);
  if (!r.ok()) return report(r.status());
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::error_code ec;
  const fs::path out(a.out);
  fs::create_directories(out, ec);
  if (ec) return report(Status::io_error("cannot create " + a.out + ": " + ec.message()));
  for (auto [write, name] :
       {std::pair{&sim::write_minutes_csv, "computeswap_minutes.csv"},
        std::pair{&sim::write_services_csv, "computeswap_services.csv"},
        std::pair{&sim::write_debt_ratios_csv, "computeswap_debt_ratios.csv"}}) {
    if (Status st = write(*r, out / name); !st.is_ok()) return report(st);
  }
  if (Status st = write_summary_json(a, *r, wall, out / "summary.json"); !st.is_ok())
    return report(st);

  const auto& s = a.s;
  std::printf(
      "ComputeSwap + ISE simulation: %zu peers (%zu cooperators, %zu freeloaders, %zu liars), "
      "%zu services, %.2f h, seed %llu; %llu events in %.1f s wall, peak RSS %.0f MiB\n",
      s.peers, r->peers[0], r->peers[1], r->peers[2], s.services, s.hours,
      static_cast<unsigned long long>(s.seed), static_cast<unsigned long long>(r->events), wall,
      peak_rss_mib());
  std::printf(
      "%zu partitions on %zu threads; each thread's seconds running events / waiting for "
      "the others:",
      r->partitions, r->threads);
  for (size_t t = 0; t < r->threads; ++t)
    std::printf(" %.1f/%.1f", r->thread_busy_s[t], r->thread_wait_s[t]);
  std::printf("; building the world %.1f s, tearing it down %.1f s\n", r->init_s, r->teardown_s);
  std::printf("after warm-up (%.0f %% of the run):\n", 100 * s.warmup_fraction);
  std::printf("  %-11s %9s %9s %9s %8s %9s %8s %7s %7s %12s\n", "kind", "requests", "answered",
              "served %", "local", "refusals", "unserved", "stale", "caught", "ops received");
  for (size_t k = 0; k < sim::kPeerKinds; ++k) {
    const auto& c = r->after_warmup[k];
    auto u = [](uint64_t x) { return static_cast<unsigned long long>(x); };
    std::printf("  %-11s %9llu %9llu %8.1f%% %8llu %9llu %8llu %7llu %7llu %12.3g\n",
                std::string(sim::peer_kind_name(sim::PeerKind(k))).c_str(), u(c.requests),
                u(c.answered), 100 * r->served_rate[k], u(c.local), u(c.refusals), u(c.unserved),
                u(c.stale), u(c.caught), double(c.ops));
  }
  std::printf(
      "  freeloaders' share of all work served: %.2f %% (%.2f answers per requester-provider "
      "pair)\n",
      100 * r->freeloader_work_share, r->answers_per_pair);
  std::printf(
      "  hosts per service vs popularity: Spearman %.3f (ISE %s; %llu starts, %llu stops)\n",
      r->spearman_hosts_popularity, s.auto_host ? "on" : "off (fixed hosting)",
      static_cast<unsigned long long>(r->ise_starts),
      static_cast<unsigned long long>(r->ise_stops));
  if (s.churn > 0)
    std::printf("  churn: %llu leaves, %llu joins\n", static_cast<unsigned long long>(r->leaves),
                static_cast<unsigned long long>(r->joins));
  if (r->peers[size_t(sim::PeerKind::kLiar)] > 0) {
    const size_t n99 = answers_to_catch(r->caught_within, 0.99);
    std::printf(
        "  liars: caught by %.1f %% of the %llu requesters they answered; 99 %% caught within %s "
        "wrong answers (challenge rate %.3g, probation %u)\n",
        100 * r->liars_caught, static_cast<unsigned long long>(r->liar_pairs),
        n99 ? std::to_string(n99).c_str() : "(not reached)", s.swap.challenge_rate,
        s.swap.probation_challenges);
  }
  for (size_t k = 0; k < sim::kPeerKinds; ++k) {
    const auto& v = r->debt_ratios[k];
    if (v.empty()) continue;
    std::printf("  debt ratio providers see, %-10s p50 %.3g  p90 %.3g  p99 %.3g  (%zu ledgers)\n",
                std::string(sim::peer_kind_name(sim::PeerKind(k))).c_str(),
                sim::sorted_quantile(v, 0.5), sim::sorted_quantile(v, 0.9),
                sim::sorted_quantile(v, 0.99), v.size());
  }
  if (Status st = plot_all(*r, out); !st.is_ok()) return report(st);
  std::printf(
      "wrote %s/{summary.json, computeswap_minutes.csv, computeswap_services.csv, "
      "computeswap_debt_ratios.csv, computeswap_work_share.png, computeswap_hosts.png, "
      "computeswap_debt_ratios.png}\n",
      a.out.c_str());
  return 0;
}

// --sweep: one parameter at a time over its values, --seeds runs each, the rest as given.
struct SweepParam {
  const char* name;
  void (*set)(sim::ComputeSwapScenario&, double);
};
constexpr SweepParam kSweepParams[] = {
    {"m", [](sim::ComputeSwapScenario& s, double v) { s.swap.m = v; }},
    {"n", [](sim::ComputeSwapScenario& s, double v) { s.swap.n = v; }},
    {"ignore-s",
     [](sim::ComputeSwapScenario& s, double v) { s.swap.ignore_period_s = uint32_t(v); }},
    {"min-service-s", [](sim::ComputeSwapScenario& s, double v) { s.min_service_s = v; }},
    {"keep-factor", [](sim::ComputeSwapScenario& s, double v) { s.keep_factor = v; }},
    {"per-provider", [](sim::ComputeSwapScenario& s, double v) { s.per_provider = v != 0; }},
    {"need-idle-s", [](sim::ComputeSwapScenario& s, double v) { s.need_idle_s = v; }},
    {"grace-ops", [](sim::ComputeSwapScenario& s, double v) { s.swap.grace_ops = uint64_t(v); }},
    {"rate", [](sim::ComputeSwapScenario& s, double v) { s.requests_per_peer_min = v; }},
    {"peers", [](sim::ComputeSwapScenario& s, double v) { s.peers = size_t(v); }},
    {"k", [](sim::ComputeSwapScenario& s, double v) { s.k = size_t(v); }},
    {"known", [](sim::ComputeSwapScenario& s, double v) { s.known_providers = size_t(v); }},
    {"churn", [](sim::ComputeSwapScenario& s, double v) { s.churn = v; }},
    {"challenge-rate", [](sim::ComputeSwapScenario& s, double v) { s.swap.challenge_rate = v; }},
    {"probation",
     [](sim::ComputeSwapScenario& s, double v) { s.swap.probation_challenges = uint32_t(v); }},
};

struct SweepMetric {
  const char* name;
  double (*get)(const sim::ComputeSwapResult&);
};
constexpr SweepMetric kSweepMetrics[] = {
    {"freeloader_work_share",
     [](const sim::ComputeSwapResult& r) { return r.freeloader_work_share; }},
    {"served_cooperator", [](const sim::ComputeSwapResult& r) { return r.served_rate[0]; }},
    {"served_freeloader", [](const sim::ComputeSwapResult& r) { return r.served_rate[1]; }},
    {"spearman_hosts_popularity",
     [](const sim::ComputeSwapResult& r) { return r.spearman_hosts_popularity; }},
    {"liars_caught", [](const sim::ComputeSwapResult& r) { return r.liars_caught; }},
    {"answers_per_pair", [](const sim::ComputeSwapResult& r) { return r.answers_per_pair; }},
};

int run_sweep(const SimArgs& a) {
  struct Axis {
    const SweepParam* param;
    std::vector<double> values;
  };
  std::vector<Axis> axes;
  for (const std::string& spec : a.sweep) {
    const size_t eq = spec.find('=');
    const std::string name = spec.substr(0, eq);
    const SweepParam* param = nullptr;
    for (const auto& p : kSweepParams)
      if (name == p.name) param = &p;
    std::string known;
    for (const auto& p : kSweepParams) known += std::string(known.empty() ? "" : ", ") + p.name;
    if (eq == std::string::npos || !param)
      return report(Status::invalid_argument(
          "--sweep " + spec + ": expected PARAM=v1,v2,... with PARAM one of " + known));
    Axis axis{param, {}};
    std::stringstream vs(spec.substr(eq + 1));
    for (std::string v; std::getline(vs, v, ',');) {
      try {
        size_t used = 0;
        axis.values.push_back(std::stod(v, &used));
        if (used != v.size()) throw std::invalid_argument(v);
      } catch (const std::exception&) {
        return report(
            Status::invalid_argument("--sweep " + spec + ": '" + v + "' is not a number"));
      }
    }
    if (axis.values.empty())
      return report(Status::invalid_argument("--sweep " + spec + ": no values"));
    axes.push_back(std::move(axis));
  }
  std::error_code ec;
  const fs::path out(a.out);
  fs::create_directories(out, ec);
  if (ec) return report(Status::io_error("cannot create " + a.out + ": " + ec.message()));
  std::ofstream runs(out / "sweep.csv"), meds(out / "sweep_medians.csv");
  runs << "param,value,seed,wall_s";
  meds << "param,value,runs";
  for (const auto& m : kSweepMetrics) {
    runs << ',' << m.name;
    meds << ',' << m.name;
  }
  runs << '\n';
  meds << '\n';
  std::printf("%-14s %12s %5s", "param", "value", "runs");
  for (const auto& m : kSweepMetrics) std::printf(" %14.14s", m.name);
  std::printf("   (medians over seeds %llu..%llu)\n", static_cast<unsigned long long>(a.s.seed),
              static_cast<unsigned long long>(a.s.seed + a.seeds - 1));
  for (const Axis& axis : axes) {
    PlotSpec plot;
    plot.title = fmt::format("Sweep of {} (median of {} seeds)", axis.param->name, a.seeds);
    plot.xlabel = axis.param->name;
    plot.ylabel = "median";
    std::vector<PlotSeries> series(std::size(kSweepMetrics));
    for (size_t m = 0; m < series.size(); ++m) series[m].title = kSweepMetrics[m].name;
    for (double v : axis.values) {
      std::vector<std::vector<double>> got(std::size(kSweepMetrics));
      for (size_t i = 0; i < a.seeds; ++i) {
        sim::ComputeSwapScenario s = a.s;
        axis.param->set(s, v);
        s.seed = a.s.seed + i;
        const auto t0 = std::chrono::steady_clock::now();
        auto r = sim::run_computeswap_sim(s);
        if (!r.ok()) return report(r.status());
        const double wall =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        runs << axis.param->name << ',' << v << ',' << s.seed << ',' << fmt::format("{:.2f}", wall);
        for (size_t m = 0; m < got.size(); ++m) {
          got[m].push_back(kSweepMetrics[m].get(*r));
          runs << ',' << fmt::format("{:.6g}", got[m].back());
        }
        runs << '\n';
        runs.flush();
      }
      std::printf("%-14s %12g %5zu", axis.param->name, v, a.seeds);
      meds << axis.param->name << ',' << v << ',' << a.seeds;
      for (size_t m = 0; m < got.size(); ++m) {
        const double md = percentile(got[m], 0.5);
        std::printf(" %14.4g", md);
        meds << ',' << fmt::format("{:.6g}", md);
        series[m].x.push_back(v);
        series[m].y.push_back(md);
      }
      std::printf("\n");
      std::fflush(stdout);
      meds << '\n';
    }
    // answers_per_pair has its own scale; the plot shows the shares and correlations.
    for (size_t m = 0; m < series.size(); ++m)
      if (std::string(kSweepMetrics[m].name) != "answers_per_pair")
        plot.series.push_back(series[m]);
    if (axis.values.size() < 2) continue;  // one value: medians only, no curve to draw
    if (Status st = plot_png(plot, out / fmt::format("sweep_{}.png", axis.param->name));
        !st.is_ok())
      return report(st);
  }
  runs.flush();
  meds.flush();
  if (!runs || !meds)
    return report(Status::io_error("writing the sweep CSVs in " + a.out + " failed"));
  std::printf("wrote %s/{sweep.csv, sweep_medians.csv, sweep_PARAM.png}\n", a.out.c_str());
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
      "N peers under simulated time, each running the real ComputeSwap (§7.5) and ISE queue "
      "(§7.4): who gets served when some only consume or lie, and who hosts what");
  c->footer(
      "Every peer runs the real ComputeSwap (swap/) and, if it serves, the real ISE queue "
      "(ise/ServiceQueue): it hosts the services it published (--publishers per service) and the "
      "top --k by demand (its peers' need lists and the requests it gets), each for at least "
      "--min-service-s. Cooperators serve; freeloaders only consume; liars answer wrongly and are "
      "caught by challenges. Requests arrive per peer as a Poisson process for Zipf-popular "
      "services; a requester caches --known providers per service from the provider records "
      "(looked up again after --provider-ttl-s) and tries up to --candidates of them, best "
      "provider_score first. With --churn C each peer leaves C times an hour on average and comes "
      "back after --offline-min. Messages take --latency-ms one way. Deterministic: the same seed "
      "gives "
      "byte-identical CSV.\n\nWrites OUT/summary.json, OUT/computeswap_minutes.csv (per minute "
      "and kind), OUT/computeswap_services.csv (hosts per service), "
      "OUT/computeswap_debt_ratios.csv "
      "and the plots computeswap_work_share.png, computeswap_hosts.png, "
      "computeswap_debt_ratios.png.");
  auto& s = a->s;
  auto opt = [&](const char* name, auto& v, const char* what) {
    c->add_option(name, v, what)->capture_default_str();
  };
  opt("--peers", s.peers, "Peers");
  opt("--services", s.services, "Services");
  opt("--hours", s.hours, "Simulated hours");
  opt("--freeloaders", s.freeloaders, "Share of peers that only consume");
  opt("--liars", s.liars, "Share of peers that answer wrongly");
  opt("--churn", s.churn, "Leaves per peer per hour (each peer comes back)");
  opt("--offline-min", s.offline_min, "Mean time a leaving peer stays away, minutes");
  opt("--rate", s.requests_per_peer_min, "Requests per peer per minute (mean)");
  opt("--zipf", s.zipf, "Service popularity exponent");
  opt("--k", s.k, "ISE: services each serving peer hosts on demand");
  c->add_flag(
      "--fixed-hosting", [a](int64_t) { a->s.auto_host = false; },
      "No ISE: each serving peer hosts --k services drawn by popularity, for good");
  opt("--publishers", s.publishers, "Cooperators that publish (pin) each service");
  opt("--min-service-s", s.min_service_s, "ISE T_s: a service runs at least this long, s");
  opt("--need-idle-s", s.need_idle_s, "ISE: need lists and request demand fade after this, s");
  opt("--keep-factor", s.keep_factor,
      "ISE hysteresis: past T_s a hosted service gives way only to one scoring more than this "
      "times its score (1: the plain top k)");
  opt("--per-provider", s.per_provider,
      "ISE: score demand per provider (divided by 1 + the peers whose have list names the "
      "service)");
  opt("--init-s", s.init_s, "ISE: time to fetch, verify and load a model, s");
  opt("--ise-tick-s", s.ise_tick_s, "ISE: how often each peer plans, s");
  opt("--known", s.known_providers, "Providers a requester caches per service");
  opt("--candidates", s.candidates, "Of those, providers a request may try");
  opt("--provider-ttl-s", s.provider_ttl_s, "A cached provider list is looked up again after this");
  opt("--latency-ms", s.latency_ms, "One-way message latency");
  opt("--conn-idle-s", s.conn_idle_s, "A connection without requests for this long is closed, s");
  opt("--peer-gflops", s.peer_gflops, "A serving peer's speed (one request at a time)");
  opt("--m", s.swap.m, "p(r): debt ratio where service stops");
  opt("--n", s.swap.n, "p(r): how late the fall starts");
  opt("--grace-ops", s.swap.grace_ops, "Eq. 7.1's +1, in operations");
  opt("--ignore-s", s.swap.ignore_period_s, "T_g: ignore period after a refusal, s");
  opt("--challenge-rate", s.swap.challenge_rate, "Share of requests sent as challenges");
  opt("--probation", s.swap.probation_challenges,
      "Challenge every answer of a provider until it has passed this many challenges (0: none)");
  opt("--list-refresh-s", s.swap.list_refresh_s,
      "Need and have lists are sent again to each Online peer about this often, s (and on "
      "connect and on every change)");
  opt("--warmup", s.warmup_fraction, "Share of the run before the summary counts");
  opt("--tick-s", s.tick_s, "ComputeSwap tick period per peer, s");
  opt("--commit-s", s.commit_s, "Ledger group commit period per peer, s");
  opt("--seed", s.seed, "Random seed");
  opt("--partitions", s.partitions,
      "Peers split into this many event queues run side by side (0: 8 when --latency-ms >= 1, "
      "else 1); the history depends on it");
  opt("--threads", s.threads,
      "Threads running the partitions (0: 1 below 2000 peers, else the cores; at most "
      "--partitions); the history does "
      "not depend on it");
  opt("--out", a->out, "Output directory");
  c->add_option(
      "--sweep", a->sweep,
      "PARAM=v1,v2,...: run each value (one parameter at a time, the rest as given) "
      "--seeds times and write sweep.csv, sweep_medians.csv and sweep_PARAM.png (two values or "
      "more). PARAM: "
      "m, n, ignore-s, min-service-s, keep-factor, per-provider (0/1), need-idle-s, grace-ops, "
      "rate, peers, k, known, "
      "churn, "
      "challenge-rate, probation. Repeatable.");
  opt("--seeds", a->seeds, "With --sweep: seeds per value (seed, seed+1, ...)");
  c->callback([a] { run_or_exit(a->sweep.empty() ? run_sim(*a) : run_sweep(*a)); });
}

}  // namespace idn::cli
