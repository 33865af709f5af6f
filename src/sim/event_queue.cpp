#include "sim/event_queue.h"

#include <algorithm>

namespace idn::sim {

void EventQueue::at(Time t, std::function<void()> fn) {
  uint32_t slot;
  if (free_.empty()) {
    slot = uint32_t(slots_.size());
    slots_.push_back(std::move(fn));
  } else {
    slot = free_.back();
    free_.pop_back();
    slots_[slot] = std::move(fn);
  }
  heap_.push_back({std::max(t, now_), seq_++, slot});
  std::push_heap(heap_.begin(), heap_.end(), later);
}

uint64_t EventQueue::run_until(Time end) {
  uint64_t ran = 0;
  while (!heap_.empty() && heap_.front().t <= end) {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    const Entry e = heap_.back();
    heap_.pop_back();
    now_ = e.t;
    // Moved out first: the event may schedule others, which can reuse or grow slots_.
    std::function<void()> fn = std::move(slots_[e.slot]);
    slots_[e.slot] = nullptr;
    free_.push_back(e.slot);
    fn();
    ++ran;
  }
  now_ = std::max(now_, end);
  return ran;
}

}  // namespace idn::sim
