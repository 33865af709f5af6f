// RecentCount: events within a sliding window in bounded memory. Exact where events are more
// than window/32 apart; an event may stop counting up to window/32 early, never late; a flood
// keeps at most 33 runs. Time is passed in.
#include "ise/recent_count.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace idn::ise {
namespace {

using namespace std::chrono_literals;
using Time = RecentCount::Time;
const Time t0 = Time(1000s);

TEST(RecentCount, CountsEventsWithinTheWindowAndDropsThemOneByOne) {
  RecentCount c(32s);  // runs of 1 s
  EXPECT_TRUE(c.empty());
  EXPECT_EQ(c.count(t0), 0u);
  for (auto t : {t0, t0 + 5s, t0 + 10s, t0 + 20s}) c.add(t);
  EXPECT_EQ(c.count(t0 + 20s), 4u);
  EXPECT_EQ(c.peek(t0 + 31s), 4u);
  EXPECT_EQ(c.peek(t0 + 32s), 3u);  // t0 is 32 s old: out
  EXPECT_EQ(c.count(t0 + 37s), 2u);
  EXPECT_EQ(c.count(t0 + 51s), 1u);
  EXPECT_EQ(c.count(t0 + 52s), 0u);
  EXPECT_TRUE(c.empty());
}

TEST(RecentCount, AFloodKeepsBoundedRunsAndStopsCountingAtMostOneRunEarly) {
  RecentCount c(32s);
  // 100 events a second for a minute: 6,000 events, never more than 33 runs held.
  uint64_t added = 0;
  size_t most_runs = 0;
  for (int ms = 0; ms < 60'000; ms += 10) {
    c.add(t0 + std::chrono::milliseconds(ms));
    ++added;
    most_runs = std::max(most_runs, c.runs());
  }
  EXPECT_LE(most_runs, size_t(RecentCount::kRuns) + 1);
  const Time end = t0 + 60s;
  // Exactly: the events of the last 32 s, 3,200 (those after end - 32 s).
  const uint64_t exact = 3200;
  const uint64_t n = c.peek(end);
  EXPECT_LE(n, exact);
  EXPECT_GE(n, exact - 100);  // at most one run (1 s, 100 events) early
  EXPECT_EQ(c.count(end), n);
  EXPECT_EQ(c.count(end + 32s), 0u);
  EXPECT_LT(n, added);
}

TEST(RecentCount, AnEarlierTimeJoinsTheNewestRun) {
  RecentCount c(10s);
  c.add(t0 + 5s);
  c.add(t0);  // out of order: counted with the run at t0 + 5 s
  EXPECT_EQ(c.count(t0 + 14s), 2u);
  EXPECT_EQ(c.count(t0 + 15s), 0u);
}

}  // namespace
}  // namespace idn::ise
