#include "swap/known_answers.h"

#include <algorithm>
#include <cmath>

#include "core/multihash.h"

namespace idn::swap {

AnswerBook::AnswerBook(Limits limits) : limits_(limits) {
  limits_.quorum = std::max<size_t>(limits_.quorum, 1);
}

// The digest of dtype, shape and data: equal inputs, equal keys.
Bytes AnswerBook::key(const core::Tensor& t) {
  Bytes b;
  b.reserve(t.bytes.size() + 9 * t.shape.size() + 1);
  b.push_back(static_cast<uint8_t>(t.dtype));
  for (int64_t d : t.shape)
    for (int i = 0; i < 8; ++i) b.push_back(static_cast<uint8_t>(uint64_t(d) >> (8 * i)));
  b.insert(b.end(), t.bytes.begin(), t.bytes.end());
  core::Multihash h = core::Multihash::sha2_256(b);
  return Bytes(h.digest().begin(), h.digest().end());
}

std::optional<AgreedAnswer> AnswerBook::majority(const Entry& e, size_t quorum) {
  std::map<Answer, size_t> votes;
  for (const auto& [peer, a] : e.answers) votes[a]++;
  for (const auto& [a, n] : votes)
    if (n >= quorum && 2 * n > e.answers.size()) return AgreedAnswer{a.exit_index, a.predicted, n};
  return std::nullopt;
}

std::vector<Bytes> AnswerBook::record(const core::Tensor& input, ByteView peer, uint32_t exit_index,
                                      int predicted) {
  Bytes k = key(input);
  auto it = entries_.find(k);
  if (it == entries_.end()) {
    if (input.bytes.size() > limits_.max_bytes) return {};
    it = entries_.emplace(k, Entry{input, {}, {}}).first;
    order_.push_back(k);
    bytes_ += input.bytes.size();
    evict();
    it = entries_.find(k);
    if (it == entries_.end()) return {};
  }
  Entry& e = it->second;
  e.answers[Bytes(peer.begin(), peer.end())] = Answer{exit_index, predicted};
  std::vector<Bytes> odd;
  auto m = majority(e, limits_.quorum);
  if (!m) return odd;
  for (const auto& [p, a] : e.answers) {
    if (a == Answer{m->exit_index, m->predicted}) continue;
    if (std::find(e.reported.begin(), e.reported.end(), p) != e.reported.end()) continue;
    e.reported.push_back(p);
    odd.push_back(p);
  }
  return odd;
}

std::optional<AgreedAnswer> AnswerBook::agreed(const core::Tensor& input) const {
  auto it = entries_.find(key(input));
  if (it == entries_.end()) return std::nullopt;
  return majority(it->second, limits_.quorum);
}

std::optional<std::pair<core::Tensor, AgreedAnswer>> AnswerBook::pick(double u) const {
  std::vector<std::pair<const Entry*, AgreedAnswer>> known;
  for (const auto& [k, e] : entries_)
    if (auto m = majority(e, limits_.quorum)) known.emplace_back(&e, *m);
  if (known.empty()) return std::nullopt;
  auto i = static_cast<size_t>(std::floor(std::clamp(u, 0.0, 1.0) * double(known.size())));
  i = std::min(i, known.size() - 1);
  return std::make_pair(known[i].first->input, known[i].second);
}

void AnswerBook::evict() {
  while (!order_.empty() && (entries_.size() > limits_.max_inputs || bytes_ > limits_.max_bytes)) {
    auto it = entries_.find(order_.front());
    if (it != entries_.end()) {
      bytes_ -= it->second.input.bytes.size();
      entries_.erase(it);
    }
    order_.pop_front();
  }
}

}  // namespace idn::swap
