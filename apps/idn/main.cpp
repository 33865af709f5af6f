// idn: the Intelligence Distribution Network's command line.
#include <cstdio>

#include "cli.h"

namespace idn::cli {

int report(const Status& status) {
  std::fprintf(stderr, "idn: error: %s\n", status.to_string().c_str());
  return status.code() == Code::kInvalidArgument ? 2 : 1;
}

void run_or_exit(int rc) {
  if (rc != 0) throw CLI::RuntimeError(rc);
}

}  // namespace idn::cli

int main(int argc, char** argv) {
  CLI::App app{
      "idn - the Intelligence Distribution Network: train early-exit models, serve them to "
      "peers, run inference across the network.",
      "idn"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every subcommand");
  // `idn bench NAME`: each benchmark adds its subcommand to this parent.
  auto* bench = app.add_subcommand("bench", "Benchmarks: each prints a table and writes CSV");
  bench->require_subcommand(1);
  idn::cli::register_id(app);
  idn::cli::register_content(app);
  idn::cli::register_routing(app);
  idn::cli::register_node(app);
  idn::cli::register_bench_transport(*bench);
  idn::cli::register_bench_content(*bench);
  idn::cli::register_swap(app);
  idn::cli::register_bench_swap(*bench);
  idn::cli::register_load(app);
  idn::cli::register_init(app);
  idn::cli::register_infer(app);
  idn::cli::register_sim(app);
  idn::cli::register_export(app);
  [[maybe_unused]] CLI::App* daimon = idn::cli::register_daimon(app);
#if defined(IDN_WITH_TORCH)
  idn::cli::register_train(app);
  idn::cli::register_eval(app);
  idn::cli::register_bench(*bench);
  idn::cli::register_demo(app);
  idn::cli::register_bench_inference(*bench);
  idn::cli::register_parallelnet(app, *bench);
  idn::cli::register_ddnn(app);
  idn::cli::register_ddnn_publish(app);
  idn::cli::register_bench_ddnn(*bench);
  idn::cli::register_bench_engine(*bench);
  idn::cli::register_daimon_ml(*daimon);
#else
  app.footer(
      "This idn was built without LibTorch: it serves and infers on the cpu engine (--backend "
      "torch is an error, a DDNN cloud section cannot be hosted); train, eval, demo, ddnn, "
      "parallelnet, daimon problem, bench branchynet/inference/parallelnet/ddnn/engine are left "
      "out.");
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return 0;
}
