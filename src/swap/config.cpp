#include "swap/config.h"

#include <cmath>
#include <string>

#include "protocol/messages.h"

namespace idn::swap {

static_assert(2 * kMaxCheckpointEvery <= protocol::DecodeLimits{}.max_evidence_receipts,
              "an Open's evidence must hold the receipts of two checkpoint windows");

Status validate(const Config& c) {
  Status st = validate(c.strategy());
  if (!st.is_ok()) return Status::invalid_argument("[swap] " + st.message());
  if (!std::isfinite(c.challenge_rate) || c.challenge_rate < 0 || c.challenge_rate > 1) {
    return Status::invalid_argument("[swap] challenge_rate must be within 0..1");
  }
  if (c.probation_challenges > 1000) {
    return Status::invalid_argument("[swap] probation_challenges must be within 0..1000");
  }
  if (c.list_refresh_s == 0) return Status::invalid_argument("[swap] list_refresh_s must be > 0");
  if (c.commit_interval_ms > 60'000) {
    return Status::invalid_argument("[swap] commit_interval_ms must be within 0..60000");
  }
  // Our receipts leave after our commit: a provider with our settings must get them before it
  // counts the work unpaid.
  if (c.commit_interval_ms >= c.receipt_timeout_ms) {
    return Status::invalid_argument(
        "[swap] commit_interval_ms must be below receipt_timeout_ms (receipts leave only after "
        "the commit that holds them)");
  }
  if (c.checkpoint_every == 0 || c.checkpoint_every > kMaxCheckpointEvery) {
    return Status::invalid_argument(
        "[swap] checkpoint_every must be within 1.." + std::to_string(kMaxCheckpointEvery) +
        " (an Open's evidence carries the receipts after the last checkpoint, at most 4096)");
  }
  if (c.idle_close_s == 0) return Status::invalid_argument("[swap] idle_close_s must be > 0");
  for (const auto& t : c.trusted) {
    for (const auto& b : c.blacklist) {
      if (t == b) return Status::invalid_argument("[swap] a peer is both trusted and blacklisted");
    }
  }
  return Status::ok();
}

Result<ChallengeFailure> parse_challenge_failure(std::string_view s) {
  if (s == "ignore") return ChallengeFailure::kIgnore;
  if (s == "blacklist") return ChallengeFailure::kBlacklist;
  return Status::invalid_argument(
      "[swap] on_challenge_failure must be \"ignore\" or "
      "\"blacklist\", not \"" +
      std::string(s) + "\"");
}

Result<MismatchPolicy> parse_mismatch_policy(std::string_view s) {
  if (s == "reconcile") return MismatchPolicy::kReconcile;
  if (s == "contempt") return MismatchPolicy::kContempt;
  return Status::invalid_argument(
      "[swap] on_ledger_mismatch must be \"reconcile\" or "
      "\"contempt\", not \"" +
      std::string(s) + "\"");
}

uint64_t SystemClock::unix_ms() const {
  return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count());
}

}  // namespace idn::swap
