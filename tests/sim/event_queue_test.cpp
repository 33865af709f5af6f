// The simulators' event queue: time order, ties in scheduling order, events scheduled from
// events, and run_until's bound.
#include "sim/event_queue.h"

#include <gtest/gtest.h>

#include <string>

namespace idn::sim {
namespace {

using namespace std::chrono_literals;

TEST(EventQueue, RunsInTimeOrderAndTiesInSchedulingOrder) {
  EventQueue q(Time{} + 1h);
  std::string log;
  q.after(30ms, [&] { log += "c"; });
  q.after(10ms, [&] { log += "a"; });
  q.after(30ms, [&] { log += "d"; });
  q.after(20ms, [&] {
    log += "b";
    q.after(0ms, [&] { log += "B"; });  // same instant, after those already due then
  });
  EXPECT_EQ(q.run_until(q.now() + 25ms), 3u);
  EXPECT_EQ(log, "abB");
  EXPECT_EQ(q.now(), q.start() + 25ms);
  EXPECT_EQ(q.run_until(q.now() + 1s), 2u);
  EXPECT_EQ(log, "abBcd");
  EXPECT_EQ(q.pending(), 0u);
}

TEST(EventQueue, ThePastIsNowAndTheClockFollowsTheQueue) {
  EventQueue q(Time{} + 1h);
  SimClock clock(q, 1'000'000);
  Time seen{};
  q.after(2s, [&] {
    q.at(q.start(), [&] { seen = clock.now(); });  // scheduled in the past: runs now
  });
  q.run_until(q.start() + 5s);
  EXPECT_EQ(seen, q.start() + 2s);
  EXPECT_EQ(clock.unix_ms(), 1'005'000u);
}

}  // namespace
}  // namespace idn::sim
