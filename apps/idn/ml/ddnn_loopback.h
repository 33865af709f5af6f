// A DDNN package (configuration (c), six devices) deployed on loopback peers as §4.4 runs it:
// six device peers each replaying one camera, a cloud peer, and a local-aggregator peer whose
// sessions find them through the DHT. `idn demo ddnn` streams samples through it; `idn bench
// ddnn` measures Table 4.2's bytes on the wire with it. Create, use and destroy on one thread
// (the peers run on their own threads; sessions run on the aggregator's).
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "client/ddnn_session.h"
#include "core/status.h"
#include "data/multiview.h"
#include "node/ddnn.h"
#include "node/node_thread.h"

namespace idn::cli {

class LoopbackDdnn {
 public:
  // Called once per hosted section ("device0".."device5", "cloud") as its peer starts serving.
  using OnHosted = std::function<void(const std::string& section, const node::Node& peer,
                                      const core::Multihash& service)>;

  // Starts the peers and hosts the package's sections; device d replays view d of `replay`
  // (frame i = sample i). Errors: the package is not a six-device configuration (c), a peer
  // failed to start or to host its section.
  static Result<std::unique_ptr<LoopbackDdnn>> start(
      const std::filesystem::path& package, std::shared_ptr<const data::MultiViewDataset> replay,
      const OnHosted& on_hosted = {});
  // Stops the aggregator, then the other peers newest first.
  ~LoopbackDdnn();
  LoopbackDdnn(const LoopbackDdnn&) = delete;
  LoopbackDdnn& operator=(const LoopbackDdnn&) = delete;

  node::Node& aggregator() { return **aggregator_; }
  const serve::DdnnInfo& info() const { return services_->info; }
  // A local aggregator's session (its own threshold, deadlines).
  Result<std::shared_ptr<client::DdnnSession>> session(const node::DdnnSessionOptions& o);
  // Sample `i` of the replay through `session`, on the aggregator's thread.
  Result<client::DdnnAnswer> infer(client::DdnnSession& session, uint64_t i);
  // Stops device d's peer (a failure: its view goes missing).
  void stop_device(int d);
  const identity::PeerId& device_id(int d) const;

 private:
  LoopbackDdnn() = default;
  std::vector<std::unique_ptr<node::NodeThread>> peers_;  // devices 0..5, then the cloud
  std::unique_ptr<node::NodeThread> aggregator_;
  std::optional<node::DdnnServices> services_;
};

// What a run of samples sent, summed over the answered ones.
struct DdnnWireTally {
  int answered = 0, correct = 0, local = 0, local_correct = 0;
  uint64_t scores = 0, features = 0, cloud = 0, payload = 0, raw = 0, present = 0;
  std::vector<double> latency_ms;

  void add(const client::DdnnAnswer& a, int label);
  // IDN message bytes per answered sample, both directions, every hop.
  double wire_per_sample() const;
  // The framed request that would carry the present views raw to the cloud, per sample.
  double raw_per_sample() const;
};

}  // namespace idn::cli
