#include "sim/event_queue.h"

#include <algorithm>

namespace idn::sim {

void EventQueue::at(Time t, std::function<void()> fn) {
  heap_.push_back({std::max(t, now_), seq_++, std::move(fn)});
  std::push_heap(heap_.begin(), heap_.end(), later);
}

uint64_t EventQueue::run_until(Time end) {
  uint64_t ran = 0;
  while (!heap_.empty() && heap_.front().t <= end) {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    Event e = std::move(heap_.back());
    heap_.pop_back();
    now_ = e.t;
    e.fn();
    ++ran;
  }
  now_ = std::max(now_, end);
  return ran;
}

}  // namespace idn::sim
