#include "ise/recent_count.h"

#include <algorithm>

namespace idn::ise {

void RecentCount::add(Time now) {
  const auto slot =
      std::max<std::chrono::nanoseconds>(window_ / kRuns, std::chrono::nanoseconds(1));
  if (!runs_.empty() && now - runs_.back().first < slot) {
    ++runs_.back().n;
  } else {
    // Runs older than the window go first, so the vector stays within kRuns + 1.
    (void)count(now);
    runs_.push_back({now, 1});
  }
  ++total_;
}

uint64_t RecentCount::count(Time now) {
  auto fresh = std::find_if(runs_.begin(), runs_.end(),
                            [&](const Run& r) { return now - r.first < window_; });
  for (auto it = runs_.begin(); it != fresh; ++it) total_ -= it->n;
  runs_.erase(runs_.begin(), fresh);
  return total_;
}

uint64_t RecentCount::peek(Time now) const {
  uint64_t n = total_;
  for (const Run& r : runs_) {
    if (now - r.first < window_) break;
    n -= r.n;
  }
  return n;
}

}  // namespace idn::ise
