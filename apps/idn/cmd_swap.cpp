// idn swap probability: ComputeSwap's service probability p(r) (dissertation §7.5.2, Fig. 7.1)
// as a table, CSV and plot. idn swap ledger: a stopped node's ledgers, read from its data dir,
// with SQLite's integrity check. idn bench swap: what accounting costs per request (admission,
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

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "db/sqlite.h"
#include "identity/keys.h"
#include "identity/peer_id.h"
#include "ml/plot.h"
#include "swap/ledger_store.h"
#include "swap/strategy.h"
#include "swap/swap.h"

namespace idn::cli {
namespace {

namespace fs = std::filesystem;

std::string fmt_pair(const nlohmann::json& ops, const nlohmann::json& n) {
  return std::to_string(ops.get<uint64_t>()) + "/" + std::to_string(n.get<uint64_t>());
}

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

struct LedgerArgs {
  std::string data_dir = default_data_dir();
  bool json = false;
};

// Where a node keeps its ledgers under its data dir (node/node.cpp, Node::start_services).
fs::path ledger_file(const fs::path& data_dir) {
  return data_dir / "swap" / "ledgers.sqlite";
}

// A running node holds its ledger file locked (db::OpenOptions::exclusive): say so instead of
// SQLite's "database is locked".
Status explain_open_error(const fs::path& path, const Status& st) {
  if (st.message().find("locked") != std::string::npos) {
    return Status::unavailable(
        path.string() +
        " is locked: is `idn node` running on this data dir? Stop it first (a running node "
        "keeps its ledgers locked; `idn peers --http` shows them live)");
  }
  if (st.code() == Code::kCorruption) {
    return Status::corruption(path.string() + " is not a sound ledger database: " + st.message());
  }
  return st;
}

std::string peer_text(ByteView id) {
  auto p = identity::PeerId::from_bytes(id);
  return p.ok() ? p->to_string() : hex_encode(id);
}

// Offline: opens the file as the node would (exclusively, so never beside a running node),
// runs SQLite's integrity check, then loads the ledgers the node would load at its next start.
int run_ledger(const LedgerArgs& a) {
  const fs::path path = ledger_file(a.data_dir);
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    return report(Status::not_found(
        path.string() + " does not exist: no node with [swap] enabled has run on data dir " +
        a.data_dir));
  }
  db::OpenOptions opts{.busy_timeout_ms = 200, .exclusive = true};
  std::string integrity;
  Bytes self;
  {
    auto db = db::Database::open(path, opts);
    if (!db.ok()) return report(explain_open_error(path, db.status()));
    auto check = (*db)->integrity_check();
    if (!check.ok()) return report(explain_open_error(path, check.status()));
    integrity = *check;
    auto get = (*db)->prepare("SELECT value FROM meta WHERE key = 'self'");
    if (!get.ok()) return report(explain_open_error(path, get.status()));
    auto row = get->step();
    if (!row.ok()) return report(explain_open_error(path, row.status()));
    if (!*row) {
      return report(
          Status::corruption(path.string() + " records no node ID: not a swap ledger database"));
    }
    self = get->blob(0);
  }
  auto store = swap::LedgerStore::open(path, self, opts);
  if (!store.ok()) return report(explain_open_error(path, store.status()));
  auto& s = **store;

