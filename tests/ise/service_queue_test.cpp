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

TEST(ServiceQueue, EachPeerCountsWithItsVolume) {
  // s = Σ w_i · c_i: c_i is the count in i's need list or the requests we saw from i within
  // need_idle, whichever is larger; a list without counts (an older peer) counts 1 each.
  ServiceQueue q(config(1));
  q.set_need_list(id('a'), {id('X'), id('Y')}, {10, 1});
  q.set_need_list(id('b'), {id('Y')});  // no counts
  q.set_need_list(id('c'), {id('Y')}, {2});
  auto r = q.ranking(weights({{'a', 0.5}}), t0);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].service, id('X'));
  EXPECT_DOUBLE_EQ(r[0].score, 5.0);
  EXPECT_EQ(r[0].requests, 10u);
  EXPECT_EQ(r[0].peers, 1u);
  EXPECT_DOUBLE_EQ(r[1].score, 0.5 + 1 + 2);
  EXPECT_EQ(r[1].requests, 4u);
  EXPECT_EQ(r[1].peers, 3u);
  // b's four requests for Y within need_idle outcount its list's 1; c's one does not its 2.
  for (auto t : {t0 - 20s, t0 - 10s, t0 - 5s, t0}) q.on_request(id('b'), id('Y'), t);
  q.on_request(id('c'), id('Y'), t0);
  r = q.ranking(weights({{'a', 0.5}}), t0);
  EXPECT_EQ(r[0].service, id('Y'));
  EXPECT_DOUBLE_EQ(r[0].score, 0.5 + 4 + 2);
  // Requests older than need_idle (30 s) stop counting one by one.
  r = q.ranking(weights({{'a', 0.5}}), t0 + 21s);
  EXPECT_DOUBLE_EQ(find(r, 'Y')->score, 0.5 + 2 + 2);
  // Counts of another length than the list are ignored (1 each); duplicates keep the larger.
  q.set_need_list(id('a'), {id('X'), id('Y')}, {7});
  q.set_need_list(id('c'), {id('Y'), id('Y')}, {3, 5});
  r = q.ranking({}, t0 + 40s);
  EXPECT_DOUBLE_EQ(find(r, 'X')->score, 1);
  EXPECT_DOUBLE_EQ(find(r, 'Y')->score, 1 + 1 + 5);
}

TEST(ServiceQueue, AStatedCountWeighsAtMostMaxNeedCountWhileSeenRequestsCountWhole) {
  // A need list's count is the peer's word; a peer claiming a million requests must not outvote
  // everyone else. What we saw it request ourselves counts whole.
  QueueConfig c = config(1);
  c.max_need_count = 50;
  ServiceQueue q(c);
  q.set_need_list(id('a'), {id('X')}, {1'000'000});
  for (int p = 'b'; p < 'b' + 60; ++p) q.set_need_list(id(char(p)), {id('Y')}, {1});
  auto r = q.ranking({}, t0);
  EXPECT_DOUBLE_EQ(find(r, 'X')->score, 50);
  EXPECT_EQ(find(r, 'X')->requests, 50u);
  EXPECT_DOUBLE_EQ(find(r, 'Y')->score, 60);
  EXPECT_EQ(r[0].service, id('Y'));
  // 70 requests seen from a within need_idle outcount its capped claim.
  for (int i = 0; i < 70; ++i) q.on_request(id('a'), id('X'), t0 - std::chrono::seconds(i % 20));
  EXPECT_DOUBLE_EQ(find(q.ranking({}, t0), 'X')->score, 70);
  c.max_need_count = 0;
  EXPECT_FALSE(c.validate().is_ok());
}

