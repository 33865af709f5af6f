// Known answers for challenges (dissertation §7.5.3.3): a requester checks a provider with a
// request whose answer it already knows, "from its own copy of the package, or an answer
// several peers agreed on". AnswerBook keeps the second kind: the final answers (exit, class)
// peers gave to inputs this node asked, keyed by the input's digest, so an input that `quorum`
// peers answered alike can be sent again as a challenge, and a peer that answered it against a
// majority is reported as suspicious. Bounded (inputs and bytes, oldest dropped first).
// Torch-free, sans-IO; one owner thread (the node's io thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "core/bytes.h"
#include "core/tensor.h"
#include "swap/ledger.h"  // BytesLess

namespace idn::swap {

struct AgreedAnswer {
  uint32_t exit_index = 0;  // the exit the peers' final answers came from
  int predicted = -1;       // the class they named
  size_t peers = 0;         // how many named it
};

class AnswerBook {
 public:
  struct Limits {
    // Peers that must name the same final answer before it counts as known. Two: one peer's
    // word is what a challenge is meant to check.
    size_t quorum = 2;
    // Inputs remembered, and their summed tensor bytes (an image is KBs; 16 MiB holds
    // thousands of small inputs and a few dozen large ones).
    size_t max_inputs = 1024;
    size_t max_bytes = size_t{16} << 20;
  };
  AnswerBook() : AnswerBook(Limits{}) {}
  explicit AnswerBook(Limits limits);

  // Records `peer`'s final answer to `input` (a peer's later answer replaces its earlier one).
  // Returns the peers whose answer to this input disagrees with a strict majority of at least
  // `quorum` peers, each once per input (so the caller counts each disagreement once).
  std::vector<Bytes> record(const core::Tensor& input, ByteView peer, uint32_t exit_index,
                            int predicted);
  // The answer to `input` that at least `quorum` peers, and a strict majority of those that
  // answered it, named; nullopt otherwise (unknown input, too few peers, no majority).
  std::optional<AgreedAnswer> agreed(const core::Tensor& input) const;
  // An input with an agreed answer, `u` in [0, 1) choosing uniformly among them.
  std::optional<std::pair<core::Tensor, AgreedAnswer>> pick(double u) const;

  size_t inputs() const { return entries_.size(); }
  size_t bytes() const { return bytes_; }

 private:
  struct Answer {
    uint32_t exit_index = 0;
    int predicted = -1;
    bool operator==(const Answer&) const = default;
    auto operator<=>(const Answer&) const = default;
  };
  struct Entry {
    core::Tensor input;
    std::map<Bytes, Answer, BytesLess> answers;  // by peer
    std::vector<Bytes> reported;                 // peers already returned as disagreeing
  };
  static Bytes key(const core::Tensor& t);
  static std::optional<AgreedAnswer> majority(const Entry& e, size_t quorum);
  void evict();

  Limits limits_;
  std::map<Bytes, Entry, BytesLess> entries_;  // by key
  std::deque<Bytes> order_;                    // keys, oldest first
  size_t bytes_ = 0;
};

}  // namespace idn::swap
