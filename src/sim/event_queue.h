// A deterministic discrete-event queue for the simulators (sim/): events run in time order,
// ties in the order they were scheduled, so one seed gives one history. SimClock is the
// swap::Clock the simulated peers' ComputeSwap instances read. Not thread-safe: one owner.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include "swap/config.h"

namespace idn::sim {

using Time = swap::Time;
using Duration = std::chrono::nanoseconds;

class EventQueue {
 public:
  explicit EventQueue(Time start) : now_(start), start_(start) {}
  Time now() const { return now_; }
  Time start() const { return start_; }
  // Schedules `fn` at `t` (at now() if `t` is earlier).
  void at(Time t, std::function<void()> fn);
  void after(Duration d, std::function<void()> fn) { at(now_ + d, std::move(fn)); }
  // Runs events, moving now() to each, until none is left at or before `end`; now() ends at
  // `end`. Returns how many ran.
  uint64_t run_until(Time end);
  size_t pending() const { return heap_.size(); }

 private:
  // The heap holds small entries (moved on every push and pop); the callables stay put in
  // slots_, reused through free_.
  struct Entry {
    Time t;
    uint64_t seq;
    uint32_t slot;
  };
  // std::push_heap keeps the greatest first: "greater" is earlier, then scheduled first.
  static bool later(const Entry& a, const Entry& b) {
    return a.t != b.t ? a.t > b.t : a.seq > b.seq;
  }
  std::vector<Entry> heap_;
  std::vector<std::function<void()>> slots_;
  std::vector<uint32_t> free_;
  Time now_, start_;
  uint64_t seq_ = 0;
};

// Simulated time for swap/: now() is the queue's; unix_ms() counts from `epoch_unix_ms` at the
// queue's start.
class SimClock final : public swap::Clock {
 public:
  SimClock(const EventQueue& q, uint64_t epoch_unix_ms) : q_(q), epoch_(epoch_unix_ms) {}
  Time now() const override { return q_.now(); }
  uint64_t unix_ms() const override {
    return epoch_ +
           uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(q_.now() - q_.start())
                        .count());
  }

 private:
  const EventQueue& q_;
  uint64_t epoch_;
};

}  // namespace idn::sim
