// idn daimon problem create | prove | verify: DaiMoN's problems and proof-of-improvement
// (dissertation §6.1-6.2, §6.5) on real model packages. The torch-free parent command and
// `attack bruteforce` are in ../cmd_daimon.cpp.
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include <fmt/format.h>

#include "../cli.h"
#include "daimon/labels.h"
#include "data/dataset.h"
#include "identity/peer_id.h"
#include "model/file_io.h"
#include "motifs/del.h"
#include "motifs/del_attack.h"
#include "plot.h"
#include "poi/poi.h"

namespace idn::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct CreateArgs {
  std::string data = "fashion-mnist";
  std::string data_dir;  // default: Debian's
  std::string out;
  int64_t m = 10000;
  motifs::DelOptions del;
  std::string encoding = "one-hot";
  double d_c = 1.0, delta = 0.01;
  int eval_samples = 2000;
  std::string report = "bench/out/daimon";
};

Status write_text(const fs::path& p, const std::string& s) {
  std::error_code ec;
  if (p.has_parent_path()) fs::create_directories(p.parent_path(), ec);
  std::ofstream f(p);
  f << s;
  return f ? Status::ok() : Status::io_error("cannot write " + p.string());
}

// Fig. 6.2 and 6.3: e against d for fresh GENERATEDATA samples, and the mean |e - d| per band
// of d. Returns the mean |e - d| of the samples with e < 0.2 (near x_t).
Result<double> evaluate_del(motifs::Del& del, const std::vector<daimon::Label>& xt, int samples,
                            uint64_t seed, const fs::path& report) {
  std::mt19937_64 rng(seed);
  IDN_ASSIGN_OR_RETURN(auto yt, del.embed(xt));
  std::vector<double> es, ds;
  std::vector<std::vector<daimon::Label>> batch;
  std::vector<double> batch_e;
  auto flush = [&]() -> Status {
    IDN_ASSIGN_OR_RETURN(auto ys, del.embed(batch));
    for (size_t i = 0; i < ys.size(); ++i) {
      IDN_ASSIGN_OR_RETURN(double d, daimon::distance(ys[i], yt));
      es.push_back(batch_e[i]);
      ds.push_back(d);
    }
    batch.clear();
    batch_e.clear();
    return Status::ok();
  };
  for (int i = 0; i < samples; ++i) {
    IDN_ASSIGN_OR_RETURN(auto x, daimon::generate_data(xt, del.classes(), rng));
    batch_e.push_back(*daimon::error(x, xt));
    batch.push_back(std::move(x));
    if (batch.size() == 64) IDN_RETURN_IF_ERROR(flush());
  }
  if (!batch.empty()) IDN_RETURN_IF_ERROR(flush());
  std::string csv = "error,distance,abs_diff\n";
  for (size_t i = 0; i < es.size(); ++i)
    csv += fmt::format("{:.6f},{:.6f},{:.6f}\n", es[i], ds[i], std::abs(es[i] - ds[i]));
  IDN_RETURN_IF_ERROR(write_text(report / "del-samples.csv", csv));
  // Bands of d, 0.05 wide: mean and standard deviation of |e - d| (Fig. 6.3).
  constexpr int kBands = 20;
  std::vector<double> sum(kBands), sum2(kBands), cnt(kBands);
  double near_sum = 0, near_n = 0;
  for (size_t i = 0; i < es.size(); ++i) {
    double g = std::abs(es[i] - ds[i]);
    int b = std::min(kBands - 1, int(ds[i] / 0.05));
    sum[b] += g, sum2[b] += g * g, cnt[b] += 1;
    if (es[i] < 0.2) near_sum += g, near_n += 1;
  }
  std::string bands = "distance_from,distance_to,samples,mean_abs_diff,sd_abs_diff\n";
  PlotSeries mean{"mean |e - d|", {}, {}, true};
  for (int b = 0; b < kBands; ++b) {
    if (cnt[b] == 0) continue;
    double mu = sum[b] / cnt[b], sd = std::sqrt(std::max(0.0, sum2[b] / cnt[b] - mu * mu));
    bands +=
        fmt::format("{:.2f},{:.2f},{},{:.6f},{:.6f}\n", b * 0.05, (b + 1) * 0.05, cnt[b], mu, sd);
    mean.x.push_back((b + 0.5) * 0.05);
    mean.y.push_back(mu * 100);
  }
  IDN_RETURN_IF_ERROR(write_text(report / "del-bands.csv", bands));
  PlotSpec scatter{"DEL: error against embedding distance (Fig. 6.2)",
                   "error e(x, x_t)",
                   "distance d(f(x), f(x_t))",
                   {{"GENERATEDATA samples", es, ds, false}}};
  IDN_RETURN_IF_ERROR(plot_png(scatter, report / "del-error-vs-distance.png"));
  PlotSpec gap{"DEL: |e - d| by distance (Fig. 6.3)",
               "distance d(f(x), f(x_t))",
               "mean |e - d| (%)",
               {mean}};
  IDN_RETURN_IF_ERROR(plot_png(gap, report / "del-gap.png"));
  if (near_n == 0)
    return Status::invalid_argument("no evaluation sample had e < 0.2: raise --eval-samples");
  return near_sum / near_n;
}

