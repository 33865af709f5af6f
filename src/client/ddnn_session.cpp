#include "client/ddnn_session.h"

#include <fmt/format.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <algorithm>
#include <cctype>
#include <limits>
#include <string>

#include "core/varint.h"
#include "model/exit_criteria.h"
#include "p2p/stream.h"
#include "protocol/messages.h"

namespace idn::client {
namespace asio = boost::asio;

Result<ScoreAggregation> parse_score_aggregation(std::string_view name) {
  std::string u(name);
  for (auto& c : u) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (u == "MP") return ScoreAggregation::kMax;
  if (u == "AP") return ScoreAggregation::kAverage;
  if (u == "CC")
    return Status::unsupported(
        "CC local aggregation needs the local section's learned map, which is not deployed on "
        "the network; use MP or AP");
  return Status::invalid_argument("unknown aggregation '" + std::string(name) + "'");
}

std::vector<float> aggregate_scores(ScoreAggregation op,
                                    const std::vector<std::vector<float>>& scores,
                                    const std::vector<bool>& present, size_t classes) {
  std::vector<float> out(classes, 0.0f);
  size_t n = 0;
  for (size_t d = 0; d < scores.size(); ++d) n += present[d] ? 1 : 0;
  if (n == 0) return out;
  if (op == ScoreAggregation::kMax) {
    std::fill(out.begin(), out.end(), -std::numeric_limits<float>::infinity());
    for (size_t d = 0; d < scores.size(); ++d)
      if (present[d])
        for (size_t c = 0; c < classes; ++c) out[c] = std::max(out[c], scores[d][c]);
    return out;
  }
  // As motifs::aggregate: (x * mask).sum over devices / count.
  for (size_t d = 0; d < scores.size(); ++d)
    for (size_t c = 0; c < classes; ++c) out[c] += present[d] ? scores[d][c] : 0.0f;
  for (auto& v : out) v /= static_cast<float>(n);
  return out;
}

bool ddnn_exits(double normalized_entropy, double threshold) {
  if (threshold >= 1) return true;
  if (threshold <= 0) return false;
  return normalized_entropy <= threshold;
}

namespace {

struct Asked {
  std::optional<Event> answer;  // the peer's final answer, when the request completed with one
  uint64_t bytes = 0;
};

// Runs one request per (session, body) at once and waits for all of them (each ends by its
// session's deadline at the latest).
p2p::awaitable<std::vector<Asked>> ask_all(asio::any_io_executor io,
                                           std::vector<std::shared_ptr<Session>> sessions,
                                           std::vector<RequestInput> bodies) {
  struct Shared {
    explicit Shared(asio::any_io_executor ex) : changed(std::move(ex)) {}
    std::vector<Asked> out;
    size_t running = 0;
    p2p::Signal changed;
  };
  auto shared = std::make_shared<Shared>(io);
  shared->out.resize(sessions.size());
  shared->running = sessions.size();
  for (size_t i = 0; i < sessions.size(); ++i) {
    auto stream = sessions[i]->infer(std::move(bodies[i]));
    asio::co_spawn(
        io,
        [shared, stream, i]() -> p2p::awaitable<void> {
          while (co_await stream->next()) {
          }
          const Summary& s = stream->summary();
          if (s.status.is_ok() && s.best && s.best->final_from_peer) shared->out[i].answer = s.best;
          shared->out[i].bytes = s.bytes_sent + s.bytes_received;
          shared->running--;
          shared->changed.notify_all();
        },
        asio::detached);
  }
  while (shared->running > 0) co_await shared->changed.wait();
  co_return std::move(shared->out);
}

uint64_t framed(const Bytes& payload) {
  return core::uvarint_size(payload.size()) + payload.size();
}

}  // namespace

DdnnSession::DdnnSession(asio::any_io_executor io, std::vector<std::shared_ptr<Session>> scores,
                         std::vector<std::shared_ptr<Session>> features,
                         std::shared_ptr<Session> cloud, DdnnPlan plan)
    : io_(std::move(io)),
      scores_(std::move(scores)),
      features_(std::move(features)),
      cloud_(std::move(cloud)),
      plan_(std::move(plan)) {}

p2p::awaitable<Result<DdnnAnswer>> DdnnSession::infer(uint64_t sample) {
  const size_t k = scores_.size();
  if (k == 0 || k > protocol::kMaxInputViews || features_.size() != k || !cloud_)
    co_return Status::invalid_argument(
        "a DDNN session needs 1..64 devices, each with a scores and a features session, and a "
        "cloud session");
  const auto started = std::chrono::steady_clock::now();
  DdnnAnswer a;
  // Step 1 (§4.4): every device runs its section on frame `sample` and sends its scores.
  std::vector<RequestInput> bodies(k);
  for (auto& b : bodies) b.sample_ref = sample;
  auto asked = co_await ask_all(io_, scores_, std::move(bodies));
  std::vector<std::vector<float>> scores(k);
  std::vector<bool> present(k, false);
  for (size_t d = 0; d < k; ++d) {
    a.device_scores_bytes += asked[d].bytes;
    const auto& e = asked[d].answer;
    if (!e || e->output.dtype != core::DType::kF32 ||
        e->output.numel() != static_cast<int64_t>(plan_.classes))
      continue;
    auto v = e->output.f32();
    scores[d].assign(v.begin(), v.end());
    present[d] = true;
    a.present |= uint64_t{1} << d;
    a.payload_bytes += 4 * plan_.classes;
  }
  // Steps 2-3: the local aggregator exits the samples it is sure of.
  a.scores = aggregate_scores(plan_.local, scores, present, plan_.classes);
  std::vector<float> probs(plan_.classes);
  model::softmax_with_temperature(a.scores, 1.0, probs);
  a.entropy = static_cast<float>(model::normalized_entropy(probs));
  a.predicted =
      static_cast<int>(std::max_element(a.scores.begin(), a.scores.end()) - a.scores.begin());
  // The cloud-only baseline: the present views sent raw in one request, and its answer.
  {
    protocol::InferRequest raw;
    raw.request_id = cloud_->first_request_id();
    raw.service_id = cloud_->service().bytes();
    raw.deadline_ms = static_cast<uint32_t>(cloud_->options().deadline.count());
    core::Tensor view = core::Tensor::zeros(core::DType::kU8, plan_.view_shape);
    for (size_t d = 0; d < k; ++d)
      if (present[d]) {
        raw.inputs.push_back(view);
        raw.input_views.push_back(static_cast<uint32_t>(d));
      }
    protocol::InferProgress answer;
    answer.request_id = raw.request_id;
    answer.output = core::Tensor::zeros(core::DType::kF32, {static_cast<int64_t>(plan_.classes)});
    answer.confidence = 0.5f;
    answer.entropy = 0.5f;
    answer.operations = 1'000'000;
    answer.final = true;
    a.raw_bytes = framed(protocol::encode(protocol::InferClientMessage{std::move(raw)})) +
                  framed(protocol::encode(protocol::InferServerMessage{std::move(answer)}));
  }
  const bool any = a.present != 0;
  if (!any || ddnn_exits(a.entropy, plan_.threshold)) {
    a.exit = DdnnAnswer::Exit::kLocal;
    a.latency = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - started);
    co_return a;
  }
  // Step 4: the present devices send their features upward, bit-packed.
  std::vector<std::shared_ptr<Session>> feature_sessions;
  std::vector<RequestInput> feature_bodies;
  std::vector<size_t> which;
  for (size_t d = 0; d < k; ++d) {
    if (!present[d]) continue;
    RequestInput b;
    b.sample_ref = sample;
    b.stop_after_stage = 0;
    feature_sessions.push_back(features_[d]);
    feature_bodies.push_back(std::move(b));
    which.push_back(d);
  }
  auto got = co_await ask_all(io_, feature_sessions, std::move(feature_bodies));
  RequestInput cloud_body;
  for (size_t j = 0; j < which.size(); ++j) {
    a.device_features_bytes += got[j].bytes;
    const auto& e = got[j].answer;
    if (!e || e->output.dtype != core::DType::kU8) continue;  // lost since: absent
    cloud_body.inputs.push_back(e->output);
    cloud_body.input_views.push_back(static_cast<uint32_t>(which[j]));
    a.features |= uint64_t{1} << which[j];
    a.payload_bytes += e->output.bytes.size();
  }
  a.exit = DdnnAnswer::Exit::kCloud;
  if (cloud_body.inputs.empty()) {
    a.cloud_failed = true;
  } else {
    // Steps 5-6: the cloud section classifies from the features that arrived.
    std::vector<std::shared_ptr<Session>> cloud_sessions{cloud_};
    std::vector<RequestInput> cloud_bodies;
    cloud_bodies.push_back(std::move(cloud_body));
    auto cloud = co_await ask_all(io_, std::move(cloud_sessions), std::move(cloud_bodies));
    a.cloud_bytes = cloud[0].bytes;
    const auto& e = cloud[0].answer;
    if (e && e->output.dtype == core::DType::kF32 &&
        e->output.numel() == static_cast<int64_t>(plan_.classes)) {
      auto v = e->output.f32();
      a.scores.assign(v.begin(), v.end());
      a.predicted =
          static_cast<int>(std::max_element(a.scores.begin(), a.scores.end()) - a.scores.begin());
    } else {
      a.cloud_failed = true;
    }
  }
  if (a.cloud_failed) a.exit = DdnnAnswer::Exit::kLocal;  // the local answer stands
  a.latency = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - started);
  co_return a;
}

}  // namespace idn::client
