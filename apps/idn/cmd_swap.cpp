// idn swap probability: ComputeSwap's service probability p(r) (dissertation §7.5.2, Fig. 7.1)
// as a table, CSV and plot. idn bench swap: what accounting costs per request (admission,
// charge, both receipts in SQLite WAL, checkpoints signed every N receipts).
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "cli.h"
#include "identity/keys.h"
#include "identity/peer_id.h"
#include "ml/plot.h"
#include "swap/strategy.h"
#include "swap/swap.h"

namespace idn::cli {
namespace {

namespace fs = std::filesystem;

std::string fmt_g(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", v);
  return b;
}

struct ProbabilityArgs {
  double m = 4.0;
  std::vector<double> n = {1, 2, 4, 8, 16};
  double step = 0.1;
  std::string csv, plot;
};

int run_probability(const ProbabilityArgs& a) {
  if (a.n.empty()) return report(Status::invalid_argument("--n needs at least one value"));
  for (double n : a.n) {
    Status st = swap::validate(swap::StrategyParams{.m = a.m, .n = n});
    if (!st.is_ok()) return report(st);
  }
  if (!(a.step > 0) || (a.m + 1) / a.step > 1e6) {
    return report(Status::invalid_argument("--step must be > 0 and give at most 10^6 rows"));
  }
  // r = 0, step, ..., m + 1 (computed from the index, so 0.1 steps do not drift).
  size_t steps = size_t(std::llround((a.m + 1) / a.step));
  std::vector<double> rs;
  for (size_t i = 0; i <= steps; ++i) rs.push_back(double(i) * a.step);

  std::printf("p(r) = 1 - I((r-1)/(m-1); n, 1/n), m = %g\n%8s", a.m, "r");
  for (double n : a.n) std::printf("  %8s", ("n=" + fmt_g(n)).c_str());
  std::printf("\n");
  for (double r : rs) {
    std::printf("%8.2f", r);
    for (double n : a.n) {
      std::printf("  %8.4f", swap::service_probability(r, {.m = a.m, .n = n}));
    }
    std::printf("\n");
  }
  if (!a.csv.empty()) {
    fs::path p(a.csv);
    std::error_code ec;
    if (p.has_parent_path()) fs::create_directories(p.parent_path(), ec);
    std::ofstream f(p);
    f << "r,n,p\n";
    for (double r : rs) {
      for (double n : a.n) {
        char line[96];
        std::snprintf(line, sizeof line, "%.4f,%g,%.6f\n", r, n,
                      swap::service_probability(r, {.m = a.m, .n = n}));
        f << line;
      }
    }
    if (!f) return report(Status::io_error("cannot write " + a.csv));
    std::printf("wrote %s\n", a.csv.c_str());
  }
  if (!a.plot.empty()) {
    PlotSpec spec;
    spec.title = "ComputeSwap service probability p(r), m = " + fmt_g(a.m) + " (Fig. 7.1)";
    spec.xlabel = "debt ratio r = debt / (credit + 1)";
    spec.ylabel = "probability of service p(r)";
    for (double n : a.n) {
      PlotSeries s;
      s.title = "n = " + fmt_g(n);
      for (double r : rs) {
        s.x.push_back(r);
        s.y.push_back(swap::service_probability(r, {.m = a.m, .n = n}));
      }
      spec.series.push_back(std::move(s));
    }
    fs::path p(a.plot);
    std::error_code ec;
    if (p.has_parent_path()) fs::create_directories(p.parent_path(), ec);
    Status st = plot_png(spec, p);
    if (!st.is_ok()) return report(st);
    std::printf("wrote %s\n", a.plot.c_str());
  }
  return 0;
}

struct BenchArgs {
  size_t requests = 20000;
  uint32_t checkpoint_every = 64;
  std::string out = "bench/out/swap.csv";
  std::string dir;  // where the two ledger files go (default: the temp directory)
};

double us_since(std::chrono::steady_clock::time_point t0, size_t n) {
  auto d = std::chrono::steady_clock::now() - t0;
  return std::chrono::duration<double, std::micro>(d).count() / double(n);
}

// CPU time of this thread, microseconds: what accounting costs whatever else the machine runs.
double thread_cpu_us() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) * 1e6 + double(ts.tv_nsec) / 1e3;
}