  nlohmann::json j;
  j["path"] = path.string();
  j["self"] = peer_text(self);
  j["integrity_check"] = integrity;
  nlohmann::json peers = nlohmann::json::array();
  for (const auto& peer : s.peers()) {
    const swap::Ledger& l = s.ledger(peer);
    const swap::ChargeTotals& t = s.charges(peer);
    auto cp = s.checkpoint(peer);
    peers.push_back({{"peer_id", peer_text(peer)},
                     {"debt", l.debt_of(peer)},
                     {"credit", l.credit_of(peer)},
                     {"sequence", l.sequence},
                     {"checkpoint_sequence", cp ? cp->ledger.sequence : 0},
                     {"pending_ops", t.pending_ops},
                     {"pending", t.pending},
                     {"unpaid_ops", t.unpaid_ops},
                     {"unpaid", t.unpaid}});
  }
  j["peers"] = peers;
  if (a.json) {
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("ledgers %s of node %s\nintegrity_check %s\n", path.string().c_str(),
                peer_text(self).c_str(), integrity.c_str());
    std::printf("%-54s %14s %14s %9s %10s %18s %18s\n", "PEER", "DEBT(ops)", "CREDIT(ops)",
                "SEQUENCE", "CHECKPOINT", "PENDING(ops/n)", "UNPAID(ops/n)");
    for (const auto& p : peers) {
      std::printf("%-54s %14llu %14llu %9llu %10llu %18s %18s\n",
                  p["peer_id"].get<std::string>().c_str(),
                  (unsigned long long)p["debt"].get<uint64_t>(),
                  (unsigned long long)p["credit"].get<uint64_t>(),
                  (unsigned long long)p["sequence"].get<uint64_t>(),
                  (unsigned long long)p["checkpoint_sequence"].get<uint64_t>(),
                  fmt_pair(p["pending_ops"], p["pending"]).c_str(),
                  fmt_pair(p["unpaid_ops"], p["unpaid"]).c_str());
    }
  }
  if (integrity != "ok") {
    return report(Status::corruption(path.string() + ": integrity_check: " + integrity));
  }
  return 0;
}

struct BenchArgs {
  size_t requests = 20000;
  uint32_t checkpoint_every = swap::Config{}.checkpoint_every;
  size_t commit_every = 32;  // requests per group commit; 0: one transaction per update
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
  // The node commits on a timer (commit_interval_ms); here every commit_every requests.
  cfg.commit_interval_ms = a.commit_every > 0 ? 5 : 0;
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
  double admit_us = 0, charge_us = 0, rreceipt_us = 0, preceipt_us = 0, cp_us = 0, commit_us = 0;
  // Reading the thread's CPU clock is a system call (~1 us): the per-step breakdown comes from
  // a timed pass, the totals from a second, untimed pass over as many requests.
  bool timed = true;
  auto cpu = [&] { return timed ? thread_cpu_us() : 0.0; };
  auto one_request = [&](uint64_t req) -> Status {
    double t = cpu();
    auto admit = P.on_request(rid, service, req);
    admit_us += cpu() - t;
    if (!admit.serve) return Status::internal("bench request refused: " + admit.reason);
    t = cpu();
    IDN_RETURN_IF_ERROR(P.on_answered(rid, req, service, 1000));
    charge_us += cpu() - t;
    auto receipt = R.make_receipt(pid, req, service, 1000);
    t = cpu();
    IDN_RETURN_IF_ERROR(R.on_receipt(pid, receipt));
    rreceipt_us += cpu() - t;
    t = cpu();
    IDN_RETURN_IF_ERROR(P.on_receipt(rid, receipt));
    preceipt_us += cpu() - t;
    // Checkpoint round trip: the provider's proposal (signed in on_receipt) countersigned and
    // verified by the requester, stored by both.
    t = cpu();
    for (auto& act : P.take_actions()) {
      if (auto* cp = std::get_if<swap::SendCheckpoint>(&act)) {
        IDN_RETURN_IF_ERROR(R.on_checkpoint(pid, cp->checkpoint));
        for (auto& back : R.take_actions()) {
          if (auto* full = std::get_if<swap::SendCheckpoint>(&back)) {
            IDN_RETURN_IF_ERROR(P.on_checkpoint(rid, full->checkpoint));
            ++checkpoints;
          }
        }
      }
    }
    cp_us += cpu() - t;
    return Status::ok();
  };
  auto commit_both = [&]() -> Status {
    double t = cpu();
    IDN_RETURN_IF_ERROR(P.ledgers().commit());
    IDN_RETURN_IF_ERROR(R.ledgers().commit());
    commit_us += cpu() - t;
    return Status::ok();
  };
  for (size_t i = 0; i < n; ++i) {
    if (Status st = one_request(1000 + i); !st.is_ok()) return report(st);
    if (a.commit_every > 0 && (i + 1) % a.commit_every == 0) {
      if (Status st = commit_both(); !st.is_ok()) return report(st);
    }
  }
  timed = false;
  auto t0 = std::chrono::steady_clock::now();
  double cpu0 = thread_cpu_us();
  for (size_t i = 0; i < n; ++i) {
    if (Status st = one_request(1000 + n + i); !st.is_ok()) return report(st);
    if (a.commit_every > 0 && (i + 1) % a.commit_every == 0) {
      if (Status st = commit_both(); !st.is_ok()) return report(st);
    }
  }
  double total_us = us_since(t0, n);
  double total_cpu_us = (thread_cpu_us() - cpu0) / double(n);
  rows.push_back({"provider: admission (on_request, p(r))", admit_us / n});
  const bool group = a.commit_every > 0;
  rows.push_back({group ? "provider: charge (on_answered, in memory)"
                        : "provider: charge (on_answered, 1 txn)",
                  charge_us / n});
  rows.push_back(
      {group ? "requester: receipt (on_receipt, 1 row)" : "requester: receipt (on_receipt, 1 txn)",
       rreceipt_us / n});
  rows.push_back({group ? "provider: receipt (on_receipt, 1 row; charge in memory)"
                        : "provider: receipt (on_receipt, 1 txn)",
                  preceipt_us / n});
  rows.push_back({"checkpoints, amortised (2 signs, 2 verifies, 2 rows)", cp_us / n});
  if (group) rows.push_back({"group commits, amortised (both sides)", commit_us / n});
  rows.push_back({"total CPU per request, both sides (untimed pass)", total_cpu_us});
  rows.push_back({"total wall time per request, both sides (untimed pass)", total_us});
  auto integrity = P.ledgers().integrity_check();

