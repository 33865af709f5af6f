#include "routing/rate_limiter.h"

#include <algorithm>

namespace idn::routing {

bool RateLimiter::allow(const std::string& peer, Clock::time_point now) {
  std::lock_guard lk(mu_);
  auto it = buckets_.find(peer);
  if (it == buckets_.end()) {
    if (max_peers_ > 0 && buckets_.size() >= max_peers_) {
      buckets_.erase(lru_.back());
      lru_.pop_back();
    }
    lru_.push_front(peer);
    it = buckets_.emplace(peer, Bucket{burst_, now, lru_.begin()}).first;
  } else {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
  }
  Bucket& b = it->second;
  double elapsed = std::chrono::duration<double>(now - b.last).count();
  if (elapsed > 0) {
    b.tokens = std::min(burst_, b.tokens + elapsed * rate_);
    b.last = now;
  }
  if (b.tokens < 1.0) return false;
  b.tokens -= 1.0;
  return true;
}

size_t RateLimiter::tracked_peers() const {
  std::lock_guard lk(mu_);
  return buckets_.size();
}

}  // namespace idn::routing