TEST(ServiceQueue, AHostedServiceGivesWayOnlyToOneScoringKeepFactorTimesMore) {
  QueueConfig c = config(1);
  c.keep_factor = 1.5;
  ServiceQueue q(c);
  q.set_need_list(id('a'), {id('X')}, {10});
  for (const Bytes& s : q.plan({}, t0).start) q.started(s, t0);
  ASSERT_TRUE(q.hosted(id('X')));
  // Past T_s, Y scores 14 against X's 10: less than 1.5 times, X keeps its slot.
  q.set_need_list(id('b'), {id('Y')}, {14});
  auto plan = q.plan({}, t0 + 61s);
  EXPECT_TRUE(plan.stop.empty());
  EXPECT_TRUE(plan.start.empty());
  EXPECT_EQ(find(q.ranking({}, t0 + 61s), 'X')->why,
            "rank 1 of the top 1 (hosted: ranked at 1.5 x its score)");
  // 16 is more than 1.5 times 10: swapped.
  q.set_need_list(id('b'), {id('Y')}, {16});
  plan = q.plan({}, t0 + 61s);
  EXPECT_EQ(plan.stop, std::vector<Bytes>{id('X')});
  EXPECT_EQ(plan.start, std::vector<Bytes>{id('Y')});
  // Without demand a hosted service has nothing to multiply.
  q.set_need_list(id('a'), {});
  q.set_need_list(id('b'), {});
  EXPECT_EQ(q.plan({}, t0 + 61s).stop, std::vector<Bytes>{id('X')});
  c.keep_factor = 0.5;
  EXPECT_FALSE(c.validate().is_ok());
}

TEST(ServiceQueue, PerProviderDividesDemandByTheProvidersWeKnow) {
  QueueConfig c = config(1);
  c.per_provider = true;
  ServiceQueue q(c);
  q.set_need_list(id('a'), {id('X'), id('Y')}, {12, 5});
  EXPECT_EQ(q.plan({}, t0).start, std::vector<Bytes>{id('X')});
  // Three peers already host X: 12 / 4 = 3 per provider, Y's 5 / 1 is more.
  q.set_providers({{id('X'), 3}});
  auto r = q.ranking({}, t0);
  EXPECT_EQ(r[0].service, id('Y'));
  EXPECT_DOUBLE_EQ(find(r, 'X')->score, 3);
  EXPECT_EQ(find(r, 'X')->providers, 3u);
  EXPECT_EQ(find(r, 'X')->requests, 12u);
  EXPECT_EQ(q.plan({}, t0).start, std::vector<Bytes>{id('Y')});
}

TEST(NeedLog, CountsUsesWithinNeedIdleAndSendsOnASetChangeOrAFactorOfTwo) {
  NeedLog log(30s);
  auto none = [](const Bytes&) { return false; };
  EXPECT_FALSE(log.to_send(t0, none));  // empty, as last sent (nothing)
  log.used(id('Y'), t0);
  log.used(id('X'), t0);
  auto l = log.to_send(t0, none);  // the set changed
  ASSERT_TRUE(l);
  EXPECT_EQ(l->services, (std::vector<Bytes>{id('X'), id('Y')}));  // byte order
  EXPECT_EQ(l->counts, (std::vector<uint32_t>{1, 1}));
  EXPECT_FALSE(log.to_send(t0, none));
  log.used(id('X'), t0 + 1s);  // X: 2, twice what was sent
  l = log.to_send(t0 + 1s, none);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->counts, (std::vector<uint32_t>{2, 1}));
  log.used(id('X'), t0 + 2s);  // 3: less than twice 2, not sent
  EXPECT_FALSE(log.to_send(t0 + 2s, none));
  EXPECT_EQ(log.list(t0 + 2s, none).counts, (std::vector<uint32_t>{3, 1}));
  // What we host leaves the list (a set change).
  l = log.to_send(t0 + 2s, [](const Bytes& s) { return s == id('X'); });
  ASSERT_TRUE(l);
  EXPECT_EQ(l->services, std::vector<Bytes>{id('Y')});
  EXPECT_EQ(log.sent(), *l);
  // Uses older than need_idle fade: at t0 + 30 s Y's only use and X's first have gone.
  l = log.to_send(t0 + 30s, none);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->services, std::vector<Bytes>{id('X')});
  EXPECT_EQ(l->counts, std::vector<uint32_t>{2});
  log.clear();
  EXPECT_TRUE(log.list(t0 + 30s, none).services.empty());
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