int run_create(CreateArgs a) {
  if (a.data != "fashion-mnist") {
    return report(Status::invalid_argument("--data: only fashion-mnist is supported"));
  }
  auto enc = motifs::parse_del_encoding(a.encoding);
  if (!enc.ok()) return report(enc.status());
  a.del.encoding = *enc;
  fs::path dir = a.data_dir.empty() ? data::default_fashion_mnist_dir() : fs::path(a.data_dir);
  auto test = data::load_fashion_mnist(dir, data::Split::kTest);
  if (!test.ok()) return report(test.status());
  if (a.m < 1 || a.m > test->n) {
    return report(Status::invalid_argument(fmt::format("--m must be within 1..{}", test->n)));
  }
  data::Dataset z = data::take_first(*test, a.m);
  std::vector<daimon::Label> xt;
  for (int64_t l : z.labels) xt.push_back(static_cast<daimon::Label>(l));
  torch::set_num_threads(2);
  std::printf(
      "training a DEL function for %lld FashionMNIST test labels: %s input, %lld -> %lld "
      "-> %lld, %d epochs of %lld GENERATEDATA samples\n",
      (long long)a.m, a.encoding.c_str(), (long long)a.m, (long long)a.del.hidden,
      (long long)a.del.n, a.del.epochs, (long long)a.del.samples_per_epoch);
  std::string epochs_csv = "epoch,train_loss,test_loss,seconds\n";
  PlotSeries train{"training", {}, {}, true}, held{"test", {}, {}, true};
  auto t0 = Clock::now();
  auto del = motifs::train_del(xt, a.del, [&](const motifs::DelEpoch& e) {
    std::printf("epoch %3d  train |e-d| %.4f  test |e-d| %.4f  (%.1f s)\n", e.epoch, e.train_loss,
                e.test_loss, e.seconds);
    std::fflush(stdout);
    epochs_csv +=
        fmt::format("{},{:.6f},{:.6f},{:.2f}\n", e.epoch, e.train_loss, e.test_loss, e.seconds);
    train.x.push_back(e.epoch), train.y.push_back(e.train_loss);
    held.x.push_back(e.epoch), held.y.push_back(e.test_loss);
  });
  if (!del.ok()) return report(del.status());
  double train_s = std::chrono::duration<double>(Clock::now() - t0).count();
  core::Tensor inputs = core::Tensor::f32({z.n, z.c, z.h, z.w}, z.images);
  if (Status st = poi::write_problem(a.out, *del, inputs, xt, a.d_c, a.delta); !st.is_ok())
    return report(st);
  auto cid = poi::problem_cid(a.out);
  if (!cid.ok()) return report(cid.status());
  std::printf(
      "wrote problem %s (DEL trained in %.1f s)\nproblem cid: %s (idn add %s; peers "
      "fetch it with idn fetch CID --out DIR)\n",
      a.out.c_str(), train_s, cid->c_str(), a.out.c_str());
  fs::path rep(a.report);
  if (Status st = write_text(rep / "del-training.csv", epochs_csv); !st.is_ok()) return report(st);
  PlotSpec loss{"DEL training (Fig. 6.1)", "epoch", "mean |e - d|", {train, held}};
  if (Status st = plot_png(loss, rep / "del-training.png"); !st.is_ok()) return report(st);
  auto near = evaluate_del(*del, xt, a.eval_samples, a.del.seed + 17, rep);
  if (!near.ok()) return report(near.status());
  std::printf(
      "mean |e - d| for label vectors with e < 0.2: %.2f %% (%d GENERATEDATA samples); "
      "report in %s\n",
      *near * 100, a.eval_samples, a.report.c_str());
  return 0;
}

