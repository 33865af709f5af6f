// idn daimon: DaiMoN (dissertation ch. 6). This file: the parent command, `idn daimon attack`
// and its torch-free `bruteforce` (§6.3, Fig. 6.4). The commands that run models (problem
// create, prove, verify, attack inverse) are in ml/cmd_daimon.cpp.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli.h"
#include "daimon/bruteforce.h"
#include "ml/plot.h"

namespace idn::cli {
namespace {

namespace fs = std::filesystem;

struct BruteForceArgs {
  std::vector<int> n = {32, 64, 128, 256};
  std::vector<double> eps;  // empty: 0.01, 0.02, ..., 0.50 (the figure's range)
  std::string out = "bench/out/daimon-bruteforce.csv";
  std::string plot;  // default: the CSV's path with .png
};

// The dissertation's two quoted points (§6.3), for the comparison line.
struct Quoted {
  int n;
  double eps, p;
};
constexpr Quoted kQuoted[] = {{32, 0.10, 6.12e-13}, {256, 0.10, 3.33e-93}};

// 10^x as "6.09e-94", for values beyond a double's range too.
std::string sci(double log10_value) {
  double e = std::floor(log10_value);
  double m = std::pow(10.0, log10_value - e);
  if (m >= 9.995) m /= 10, e += 1;  // rounding to 3 digits would print 10.0
  return fmt::format("{:.2f}e{:+.0f}", m, e);
}

// The eps at which p(eps, n) = p: p rises with eps, so bisection.
double eps_for(int n, double p) {
  double lo = 1e-9, hi = 1;
  for (int i = 0; i < 200; ++i) {
    double mid = (lo + hi) / 2;
    (daimon::bruteforce(mid, n)->log10_p < std::log10(p) ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

int run_bruteforce(const BruteForceArgs& a) {
  if (a.n.empty()) return report(Status::invalid_argument("--n needs at least one value"));
  std::vector<double> eps = a.eps;
  if (eps.empty()) {
    for (int i = 1; i <= 50; ++i) eps.push_back(i / 100.0);
  }
  std::vector<daimon::BruteForce> rows;
  for (int n : a.n) {
    for (double e : eps) {
      auto b = daimon::bruteforce(e, n);
      if (!b.ok()) return report(b.status().with_context("--n/--eps"));
      rows.push_back(*b);
    }
  }
  std::printf(
      "brute force on a DEL function (§6.3): p = I(sin^2 beta; (n-1)/2, 1/2), "
      "beta = acos(1 - eps)\n%6s %8s %10s %14s %14s\n",
      "n", "eps", "beta_deg", "p", "trials_1/p");
  const bool all = eps.size() <= 12;  // a short list prints whole; the sweep every 5th row
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    if (!all && (i % eps.size()) % 5 != 4) continue;
    std::printf("%6d %8.3f %10.3f %14s %14s\n", r.n, r.eps, r.beta * 180 / M_PI,
                sci(r.log10_p).c_str(), sci(r.log10_trials).c_str());
  }
  for (const Quoted& q : kQuoted) {
    auto b = daimon::bruteforce(q.eps, q.n);
    std::printf(
        "dissertation: n = %d, eps = %.2f: p = %.3g; here %s (%.2fx), which this formula gives "
        "at eps = %.4f\n",
        q.n, q.eps, q.p, sci(b->log10_p).c_str(), std::pow(10.0, b->log10_p) / q.p,
        eps_for(q.n, q.p));
  }
  fs::path out(a.out);
  std::error_code ec;
  if (out.has_parent_path()) fs::create_directories(out.parent_path(), ec);
  std::ofstream f(out);
  f << "n,eps,beta_rad,p,log10_p,log10_trials\n";
  for (const auto& r : rows) {
    f << fmt::format("{},{},{:.12g},{:.6Lg},{:.6f},{:.6f}\n", r.n, r.eps, r.beta, r.p, r.log10_p,
                     r.log10_trials);
  }
  if (!f) return report(Status::io_error("cannot write " + a.out));
  std::printf("wrote %s\n", a.out.c_str());
  PlotSpec spec;
  spec.title = "Brute-force success probability per guess (Fig. 6.4)";
  spec.xlabel = "distance eps from y_t";
  spec.ylabel = "log10 p";
  for (int n : a.n) {
    PlotSeries s;
    s.title = "n = " + std::to_string(n);
    for (const auto& r : rows) {
      if (r.n != n) continue;
      s.x.push_back(r.eps);
      s.y.push_back(r.log10_p);
    }
    spec.series.push_back(std::move(s));
  }
  fs::path png = a.plot.empty() ? fs::path(out).replace_extension(".png") : fs::path(a.plot);
  if (Status st = plot_png(spec, png); !st.is_ok()) return report(st);
  std::printf("wrote %s\n", png.c_str());
  return 0;
}

}  // namespace

CLI::App* register_daimon(CLI::App& app) {
  auto* d = app.add_subcommand(
      "daimon",
      "DaiMoN (ch. 6): check that a model improved on a hidden test set without its labels");
  d->require_subcommand(1);
  auto* attack = d->add_subcommand("attack", "Attacks on a DEL function (§6.3, §6.4)");
  attack->require_subcommand(1);
  auto a = std::make_shared<BruteForceArgs>();
  auto* b = attack->add_subcommand(
      "bruteforce",
      "The chance p that one random label vector's embedding lands within eps of y_t, and the "
      "guesses (1/p) an attacker needs (§6.3, Fig. 6.4)");
  b->footer(
      "Assumes f's outputs are uniform on the unit (n-1)-sphere, as §6.3 does. d(f(x), y_t) < "
      "eps means the angle to y_t is below beta = acos(1 - eps); p is the share of a hemisphere "
      "inside that cap. Prints log10 values where p underflows. Writes CSV "
      "(n,eps,beta_rad,p,log10_p,log10_trials) and a PNG plot.");
  b->add_option("--n", a->n, "Embedding dimensions, comma-separated")
      ->delimiter(',')
      ->capture_default_str();
  b->add_option("--eps", a->eps,
                "Distances in (0, 1], comma-separated (default: 0.01 to 0.50 by 0.01)")
      ->delimiter(',');
  b->add_option("--out", a->out, "CSV output")->capture_default_str();
  b->add_option("--plot", a->plot, "PNG plot (default: the CSV path with .png)");
  b->callback([a] { run_or_exit(run_bruteforce(*a)); });
  return d;
}

}  // namespace idn::cli