  std::printf(
      "ComputeSwap accounting cost, %zu requests, checkpoint every %u receipts "
      "(%zu signed), %s, SQLite WAL synchronous=NORMAL\n\n",
      n, a.checkpoint_every, checkpoints,
      group ? fmt::format("one commit per {} requests", a.commit_every).c_str()
            : "one transaction per update");
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

  auto la = std::make_shared<LedgerArgs>();
  auto* l = swap->add_subcommand(
      "ledger",
      "Print a stopped node's ComputeSwap ledgers from its data dir (each peer's debt, credit, "
      "sequence, last checkpoint, pending and unpaid charges) and SQLite's integrity_check");
  l->footer(
      "debt: operations this node performed for the peer, receipted (what the peer owes); "
      "credit: operations the peer performed for this node. Charges still awaiting a receipt "
      "(pending) or past the receipt timeout (unpaid) are listed apart: they are not in the "
      "shared ledger. Exits 1 when integrity_check is not ok, the file is missing or locked "
      "by a running node.");
  l->add_option("--data-dir", la->data_dir, "The node's data directory")->capture_default_str();
  l->add_flag("--json", la->json, "Print JSON (path, self, integrity_check, peers[])");
  l->callback([la] { run_or_exit(run_ledger(*la)); });
}

void register_bench_swap(CLI::App& bench) {
  auto a = std::make_shared<BenchArgs>();
  auto* b = bench.add_subcommand("swap",
                                 "Accounting cost per request: admission, charge, "
                                 "receipts in SQLite, checkpoints");
  b->add_option("--requests", a->requests, "Requests to account")->capture_default_str();
  b->add_option("--commit-every", a->commit_every,
                "Requests per group commit of both ledgers (0: one transaction per update, "
                "as [swap] commit_interval_ms = 0)")
      ->capture_default_str();
  b->add_option("--checkpoint-every", a->checkpoint_every, "Receipts per checkpoint")
      ->capture_default_str();
  b->add_option("--out", a->out, "CSV output")->capture_default_str();
  b->add_option("--dir", a->dir, "Directory for the ledger files (default: the temp dir)");
  b->callback([a] { run_or_exit(run_bench(*a)); });
}

}  // namespace idn::cli
