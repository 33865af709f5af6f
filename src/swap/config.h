// ComputeSwap's settings, mirroring the `[swap]` table of the node's TOML, with the reasons
// for each default; and the clock ComputeSwap reads (injected, so tests advance time by hand).
// Config is a plain value; SystemClock and ManualClock are safe to read from any thread, a
// ManualClock is advanced by one thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"
#include "swap/strategy.h"

namespace idn::swap {

// The largest checkpoint_every: half of what an Open's evidence may carry
// (protocol::DecodeLimits::max_evidence_receipts).
inline constexpr uint32_t kMaxCheckpointEvery = 2048;

enum class ChallengeFailure { kIgnore, kBlacklist };
enum class MismatchPolicy { kReconcile, kContempt };

struct Config {
  // p(r) (§7.5.2): m, the debt ratio where service stops; n, how late the fall starts.
  // m = 4 is Fig. 7.1's; n = 2 serves 95 % at r = 2 and 58 % at r = 3.5.
  double m = 4.0;
  double n = 2.0;
  // Eq. 7.1's "+ 1" in the denominator, in operations: how much work a peer that never served
  // may use before p(r) begins to fall. 1 is eq. 7.1 literally (swap/strategy.h: debt_ratio
  // says why a node wants more; node/config.h's default is kNodeGraceOps).
  uint64_t grace_ops = 1;
  // T_g: a refused or caught peer is ignored this long. Long enough that asking again at
  // once cannot raise a peer's odds (§7.5.2), short enough that a peer who paid is back soon.
  uint32_t ignore_period_s = 30;
  // T_c: an Online peer silent this long is closed (final = false); it may reopen at once.
  uint32_t idle_close_s = 120;
  // A provider's charge with no receipt after this long counts as unpaid work: it stays on
  // the requester's debt in our view (not in the shared ledger). Covers a slow requester.
  uint32_t receipt_timeout_ms = 10'000;
  // A checkpoint is signed every this many receipts (and at shutdown, and at an idle close over
  // close_checkpoint_min receipts): two signs and two verifies, ~400-600 us here, so every
  // 1024 receipts costs under 1 us per receipt (256 cost ~2-3, 64 ~9). Open's evidence (the
  // receipts after the last checkpoint) stays under ~160 KB. At most kMaxCheckpointEvery:
  // evidence must fit DecodeLimits::max_evidence_receipts with room for a checkpoint the peer
  // was slow to sign.
  uint32_t checkpoint_every = 1024;
  // An idle close proposes a checkpoint only over at least this many receipts (shutdown
  // always does). In a large network most connections carry a request or two before they go
  // idle; a checkpoint for each (~100-150 us of signing and verifying across the pair) cost
  // more than the work accounted (docs/results.md, the simulator's 10,000 peers).
  uint32_t close_checkpoint_min = 64;
  // Group commit: ledger updates are committed together at most this long after the first
  // (0: each update is its own transaction). A commit costs ~100-300 us of CPU here, a small
  // model's request ~350 us: at 10 ms commits were ~10 us of each B-LeNet request, at 50 ms
  // ~4, at 200 ms ~1 (docs/results.md). A kill -9 loses at most this much of a provider's
  // receipts, which the next Open restores from the requester's copies; a requester sends its
  // receipts (in one batch per provider) only once they are committed, so this must stay
  // below receipt_timeout_ms. At most 60000.
  uint32_t commit_interval_ms = 200;
  // Fraction of requests a requester sends as challenges with a known answer (§7.5.3.3).
  double challenge_rate = 0.01;
  // Probation: every answer from a provider is challenged until it has passed this many
  // challenges (in this process's life; trusted peers never are), then answers are challenged
  // at challenge_rate. A liar that answers each requester once is then caught by every
  // requester it answers, at the price of one challenge per new provider (docs/results.md).
  // 0: no probation, challenges only at challenge_rate (§7.5.3.3's "occasionally").
  uint32_t probation_challenges = 0;
  ChallengeFailure on_challenge_failure = ChallengeFailure::kIgnore;
  // What to do when the views exchanged at Open differ: apply the reconciliation rule
  // (swap/ledger.h: reconcile), or hold the peer in contempt and refuse to exchange.
  MismatchPolicy on_ledger_mismatch = MismatchPolicy::kReconcile;
  // Need and have lists are re-sent at a random period in [0.5, 1.5] x this.
  uint32_t list_refresh_s = 60;
  // Peer IDs (multihash bytes): always served / never served, connections closed.
  std::vector<Bytes> trusted;
  std::vector<Bytes> blacklist;

  StrategyParams strategy() const { return {.m = m, .n = n}; }
};

// InvalidArgument naming the key ("swap.m must be > 1 ...").
Status validate(const Config& c);
// "ignore" | "blacklist"; InvalidArgument otherwise.
Result<ChallengeFailure> parse_challenge_failure(std::string_view s);
// "reconcile" | "contempt"; InvalidArgument otherwise.
Result<MismatchPolicy> parse_mismatch_policy(std::string_view s);

using Time = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Time now() const = 0;          // for periods and timeouts
  virtual uint64_t unix_ms() const = 0;  // stored in the ledger database
};

class SystemClock final : public Clock {
 public:
  Time now() const override { return std::chrono::steady_clock::now(); }
  uint64_t unix_ms() const override;
};

// Starts at an arbitrary instant; moves only when advanced.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(uint64_t unix_ms = 1'700'000'000'000) : unix_base_(unix_ms) {}
  Time now() const override { return Time(std::chrono::nanoseconds(elapsed_ns_.load())); }
  uint64_t unix_ms() const override {
    return unix_base_ + uint64_t(elapsed_ns_.load() / 1'000'000);
  }
  void advance(std::chrono::nanoseconds d) { elapsed_ns_ += d.count(); }

 private:
  uint64_t unix_base_;
  std::atomic<int64_t> elapsed_ns_{1'000'000'000};
};

}  // namespace idn::swap
