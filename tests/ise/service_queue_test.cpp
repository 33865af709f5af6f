// The ISE's priority queue (§7.4): s = Σ w_i over the peers that need a service, the top k
// hosted, T_s before a swap-out, pinned services always, request demand fading after
// need_idle. Time is passed in, so every period is exercised without waiting.
#include "ise/service_queue.h"

#include <gtest/gtest.h>

#include <map>

namespace idn::ise {
namespace {

using namespace std::chrono_literals;

Bytes id(char c) {
  return Bytes{uint8_t(c)};
}

const Time t0 = Time(1000s);

QueueConfig config(size_t k) {
  QueueConfig c;
  c.k = k;
  c.min_service_period = 60s;
  c.need_idle = 30s;
  return c;
}

ServiceQueue::Weight weights(std::map<char, double> w) {
  return [w](const Bytes& peer) {
    auto it = w.find(char(peer.at(0)));
    return it == w.end() ? 1.0 : it->second;
  };
}

const QueueEntry* find(const std::vector<QueueEntry>& r, char service) {
  for (const auto& e : r)
    if (e.service == id(service)) return &e;
  return nullptr;
}

TEST(ServiceQueue, ScoreIsTheSumOfTheWeightsOfThePeersThatNeedIt) {
  ServiceQueue q(config(1));
  q.set_need_list(id('a'), {id('X'), id('Y')});
  q.set_need_list(id('b'), {id('X')});
  q.on_request(id('b'), id('X'), t0);  // the same peer again: counted once
  q.on_request(id('c'), id('Y'), t0);
  auto r = q.ranking(weights({{'a', 0.5}, {'b', 2.0}, {'c', 0.25}}), t0);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].service, id('X'));
  EXPECT_DOUBLE_EQ(r[0].score, 2.5);
  EXPECT_EQ(r[0].peers, 2u);
  EXPECT_EQ(r[1].service, id('Y'));
  EXPECT_DOUBLE_EQ(r[1].score, 0.75);
  EXPECT_EQ(r[1].peers, 2u);
  EXPECT_EQ(r[0].why, "rank 1 of the top 1");
  EXPECT_EQ(r[1].why, "rank 2, below the top 1");
}

TEST(ServiceQueue, ASharedNeedListCountsLikeACopiedOneInAnyOrder) {
  ServiceQueue q(config(1));
  const BytesList unsorted{id('Y'), id('X'), id('Y')}, sorted{id('X'), id('Y')};
  q.share_need_list(id('a'), unsorted);  // sorted and deduplicated into a copy
  q.share_need_list(id('b'), sorted);    // kept as it is
  q.share_need_list(id('c'), sorted);
  auto r = q.ranking(weights({}), t0);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].service, id('X'));
  EXPECT_EQ(r[1].service, id('Y'));
  EXPECT_EQ(r[0].peers, 3u);
  EXPECT_EQ(r[1].peers, 3u);
  q.share_need_list(id('a'), BytesList{});
  q.share_need_list(id('b'), BytesList{});
  EXPECT_EQ(q.ranking(weights({}), t0)[0].peers, 1u);
}

TEST(ServiceQueue, OnePeerWeOweOutranksTwoStrangers) {
  ServiceQueue q(config(1));
  q.set_need_list(id('a'), {id('X')});
  q.set_need_list(id('b'), {id('Y')});
  q.set_need_list(id('c'), {id('Y')});
  auto plan = q.plan(weights({{'a', 3.0}}), t0);
  EXPECT_EQ(plan.start, std::vector<Bytes>{id('X')});
  EXPECT_TRUE(plan.stop.empty());
}

TEST(ServiceQueue, TiesAreBrokenByServiceIdSoEveryNodeDecidesAlike) {
  ServiceQueue q(config(2));
  for (char s : {'Z', 'B', 'M'}) q.set_need_list(Bytes{uint8_t(s), 1}, {id(s)});
  auto plan = q.plan({}, t0);
  EXPECT_EQ(plan.start, (std::vector<Bytes>{id('B'), id('M')}));
}

TEST(ServiceQueue, HostsTheTopKWithDemandAndNothingWithout) {
  ServiceQueue q(config(2));
  EXPECT_TRUE(q.plan({}, t0).start.empty());
  q.set_need_list(id('a'), {id('X')});
  auto plan = q.plan({}, t0);
  EXPECT_EQ(plan.start, std::vector<Bytes>{id('X')});
  q.started(id('X'), t0);
  EXPECT_TRUE(q.plan({}, t0).start.empty());  // already hosted
  EXPECT_EQ(q.hosted_on_demand(), 1u);
}

TEST(ServiceQueue, AServiceThatLeftTheTopKStaysForTsThenIsSwapped) {
  ServiceQueue q(config(1));
  q.set_need_list(id('a'), {id('X')});
  q.started(id('X'), t0);
  // Demand moves to Y: X is below the top 1 but within T_s, and holds the only slot.
  q.set_need_list(id('a'), {});
  q.set_need_list(id('b'), {id('Y')});
  auto plan = q.plan({}, t0 + 59s);
  EXPECT_TRUE(plan.stop.empty());
  EXPECT_TRUE(plan.start.empty());
  auto r = q.ranking({}, t0 + 59s);
  EXPECT_EQ(find(r, 'X')->why, "no demand left; kept 1 s more (min_service_period_s)");
  EXPECT_EQ(find(r, 'Y')->why,
            "rank 1 of the top 1; no free slot: the hosted services are within "
            "min_service_period_s");
  // T_s has passed: X goes and Y comes in the same plan.
  plan = q.plan({}, t0 + 60s);
  EXPECT_EQ(plan.stop, std::vector<Bytes>{id('X')});
  EXPECT_EQ(plan.start, std::vector<Bytes>{id('Y')});
}

