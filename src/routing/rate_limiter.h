// Token buckets keyed by remote peer (address string), bounded in how many peers it tracks,
// so one DHT node cannot make us store and verify records faster than a set rate.
#pragma once

#include <chrono>
#include <cstddef>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

namespace idn::routing {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  RateLimiter(double rate_per_second, double burst, size_t max_peers)
      : rate_(rate_per_second), burst_(burst), max_peers_(max_peers) {}
  // Takes one token from `peer`'s bucket; false when it is empty. Thread-safe.
  bool allow(const std::string& peer, Clock::time_point now = Clock::now());
  size_t tracked_peers() const;

 private:
  struct Bucket {
    double tokens;
    Clock::time_point last;
    std::list<std::string>::iterator lru;
  };
  double rate_, burst_;
  size_t max_peers_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
  std::list<std::string> lru_;  // most recently seen first
};

}  // namespace idn::routing
