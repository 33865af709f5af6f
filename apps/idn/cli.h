// Shared plumbing of the `idn` subcommands: registration hooks and one way to report an
// error (one line on stderr, non-zero exit).
#pragma once

#include <CLI/CLI.hpp>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "identity/keys.h"
#include "node/config.h"

namespace idn::node {
class Node;
}

namespace idn::cli {

// Prints "idn: error: <status>" on stderr and returns the process exit code for it.
int report(const Status& status);
// The p-quantile (0..1) of v, linearly interpolated between ranks (0 for an empty v); the
// benchmarks' medians and tail latencies.
double percentile(std::vector<double> v, double p);
// Where trained models are cached: $IDN_CACHE/models, else `models/` beside the idn binary.
std::filesystem::path default_models_dir();
// IDN's data directory: $IDN_HOME, else ~/.idn.
std::string default_data_dir();
// A client node that joins through `bootstrap` (multiaddrs ending in /p2p/<id>): it listens
// on 127.0.0.1 when every bootstrap peer is on loopback (else on 0.0.0.0), on an ephemeral
// port, without HTTP, logging warnings only. Errors: InvalidArgument naming --bootstrap.
Result<node::Config> client_config(const std::vector<std::string>& bootstrap);
// Runs `body` with such a client node running on its own io thread, then shuts the node down;
// returns body's exit code (or reports why the node could not start).
int with_client_node(const std::vector<std::string>& bootstrap,
                     const std::function<int(node::Node&)>& body);
// A key file (idn id new), unlocked by the first line of `passphrase_file` or $IDN_PASSPHRASE
// when it is encrypted (cmd_id.cpp).
Result<identity::KeyPair> load_key_file(const std::string& file,
                                        const std::string& passphrase_file);
// Wraps a command body: runs it, maps a non-zero return to CLI11's exit path.
void run_or_exit(int rc);

// idn bench routing: findProviders latency in a loopback DHT (also part of bench content).
struct RoutingBenchArgs {
  size_t nodes = 20;
  size_t services = 10;
  size_t queries = 200;
  size_t providers_per_service = 2;
  uint64_t seed = 1;
  std::string out = "bench/out/routing.csv";
};
int run_routing_bench(const RoutingBenchArgs& a);

// One hook per command file.
void register_train(CLI::App& app);    // ml/cmd_train.cpp: idn train
void register_eval(CLI::App& app);     // ml/cmd_eval.cpp: idn eval
void register_bench(CLI::App& bench);  // ml/cmd_bench.cpp: idn bench branchynet (gets `bench`)
void register_demo(CLI::App& app);     // ml/cmd_demo.cpp: idn demo
void register_bench_inference(CLI::App& bench);  // ml/cmd_bench_inference.cpp
void register_bench_ddnn(CLI::App& bench);       // ml/cmd_bench_ddnn.cpp: idn bench ddnn
void register_bench_engine(CLI::App& bench);     // ml/cmd_bench_engine.cpp: idn bench engine
// ml/cmd_parallelnet.cpp: idn train parallelnet (after register_train), idn parallelnet
// generate, idn bench parallelnet.
void register_parallelnet(CLI::App& app, CLI::App& bench);
// ml/cmd_demo_ddnn.cpp: idn ddnn publish (idn demo ddnn hangs off register_demo).
void register_ddnn_publish(CLI::App& app);
void register_ddnn(CLI::App& app);     // ml/cmd_ddnn.cpp: idn train ddnn (after register_train)
void register_id(CLI::App& app);       // cmd_id.cpp: idn id new|show
void register_content(CLI::App& app);  // cmd_content.cpp: idn add|publish|fetch|cat|share
void register_routing(CLI::App& app);  // cmd_routing.cpp: idn providers, idn bench routing
void register_node(CLI::App& app);     // cmd_node.cpp: idn node, idn peers
void register_bench_transport(CLI::App& bench);  // cmd_bench_transport.cpp: idn bench transport
void register_bench_content(CLI::App& bench);    // cmd_bench_content.cpp: idn bench content
void register_swap(CLI::App& app);               // cmd_swap.cpp: idn swap probability
void register_bench_swap(CLI::App& bench);       // cmd_swap.cpp: idn bench swap
void register_load(CLI::App& app);               // cmd_load.cpp: idn load
void register_init(CLI::App& app);               // cmd_init.cpp: idn init
void register_infer(CLI::App& app);              // cmd_infer.cpp: idn infer
void register_sim(CLI::App& app);                // cmd_sim.cpp: idn sim computeswap
void register_export(CLI::App& app);             // cmd_export.cpp: idn export onnx
// cmd_daimon.cpp: idn daimon, idn daimon attack bruteforce; returns `daimon` for the ML hooks.
CLI::App* register_daimon(CLI::App& app);
void register_daimon_ml(CLI::App& daimon);  // ml/cmd_daimon.cpp: problem create, prove, verify

}  // namespace idn::cli
