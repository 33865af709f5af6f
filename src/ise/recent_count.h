// How many events fell within a sliding window (the ISE's c_i: requests within need_idle), in
// bounded memory: events are kept as runs, an event joining the newest run while that run began
// less than window/kRuns ago, so at most kRuns + 1 runs live whatever the rate. A run leaves
// the count when its first event is `window` old: an event may stop counting up to window/kRuns
// early, never late. Threading: not thread-safe; one owner.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace idn::ise {

class RecentCount {
 public:
  using Time = std::chrono::steady_clock::time_point;
  static constexpr int kRuns = 32;

  explicit RecentCount(std::chrono::nanoseconds window) : window_(window) {}

  // One event at `now` (times do not go back; an earlier one counts as at the newest run).
  void add(Time now);
  // Events within the window at `now`; drops the runs that left it.
  uint64_t count(Time now);
  // count() without dropping anything (for a const read; same value).
  uint64_t peek(Time now) const;
  bool empty() const { return runs_.empty(); }
  // Runs held: at most kRuns + 1.
  size_t runs() const { return runs_.size(); }

 private:
  struct Run {
    Time first;
    uint64_t n;
  };
  std::chrono::nanoseconds window_;
  std::vector<Run> runs_;  // oldest first
  uint64_t total_ = 0;
};

}  // namespace idn::ise
