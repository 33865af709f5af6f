// Node::local_prefix: the requester's half of split execution (§3.8, §4.1 (b)). The first
// stages and their exit run here on this node's own Engine; only when that exit is not
// confident does the activation travel to a peer hosting the remaining stages.
#include <fmt/format.h>

#include <mutex>

#include "engine/engine.h"
#include "node/node.h"
#include "serve/infer_server.h"
#include "store/blockstore.h"
#include "store/exporter.h"

namespace idn::node {

Result<client::LocalPrefix> Node::local_prefix(const core::Multihash& service, int last_local_stage,
                                               const protocol::ExitRule& rule) {
  IDN_ASSIGN_OR_RETURN(engine::ExitRule erule, serve::engine_rule(rule));
  IDN_ASSIGN_OR_RETURN(auto desc, models_->local_descriptor(service));
  IDN_ASSIGN_OR_RETURN(auto cid, core::Cid::parse(desc.model_cid));
  std::filesystem::path dir = data_dir_ / "models" / cid.to_string();
  std::error_code ec;
  if (!std::filesystem::exists(dir / "model.json", ec)) {
    if (!store_->pin(cid).is_ok())
      return Status::not_found(
          fmt::format("this node lacks the model package {} of the service; host or fetch it first",
                      desc.model_cid));
    IDN_RETURN_IF_ERROR(store::export_to(*store_, cid, dir));
  }
  IDN_ASSIGN_OR_RETURN(auto loaded, engine::Engine::load(dir));
  std::shared_ptr<engine::Engine> eng(std::move(loaded));
  if (last_local_stage < 0 || last_local_stage + 1 >= static_cast<int>(eng->spec().stages.size()))
    return Status::invalid_argument(
        fmt::format("--split-after {} must leave at least one of the "
                    "model's {} stages to the peers",
                    last_local_stage, eng->spec().stages.size()));
  auto mu = std::make_shared<std::mutex>();
  identity::PeerId self = id();
  return client::LocalPrefix([eng, mu, self, last_local_stage,
                              erule](const core::Tensor& input) -> Result<client::LocalStep> {
    std::lock_guard lock(*mu);
    IDN_ASSIGN_OR_RETURN(auto prefix, eng->run_prefix(input, last_local_stage, erule));
    client::LocalStep step;
    step.next_stage = static_cast<uint32_t>(last_local_stage + 1);
    if (prefix.exit) {
      const auto& e = *prefix.exit;
      step.local_answer = client::Event{
          .peer = self,
          .exit_index = static_cast<uint32_t>(e.exit_index),
          .output = core::Tensor::f32({static_cast<int64_t>(e.probs.size())}, e.probs),
          .confidence = static_cast<float>(e.confidence),
          .entropy = static_cast<float>(e.entropy),
          .operations = static_cast<uint64_t>(e.flops),
          .local = true,
          .predicted = e.predicted};
      step.confident = e.exited;
    }
    step.activation = std::move(prefix.activation);
    return step;
  });
}

}  // namespace idn::node