// Two nodes' ComputeSwaps in one process (a provider and a requester, each with its own
// SQLite file), driven through the exact calls a node makes per request.
int run_bench(const BenchArgs& a) {
  fs::path dir = (a.dir.empty() ? fs::temp_directory_path() : fs::path(a.dir)) /
                 ("idn_bench_swap_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  auto kp = identity::KeyPair::generate(), kr = identity::KeyPair::generate();
  if (!kp.ok() || !kr.ok()) return report(Status::internal("cannot generate keys"));
  swap::SystemClock clock;
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> u(0, 1);
  swap::Config cfg;
  cfg.checkpoint_every = a.checkpoint_every;
  auto provider =
      swap::ComputeSwap::open(cfg, *kp, dir / "p.sqlite", clock, [&] { return u(rng); });
  auto requester =
      swap::ComputeSwap::open(cfg, *kr, dir / "r.sqlite", clock, [&] { return u(rng); });
  if (!provider.ok()) return report(provider.status());
  if (!requester.ok()) return report(requester.status());
  auto& P = **provider;
  auto& R = **requester;
  const Bytes pid = P.self(), rid = R.self();
  const Bytes service{0x12, 0x20, 1, 2, 3};
  // The requester also serves the provider, so r stays low and every request is admitted.
  for (uint64_t i = 1; i <= 10; ++i) {
    auto rc = P.make_receipt(rid, i, service, 1'000'000'000);
    (void)P.on_receipt(rid, rc);
    (void)R.on_receipt(pid, rc);
  }
  (void)P.take_actions();
  (void)R.take_actions();

  struct Row {
    std::string what;
    double us;
  };
  std::vector<Row> rows;
  size_t n = a.requests;
  size_t checkpoints = 0;
  auto t0 = std::chrono::steady_clock::now();
  double cpu0 = thread_cpu_us();
  double admit_us = 0, charge_us = 0, rreceipt_us = 0, preceipt_us = 0, cp_us = 0;
  for (size_t i = 0; i < n; ++i) {
    uint64_t req = 1000 + i;
    double t = thread_cpu_us();
    auto admit = P.on_request(rid, service, req);
    admit_us += thread_cpu_us() - t;
    if (!admit.serve) return report(Status::internal("bench request refused: " + admit.reason));
    t = thread_cpu_us();
    Status st = P.on_answered(rid, req, service, 1000);
    charge_us += thread_cpu_us() - t;
    if (!st.is_ok()) return report(st);
    auto receipt = R.make_receipt(pid, req, service, 1000);
    t = thread_cpu_us();
    st = R.on_receipt(pid, receipt);
    rreceipt_us += thread_cpu_us() - t;
    if (!st.is_ok()) return report(st);
    t = thread_cpu_us();
    st = P.on_receipt(rid, receipt);
    preceipt_us += thread_cpu_us() - t;
    if (!st.is_ok()) return report(st);
    // Checkpoint round trip: the provider's proposal (signed in on_receipt) countersigned and
    // verified by the requester, stored by both.
    t = thread_cpu_us();
    for (auto& act : P.take_actions()) {
      if (auto* cp = std::get_if<swap::SendCheckpoint>(&act)) {
        st = R.on_checkpoint(pid, cp->checkpoint);
        if (!st.is_ok()) return report(st);
        for (auto& back : R.take_actions()) {
          if (auto* full = std::get_if<swap::SendCheckpoint>(&back)) {
            st = P.on_checkpoint(rid, full->checkpoint);
            if (!st.is_ok()) return report(st);
            ++checkpoints;
          }
        }
      }
    }
    cp_us += thread_cpu_us() - t;
  }
  double total_us = us_since(t0, n);
  double total_cpu_us = (thread_cpu_us() - cpu0) / double(n);
  rows.push_back({"provider: admission (on_request, p(r))", admit_us / n});
  rows.push_back({"provider: charge (on_answered, 1 txn)", charge_us / n});
  rows.push_back({"requester: receipt (on_receipt, 1 txn)", rreceipt_us / n});
  rows.push_back({"provider: receipt (on_receipt, 1 txn)", preceipt_us / n});
  rows.push_back({"checkpoints, amortised (2 signs, 2 verifies, 2 txns)", cp_us / n});
  rows.push_back({"total CPU per request, both sides", total_cpu_us});
  rows.push_back({"total wall time per request, both sides", total_us});
  auto integrity = P.ledgers().integrity_check();

  std::printf(
      "ComputeSwap accounting cost, %zu requests, checkpoint every %u receipts "
      "(%zu signed), SQLite WAL synchronous=NORMAL\n\n",
      n, a.checkpoint_every, checkpoints);
  std::printf("| %-50s | %10s |\n|%s|%s|\n", "step (CPU time unless noted)", "us/request",
              std::string(52, '-').c_str(), std::string(12, '-').c_str());
  for (const auto& r : rows) std::printf("| %-50s | %10.2f |\n", r.what.c_str(), r.us);
  std::printf("\nprovider ledger: %s; integrity_check: %s\n",
              P.ledgers().ledger(rid).to_string().c_str(),
              integrity.ok() ? integrity->c_str() : integrity.status().to_string().c_str());
  fs::path out(a.out);
  std::error_code ec;
  if (out.has_parent_path()) fs::create_directories(out.parent_path(), ec);
  std::ofstream f(out);
  f << "step,us_per_request\n";
  for (const auto& r : rows) f << '"' << r.what << "\"," << r.us << "\n";
  if (!f) return report(Status::io_error("cannot write " + a.out));
  std::printf("wrote %s\n", a.out.c_str());
  provider->reset();
  requester->reset();
  fs::remove_all(dir, ec);
  return 0;
}

}  // namespace

void register_swap(CLI::App& app) {
  auto* swap = app.add_subcommand("swap", "ComputeSwap (§7.5): strategy and ledgers");
  swap->require_subcommand(1);
  auto a = std::make_shared<ProbabilityArgs>();
  auto* p = swap->add_subcommand(
      "probability", "Print p(r), the probability a peer with debt ratio r is served (Fig. 7.1)");
  p->add_option("--m", a->m, "Debt ratio where p reaches 0 (> 1)")->capture_default_str();
  p->add_option("--n", a->n, "Shape parameters, comma-separated (> 0)")
      ->delimiter(',')
      ->capture_default_str();
  p->add_option("--step", a->step, "Step of r from 0 to m + 1")->capture_default_str();
  p->add_option("--csv", a->csv, "Write rows r,n,p to this file");
  p->add_option("--plot", a->plot, "Draw the curves to this PNG (gnuplot)");
  p->callback([a] { run_or_exit(run_probability(*a)); });
}

void register_bench_swap(CLI::App& bench) {
  auto a = std::make_shared<BenchArgs>();
  auto* b = bench.add_subcommand("swap",
                                 "Accounting cost per request: admission, charge, "
                                 "receipts in SQLite, checkpoints");
  b->add_option("--requests", a->requests, "Requests to account")->capture_default_str();
  b->add_option("--checkpoint-every", a->checkpoint_every, "Receipts per checkpoint")
      ->capture_default_str();
  b->add_option("--out", a->out, "CSV output")->capture_default_str();
  b->add_option("--dir", a->dir, "Directory for the ledger files (default: the temp dir)");
  b->callback([a] { run_or_exit(run_bench(*a)); });
}

}  // namespace idn::cli