TEST(ServiceQueue, AServiceStillInTheTopKIsNeverStopped) {
  ServiceQueue q(config(1));
  q.set_need_list(id('a'), {id('X')});
  q.started(id('X'), t0);
  auto plan = q.plan({}, t0 + 1h);
  EXPECT_TRUE(plan.stop.empty());
  EXPECT_TRUE(plan.start.empty());
}

TEST(ServiceQueue, PinnedServicesAlwaysRunAndDoNotCountTowardK) {
  ServiceQueue q(config(1));
  q.pin(id('P'));
  q.set_need_list(id('a'), {id('X')});
  auto plan = q.plan({}, t0);
  EXPECT_EQ(plan.start, (std::vector<Bytes>{id('X'), id('P')}));
  q.started(id('P'), t0);
  q.started(id('X'), t0);
  EXPECT_EQ(q.hosted_on_demand(), 1u);
  q.set_need_list(id('a'), {});
  plan = q.plan({}, t0 + 1h);
  EXPECT_EQ(plan.stop, std::vector<Bytes>{id('X')});  // never P
  EXPECT_EQ(find(q.ranking({}, t0 + 1h), 'P')->why, "pinned by the operator (host = [...])");
}

TEST(ServiceQueue, RequestDemandFadesAfterNeedIdle) {
  ServiceQueue q(config(1));
  q.on_request(id('a'), id('X'), t0);
  EXPECT_EQ(q.plan({}, t0 + 29s).start, std::vector<Bytes>{id('X')});
  EXPECT_TRUE(q.plan({}, t0 + 30s).start.empty());
  EXPECT_TRUE(q.ranking({}, t0 + 30s).empty());
  // A need list does not fade: it lasts until the peer replaces it or leaves.
  q.set_need_list(id('a'), {id('X')});
  EXPECT_EQ(q.plan({}, t0 + 10h).start, std::vector<Bytes>{id('X')});
  q.forget_peer(id('a'));
  EXPECT_TRUE(q.plan({}, t0 + 10h).start.empty());
}

TEST(ServiceQueue, AStartThatFailedIsPlannedAgain) {
  ServiceQueue q(config(1));
  q.set_need_list(id('a'), {id('X')});
  EXPECT_EQ(q.plan({}, t0).start, std::vector<Bytes>{id('X')});
  // The node could not start it and reported nothing: still wanted, still planned.
  EXPECT_EQ(q.plan({}, t0 + 1s).start, std::vector<Bytes>{id('X')});
  q.started(id('X'), t0 + 1s);
  q.stopped(id('X'));
  EXPECT_EQ(q.plan({}, t0 + 2s).start, std::vector<Bytes>{id('X')});
}

TEST(ServiceQueue, AServiceTheNodeCannotHostLeavesItsSlotToTheNext) {
  ServiceQueue q(config(1));
  q.set_need_list(id('a'), {id('X'), id('Y')});
  q.set_need_list(id('b'), {id('X')});
  EXPECT_EQ(q.plan({}, t0).start, std::vector<Bytes>{id('X')});
  q.set_unhostable({id('X')}, "too big");
  EXPECT_EQ(q.plan({}, t0).start, std::vector<Bytes>{id('Y')});
  auto r = q.ranking({}, t0);
  EXPECT_EQ(find(r, 'X')->why, "this node cannot host it: too big");
  EXPECT_EQ(find(r, 'Y')->why, "rank 1 of the top 1");
  q.set_unhostable({}, "");
  EXPECT_EQ(q.plan({}, t0).start, std::vector<Bytes>{id('X')});
}

TEST(ServiceQueue, ASmallerKStopsTheLowestRankedOnceTheirPeriodIsOver) {
  ServiceQueue q(config(2));
  q.set_need_list(id('a'), {id('X'), id('Y')});
  q.set_need_list(id('b'), {id('X')});
  for (const Bytes& s : q.plan({}, t0).start) q.started(s, t0);
  EXPECT_EQ(q.hosted_on_demand(), 2u);
  q.set_k(1);
  EXPECT_TRUE(q.plan({}, t0 + 30s).stop.empty());  // within T_s (60 s)
  auto plan = q.plan({}, t0 + 61s);
  EXPECT_EQ(plan.stop, std::vector<Bytes>{id('Y')});
  EXPECT_TRUE(plan.start.empty());
  q.set_k(0);  // taken as 1
  EXPECT_EQ(q.config().k, 1u);
}

TEST(ServiceQueue, ConfigIsChecked) {
  EXPECT_FALSE(config(0).validate().is_ok());
  QueueConfig c = config(1);
  c.need_idle = 0s;
  EXPECT_FALSE(c.validate().is_ok());
  c = config(1);
  c.min_service_period = -1s;
  EXPECT_FALSE(c.validate().is_ok());
  EXPECT_TRUE(config(3).validate().is_ok());
}

}  // namespace
}  // namespace idn::ise