Status write_json(const fs::path& p, const nlohmann::json& j) {
  std::string s = j.dump(2) + "\n";
  return model::write_file_atomic(p,
                                  ByteView(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
}

struct ProveArgs {
  std::string model, problem, key, passphrase_file, out;
};

int run_prove(const ProveArgs& a) {
  auto key = load_key_file(a.key, a.passphrase_file);
  if (!key.ok()) return report(key.status());
  auto problem = poi::load_problem(a.problem);
  if (!problem.ok()) return report(problem.status());
  auto t0 = Clock::now();
  auto proof = poi::prove(*problem, a.model, *key);
  if (!proof.ok()) return report(proof.status());
  if (Status st = write_json(a.out, daimon::to_json(*proof)); !st.is_ok()) return report(st);
  auto d = daimon::distance(proof->y, problem->yt);
  std::printf("proved %s: d(f(M(Z)), y_t) = %.4f (d_c %.4f, delta %.4f) in %.1f s; wrote %s\n",
              proof->model.c_str(), d.ok() ? *d : 1.0, problem->d_c, problem->delta,
              std::chrono::duration<double>(Clock::now() - t0).count(), a.out.c_str());
  return 0;
}

struct VerifyArgs {
  std::string proof, model, problem, key, passphrase_file, out;
  std::optional<double> d_c, delta;
};

int run_verify(const VerifyArgs& a) {
  auto raw = model::read_file(a.proof, 64 << 20);
  if (!raw.ok()) return report(raw.status());
  auto j = nlohmann::json::parse(raw->begin(), raw->end(), nullptr, false);
  if (j.is_discarded()) return report(Status::invalid_argument(a.proof + ": not JSON"));
  auto proof = daimon::proof_from_json(j);
  if (!proof.ok()) return report(proof.status().with_context(a.proof));
  auto problem = poi::load_problem(a.problem);
  if (!problem.ok()) return report(problem.status());
  auto t0 = Clock::now();
  auto v = poi::verify(*problem, a.model, *proof, a.d_c.value_or(problem->d_c),
                       a.delta.value_or(problem->delta));
  if (!v.ok()) return report(v.status());
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!a.key.empty()) {
    auto key = load_key_file(a.key, a.passphrase_file);
    if (!key.ok()) return report(key.status());
    daimon::sign(v->verification, *key);
    if (!a.out.empty()) {
      if (Status st = write_json(a.out, daimon::to_json(v->verification)); !st.is_ok())
        return report(st);
    }
  }
  if (!v->failure.empty()) {
    std::fprintf(stderr, "idn: proof rejected: %s\n", v->failure.c_str());
    return 1;
  }
  std::printf("proof holds: %s improves to d = %.4f < d_c - delta = %.4f (verified in %.1f s)%s\n",
              proof->model.c_str(), v->verification.distance,
              v->verification.d_c - v->verification.delta, secs,
              a.out.empty() ? "" : ("; wrote " + a.out).c_str());
  return 0;
}

struct InverseArgs {
  std::string data_dir;
  int64_t m = 1000;
  motifs::DelOptions del;
  motifs::InverseAttackOptions attack;
  std::string data = "both";  // random | near | both
  std::string out = "bench/out/daimon-inverse.csv";
};

// §6.4: a DEL for the first m test labels, then f^-1 trained from random label vectors and
// from vectors near x_t; e(f^-1(y_t), x_t) per epoch for each (Fig. 6.5).
int run_inverse(InverseArgs a) {
  std::vector<motifs::InverseData> runs;
  if (a.data == "random" || a.data == "both") runs.push_back(motifs::InverseData::kRandom);
  if (a.data == "near" || a.data == "both") runs.push_back(motifs::InverseData::kNearby);
  if (runs.empty()) {
    return report(Status::invalid_argument("--data must be random, near or both"));
  }
  fs::path dir = a.data_dir.empty() ? data::default_fashion_mnist_dir() : fs::path(a.data_dir);
  auto test = data::load_fashion_mnist(dir, data::Split::kTest);
  if (!test.ok()) return report(test.status());
  if (a.m < 1 || a.m > test->n) {
    return report(Status::invalid_argument(fmt::format("--m must be within 1..{}", test->n)));
  }
  std::vector<daimon::Label> xt;
  for (int64_t i = 0; i < a.m; ++i)
    xt.push_back(static_cast<daimon::Label>(test->labels[size_t(i)]));
  torch::set_num_threads(2);
  std::printf("DEL for the first %lld test labels (%d epochs)...\n", (long long)a.m, a.del.epochs);
  std::fflush(stdout);
  auto del = motifs::train_del(xt, a.del);
  if (!del.ok()) return report(del.status());
  std::string csv = "epoch,data,error\n";
  PlotSpec plot{"Inverse-mapping attack (Fig. 6.5)", "epoch", "error e(f^-1(y_t), x_t) (%)", {}};
  for (auto data : runs) {
    const char* name = data == motifs::InverseData::kRandom ? "random" : "near x_t";
    motifs::InverseAttackOptions o = a.attack;
    o.data = data;
    PlotSeries s{std::string("data: ") + name, {}, {}, true};
    auto errors = motifs::inverse_attack(*del, xt, o, [&](int epoch, double e) {
      std::printf("%-9s epoch %3d  error %.2f %%\n", name, epoch, e * 100);
      std::fflush(stdout);
    });
    if (!errors.ok()) return report(errors.status());
    for (size_t i = 0; i < errors->size(); ++i) {
      csv += fmt::format("{},{},{:.6f}\n", i + 1, name, (*errors)[i]);
      s.x.push_back(double(i + 1));
      s.y.push_back((*errors)[i] * 100);
    }
    plot.series.push_back(std::move(s));
  }
  if (Status st = write_text(a.out, csv); !st.is_ok()) return report(st);
  fs::path png = fs::path(a.out).replace_extension(".png");
  if (Status st = plot_png(plot, png); !st.is_ok()) return report(st);
  std::printf("wrote %s and %s\n", a.out.c_str(), png.c_str());
  return 0;
}

}  // namespace

