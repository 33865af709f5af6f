#include "client/answer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

namespace idn::client {

std::string_view outcome_name(PeerReport::Outcome o) {
  switch (o) {
    case PeerReport::Outcome::kRunning:
      return "running";
    case PeerReport::Outcome::kAnswered:
      return "answered";
    case PeerReport::Outcome::kFinishedEarly:
      return "finished_early";
    case PeerReport::Outcome::kBusy:
      return "busy";
    case PeerReport::Outcome::kError:
      return "error";
    case PeerReport::Outcome::kTimedOut:
      return "timed_out";
    case PeerReport::Outcome::kMalformed:
      return "malformed";
    case PeerReport::Outcome::kVanished:
      return "vanished";
    case PeerReport::Outcome::kRefused:
      return "refused";
    case PeerReport::Outcome::kWrongAnswer:
      return "wrong_answer";
  }
  return "unknown";
}

Status check_answer(const protocol::InferProgress& p, uint64_t request_id,
                    const std::optional<std::vector<int64_t>>& expected_shape,
                    std::optional<uint32_t> previous_exit, uint64_t previous_operations,
                    core::DType dtype) {
  if (p.request_id != request_id) {
    return Status::peer_misbehaved(
        fmt::format("answer for request {}, expected {}", p.request_id, request_id));
  }
  const core::Tensor& out = p.output;
  if (out.dtype != dtype) {
    return Status::peer_misbehaved(fmt::format(
        "output dtype is {}, expected {}", core::dtype_name(out.dtype), core::dtype_name(dtype)));
  }
  if (Status st = out.validate(); !st.is_ok()) {
    return Status::peer_misbehaved("output tensor: " + st.message());
  }
  if (out.numel() == 0) return Status::peer_misbehaved("output tensor is empty");
  if (expected_shape && out.shape != *expected_shape) {
    return Status::peer_misbehaved(fmt::format("output shape {}, the service promises {}",
                                               core::shape_string(out.shape),
                                               core::shape_string(*expected_shape)));
  }
  if (out.dtype == core::DType::kF32) {
    auto values = out.f32();
    for (size_t i = 0; i < values.size(); ++i) {
      if (!std::isfinite(values[i])) {
        return Status::peer_misbehaved(fmt::format("output[{}] is {}", i, values[i]));
      }
    }
  }
  if (!std::isfinite(p.confidence) || p.confidence < 0.0f || p.confidence > 1.0f) {
    return Status::peer_misbehaved(fmt::format("confidence {} is not in [0, 1]", p.confidence));
  }
  if (!std::isfinite(p.entropy) || p.entropy < 0.0f) {
    return Status::peer_misbehaved(fmt::format("entropy {} is not a finite value >= 0", p.entropy));
  }
  if (previous_exit && p.exit_index < *previous_exit) {
    return Status::peer_misbehaved(
        fmt::format("exit index went backwards ({} after {})", p.exit_index, *previous_exit));
  }
  if (p.operations < previous_operations) {
    return Status::peer_misbehaved(fmt::format("cumulative operations decreased ({} after {})",
                                               p.operations, previous_operations));
  }
  return Status::ok();
}

bool improves(uint32_t exit_index, float confidence, const std::optional<Event>& best) {
  if (!best) return true;
  if (exit_index != best->exit_index) return exit_index > best->exit_index;
  return confidence > best->confidence;
}

bool meets_exit_rule(const protocol::ExitRule& rule, float confidence, float entropy) {
  switch (rule.criterion) {
    case protocol::ExitCriterion::kConfidence:
      return confidence >= rule.threshold;
    case protocol::ExitCriterion::kEntropy:
      return entropy < rule.threshold;
    case protocol::ExitCriterion::kModelDefault:
    case protocol::ExitCriterion::kLastExit:
      return false;
  }
  return false;
}

int argmax(const core::Tensor& t) {
  if (t.dtype != core::DType::kF32 || !t.validate().is_ok() || t.numel() == 0) return -1;
  auto v = t.f32();
  size_t best = 0;
  for (size_t i = 1; i < v.size(); ++i) {
    if (v[i] > v[best]) best = i;
  }
  return static_cast<int>(best);
}

Status KnownAnswer::validate() const {
  if (predicted < 0 && !exit_index && !output)
    return Status::invalid_argument(
        "known answer checks nothing: set predicted, exit_index or output");
  if (!std::isfinite(tolerance) || tolerance < 0.0f)
    return Status::invalid_argument(
        fmt::format("known answer tolerance {} is not a finite value >= 0", tolerance));
  if (output && (output->dtype != core::DType::kF32 || !output->validate().is_ok()))
    return Status::invalid_argument("known answer output must be a valid F32 tensor");
  return Status::ok();
}

Status check_known_answer(const protocol::InferProgress& p, const KnownAnswer& known) {
  IDN_RETURN_IF_ERROR(known.validate());
  if (known.exit_index && p.exit_index != *known.exit_index)
    return Status::peer_misbehaved(
        fmt::format("answered from exit {}, the known answer is from exit {}", p.exit_index,
                    *known.exit_index));
  if (known.predicted >= 0) {
    int got = argmax(p.output);
    if (got != known.predicted)
      return Status::peer_misbehaved(
          fmt::format("answered class {}, the known answer is class {}", got, known.predicted));
  }
  if (known.output) {
    const core::Tensor& want = *known.output;
    if (p.output.dtype != core::DType::kF32 || !p.output.validate().is_ok() ||
        p.output.numel() != want.numel())
      return Status::peer_misbehaved(
          fmt::format("answered an output of shape {}, the known one has shape {}",
                      core::shape_string(p.output.shape), core::shape_string(want.shape)));
    auto a = p.output.f32();
    auto b = want.f32();
    for (size_t i = 0; i < a.size(); ++i) {
      float d = std::fabs(a[i] - b[i]);
      if (!(d <= known.tolerance))
        return Status::peer_misbehaved(
            fmt::format("output element {} is {}, the known answer has {} (tolerance {})", i, a[i],
                        b[i], known.tolerance));
    }
  }
  return Status::ok();
}

std::vector<identity::PeerId> disagreeing_peers(const std::vector<PeerReport>& peers) {
  std::map<uint32_t, std::map<int, size_t>> tally;  // exit -> class -> peers
  for (const PeerReport& r : peers) {
    std::set<std::pair<uint32_t, int>> counted;  // a peer votes once per exit and class
    for (const PeerReport::Vote& v : r.votes)
      if (counted.insert({v.exit_index, v.predicted}).second) tally[v.exit_index][v.predicted]++;
  }
  std::map<uint32_t, int> majority;  // exit -> the class a strict majority named
  for (const auto& [exit, classes] : tally) {
    size_t total = 0;
    for (const auto& [cls, n] : classes) total += n;
    for (const auto& [cls, n] : classes)
      if (n >= 2 && 2 * n > total) majority[exit] = cls;
  }
  std::vector<identity::PeerId> out;
  for (const PeerReport& r : peers) {
    bool odd = std::any_of(r.votes.begin(), r.votes.end(), [&](const PeerReport::Vote& v) {
      auto m = majority.find(v.exit_index);
      return m != majority.end() && m->second != v.predicted;
    });
    if (odd && std::find(out.begin(), out.end(), r.peer) == out.end()) out.push_back(r.peer);
  }
  return out;
}

}  // namespace idn::client
