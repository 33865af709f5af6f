// DDNN on the network (dissertation §4.4): the local aggregator as the requester. For sample i it
// asks every device section's service for its local-exit scores at once (each device owns its
// camera: the request names frame i), aggregates the scores of those that answered within the
// deadline (MP or AP over the present ones; a device that is silent, gone or has nothing in view
// is absent), and exits locally when the normalized entropy η ≤ T. Otherwise it asks the present
// devices for their bit-packed features and sends them to the cloud section's service in one
// request (inputs + input_views), whose class scores are the answer. Every request runs in its
// own Session, so each peer is found through the DHT, charged and receipted for what it hosts.
//
// Bytes are counted per hop as the sessions count them: length-prefixed IDN messages (request,
// cancels, progress), both directions, without yamux/Noise framing. `raw_bytes` is the size of
// the request that would carry the present raw views to the cloud instead (config (a)),
// encoded by the same encoder (not sent).
// Threading: like Session, on the io executor of the Host the sessions use; call infer() there.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "client/session.h"
#include "core/status.h"

namespace idn::client {

// §4.2's aggregation of the devices' class scores for the local exit, as motifs::aggregate does
// it for one sample, torch-free: MP is the elementwise maximum and AP the mean over the present
// devices only (none present: zeros). CC needs the local section's learned map (not deployed).
enum class ScoreAggregation { kMax, kAverage };
Result<ScoreAggregation> parse_score_aggregation(std::string_view name);  // "MP" | "AP"
std::vector<float> aggregate_scores(ScoreAggregation op,
                                    const std::vector<std::vector<float>>& scores,
                                    const std::vector<bool>& present, size_t classes);
// §4.4's exit test: T >= 1 exits every sample, T <= 0 none, otherwise η ≤ T.
bool ddnn_exits(double normalized_entropy, double threshold);

struct DdnnPlan {
  ScoreAggregation local = ScoreAggregation::kMax;
  double threshold = 0.8;  // the local exit's T
  size_t classes = 3;
  // One view's raw size and the cloud service's ID bytes, for the raw baseline's size.
  std::vector<int64_t> view_shape = {3, 32, 32};
};

struct DdnnAnswer {
  enum class Exit { kLocal, kCloud };
  Exit exit = Exit::kLocal;
  int predicted = -1;
  std::vector<float> scores;  // at the exit taken
  float entropy = 0;          // η at the local exit (where the decision was made)
  uint64_t present = 0;       // bit d: device d's scores took part
  uint64_t features = 0;      // bit d: device d's features went to the cloud
  bool cloud_failed = false;  // the cloud did not answer: the local exit's answer stands
  // IDN message bytes by hop, both directions.
  uint64_t device_scores_bytes = 0;    // aggregator <-> devices: score requests and answers
  uint64_t device_features_bytes = 0;  // aggregator <-> devices: feature requests and answers
  uint64_t cloud_bytes = 0;            // aggregator <-> cloud
  // Payload only, eq. 4.1's count: 4·|C| per present device, packed features upward.
  uint64_t payload_bytes = 0;
  // The framed request that would carry the present views raw to the cloud (config (a)).
  uint64_t raw_bytes = 0;
  uint64_t total_bytes() const { return device_scores_bytes + device_features_bytes + cloud_bytes; }
  std::chrono::microseconds latency{0};
};

class DdnnSession {
 public:
  // Per device d: `scores[d]` (F32 answers) and `features[d]` (output_dtype U8) sessions of
  // device d's service; `cloud` the cloud service's. Fan-out 1 each; their deadlines are the
  // per-hop deadlines. InvalidArgument on infer() for mismatched or empty lists.
  DdnnSession(boost::asio::any_io_executor io, std::vector<std::shared_ptr<Session>> scores,
              std::vector<std::shared_ptr<Session>> features, std::shared_ptr<Session> cloud,
              DdnnPlan plan);

  p2p::awaitable<Result<DdnnAnswer>> infer(uint64_t sample);

 private:
  boost::asio::any_io_executor io_;
  std::vector<std::shared_ptr<Session>> scores_, features_;
  std::shared_ptr<Session> cloud_;
  DdnnPlan plan_;
};

}  // namespace idn::client
