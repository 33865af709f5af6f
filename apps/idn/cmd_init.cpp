// idn init --service ID --npeers N --bootstrap ADDR...: initModel across peers (§7.4, the
// blog's "have peers load it"). Joins the network as a client node, connected to the
// --bootstrap peers, and asks them (best ComputeSwap standing first) to host the service until
// N do; each decides through its Inference Service Engine and may say no, with why. Prints who
// hosts it and who refused; exits 0 only when N peers host it.
// --descriptor FILE instead of --service (the blog's initModel(descriptor, ...)): the
// descriptor's JSON (or what GET /idn/v1/services/{id} returns) is sent with each request, so
// peers host a service nobody provides yet, from its package's CID; prints its service ID.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "cli.h"
#include "ise/service_descriptor.h"
#include "node/node.h"

namespace idn::cli {
namespace {

struct InitArgs {
  std::string service;
  std::string descriptor_file;
  int npeers = 1;
  std::vector<std::string> bootstrap;
  int timeout_s = 60;
};

// The descriptor in `file`: a descriptor, or an object holding one under "descriptor" (the
// gateway's GET /idn/v1/services/{id}). Returns its canonical JSON.
Result<std::string> read_descriptor(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return Status::io_error("cannot read " + file);
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().size() > 4 * ise::kMaxDescriptorBytes)
    return Status::invalid_argument(file + " is too large for a service descriptor");
  std::string body = text.str();
  auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("descriptor")) body = j["descriptor"].dump();
  auto d = ise::parse_descriptor(body);
  if (!d.ok()) return d.status().with_context(file);
  return ise::canonical_json(*d);
}

int run_init(const InitArgs& a) {
  if (a.service.empty() == a.descriptor_file.empty())
    return report(Status::invalid_argument("give --service ID or --descriptor FILE (one of them)"));
  std::string descriptor;
  Result<core::Multihash> sid = Status::invalid_argument("no service");
  if (!a.descriptor_file.empty()) {
    auto text = read_descriptor(a.descriptor_file);
    if (!text.ok()) return report(text.status().with_context("--descriptor"));
    descriptor = std::move(*text);
    sid = ise::service_id(*ise::parse_descriptor(descriptor));
    std::printf("service %s\n", ise::service_id_text(*sid).c_str());
  } else {
    sid = ise::parse_service_id(a.service);
  }
  if (!sid.ok()) return report(sid.status().with_context("--service"));
  if (a.bootstrap.empty())
    return report(Status::invalid_argument(
        "--bootstrap MULTIADDR (ending in /p2p/<id>) names the peers to ask; repeat it"));
  return with_client_node(a.bootstrap, [&](node::Node& nd) {
    // The bootstrap peers must be connected and Online in ComputeSwap before we can ask them.
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(a.timeout_s);
    size_t online = 0;
    while (std::chrono::steady_clock::now() < until) {
      online = nd.block_on(
          [&]() -> p2p::awaitable<size_t> { co_return nd.swap()->online_peers().size(); });
      if (online >= a.bootstrap.size()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // poll, with a deadline
    }
    if (online == 0)
      return report(Status::unavailable(
          fmt::format("no --bootstrap peer was connected and Online within {} s", a.timeout_s)));
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    node::Node::InitOptions o{static_cast<size_t>(a.npeers),
                              std::max(left, std::chrono::milliseconds(1000)), descriptor};
    auto out = nd.block_on([&]() -> p2p::awaitable<Result<node::InitOutcome>> {
      co_return co_await nd.init_model(*sid, o);
    });
    if (!out.ok()) return report(out.status());
    for (const auto& p : out->hosting) std::printf("hosting  %s\n", p.to_string().c_str());
    for (const auto& [p, why] : out->refused)
      std::printf("refused  %s  %s\n", p.to_string().c_str(), why.c_str());
    std::printf("%zu of %d peer(s) host %s\n", out->hosting.size(), a.npeers,
                ise::service_id_text(*sid).c_str());
    if (out->hosting.size() < static_cast<size_t>(a.npeers))
      return report(Status::unavailable(fmt::format(
          "only {} of the {} peers asked for host the service", out->hosting.size(), a.npeers)));
    return 0;
  });
}

}  // namespace

void register_init(CLI::App& app) {
  auto a = std::make_shared<InitArgs>();
  CLI::App* c = app.add_subcommand(
      "init",
      "Ask peers to host a service (initModel): each decides through its Inference Service "
      "Engine ([ise] auto_host) and says yes or no, with why");
  c->add_option("--service", a->service, "Service ID (Qm...) of a published service");
  c->add_option("--descriptor", a->descriptor_file,
                "Instead of --service: a service descriptor's JSON file (or GET "
                "/idn/v1/services/{id}'s answer), sent to the peers, who host it from its "
                "package's CID; its service ID is printed");
  c->add_option("--npeers", a->npeers, "How many peers should host it")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  c->add_option("--bootstrap", a->bootstrap,
                "Multiaddr of a peer to ask (ending in /p2p/<id>), repeatable; asked best "
                "ComputeSwap standing first");
  c->add_option("--timeout-s", a->timeout_s, "Give up after this long")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  c->callback([a] { run_or_exit(run_init(*a)); });
}

}  // namespace idn::cli