void register_daimon_ml(CLI::App& daimon) {
  auto ia = std::make_shared<InverseArgs>();
  ia->del.epochs = 10;
  ia->del.samples_per_epoch = 2048;
  auto* attack = daimon.get_subcommand("attack");
  auto* inverse = attack->add_subcommand(
      "inverse",
      "Train f^-1 from y back to labels, from random label vectors and from ones near x_t, and "
      "report how much of x_t it recovers per epoch (§6.4, Fig. 6.5)");
  inverse->add_option("--data-dir", ia->data_dir, "FashionMNIST IDX files (default: Debian's)");
  inverse->add_option("--m", ia->m, "Test labels (the first m)")->capture_default_str();
  inverse->add_option("--n", ia->del.n, "DEL embedding dimension")->capture_default_str();
  inverse->add_option("--del-epochs", ia->del.epochs, "DEL training epochs")->capture_default_str();
  inverse->add_option("--epochs", ia->attack.epochs, "Attack epochs")->capture_default_str();
  inverse
      ->add_option("--samples-per-epoch", ia->attack.samples_per_epoch, "Attack samples per epoch")
      ->capture_default_str();
  inverse->add_option("--hidden", ia->attack.hidden, "Attack MLP hidden units")
      ->capture_default_str();
  inverse->add_option("--seed", ia->attack.seed, "Seed")->capture_default_str();
  inverse
      ->add_option("--data", ia->data, "The attacker's training data: random, near (x_t) or both")
      ->capture_default_str();
  inverse->add_option("--out", ia->out, "CSV (epoch,data,error); the plot goes beside it")
      ->capture_default_str();
  inverse->callback([ia] { run_or_exit(run_inverse(*ia)); });

  auto* problem = daimon.add_subcommand("problem", "DaiMoN problems: hidden test labels");
  problem->require_subcommand(1);
  auto c = std::make_shared<CreateArgs>();
  auto* create = problem->add_subcommand(
      "create",
      "Train a DEL function for a test set's labels and write a problem directory: the test "
      "inputs Z, the DEL package, y_t = f(x_t), d_c and delta; never the labels");
  create->footer(
      "Also writes the DEL's evaluation to --report: del-training.csv/png (Fig. 6.1), "
      "del-samples.csv and del-error-vs-distance.png (Fig. 6.2), del-bands.csv and del-gap.png "
      "(Fig. 6.3), and prints the mean |e - d| near x_t (e < 0.2).");
  create->add_option("--data", c->data, "Dataset (fashion-mnist)")->capture_default_str();
  create->add_option("--data-dir", c->data_dir, "Directory of its IDX files (default: Debian's)");
  create->add_option("--out", c->out, "Problem directory to create")->required();
  create->add_option("--m", c->m, "Test samples (the first m)")->capture_default_str();
  create->add_option("--n", c->del.n, "Embedding dimension")->capture_default_str();
  create->add_option("--hidden", c->del.hidden, "Hidden units")->capture_default_str();
  create->add_option("--encoding", c->encoding, "DEL input: one-hot or value")
      ->capture_default_str();
  create->add_option("--epochs", c->del.epochs, "Training epochs")->capture_default_str();
  create
      ->add_option("--samples-per-epoch", c->del.samples_per_epoch,
                   "GENERATEDATA samples per epoch")
      ->capture_default_str();
  create->add_option("--batch", c->del.batch, "Minibatch")->capture_default_str();
  create->add_option("--lr", c->del.lr, "Adam learning rate")->capture_default_str();
  create->add_option("--seed", c->del.seed, "Seed of the DEL's training")->capture_default_str();
  create->add_option("--d-c", c->d_c, "Best distance so far (a model must beat d_c - delta)")
      ->capture_default_str();
  create->add_option("--delta", c->delta, "Required margin of improvement")->capture_default_str();
  create->add_option("--eval-samples", c->eval_samples, "GENERATEDATA samples for the report")
      ->capture_default_str();
  create->add_option("--report", c->report, "Directory for CSV and plots")->capture_default_str();
  create->callback([c] { run_or_exit(run_create(*c)); });

  auto p = std::make_shared<ProveArgs>();
  auto* prove = daimon.add_subcommand(
      "prove", "PROVE(M): sign {digest(M), f(M(Z)), pk} for a model package and a problem");
  prove->add_option("model", p->model, "Model package directory")->required();
  prove->add_option("--problem", p->problem, "Problem directory")->required();
  prove->add_option("--key", p->key, "The prover's key file (idn id new)")->required();
  prove->add_option("--passphrase-file", p->passphrase_file,
                    "File whose first line unlocks the key (else $IDN_PASSPHRASE)");
  prove->add_option("--out", p->out, "Proof JSON to write")->required();
  prove->callback([p] { run_or_exit(run_prove(*p)); });

  auto v = std::make_shared<VerifyArgs>();
  auto* verify = daimon.add_subcommand(
      "verify",
      "VERIFY(M, proof, d_c, delta): exit 0 only when the proof holds; else one line saying "
      "which check failed");
  verify->footer(
      "Checks, in order: the prover's signature, the problem, digest(M) (the package's root "
      "CID), the outputs f(M(Z)) recomputed here, and d(y, y_t) < d_c - delta. With --key the "
      "verdict is signed, and with --out written as JSON (also when the proof fails).");
  verify->add_option("proof", v->proof, "Proof JSON")->required();
  verify->add_option("model", v->model, "Model package directory")->required();
  verify->add_option("--problem", v->problem, "Problem directory")->required();
  verify->add_option("--d-c", v->d_c, "Best distance so far (default: the problem's)");
  verify->add_option("--delta", v->delta, "Required margin (default: the problem's)");
  verify->add_option("--key", v->key, "The verifier's key file: sign the verdict");
  verify->add_option("--passphrase-file", v->passphrase_file,
                     "File whose first line unlocks the key (else $IDN_PASSPHRASE)");
  verify->add_option("--out", v->out, "Signed verification JSON to write (needs --key)")
      ->needs("--key");
  verify->callback([v] { run_or_exit(run_verify(*v)); });
}

}  // namespace idn::cli
