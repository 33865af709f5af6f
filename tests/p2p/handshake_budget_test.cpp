// The inbound-handshake budget: its rules with an injected clock, then a Host that applies
// them to real loopback connections that stall inside the handshake.
#include "p2p/handshake_budget.h"

#include <gtest/gtest.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "p2p/host.h"
#include "p2p/multistream.h"
#include "p2p_test_util.h"

namespace idn::p2p {
namespace {

using namespace std::chrono_literals;
using boost::asio::ip::make_address;
using testing::Loop;
using testing::loopback;
using testing::make_host;
using T0 = std::chrono::steady_clock::time_point;

HandshakeLimits limits(size_t total, size_t per_address, std::chrono::milliseconds after = 2s,
                       std::chrono::milliseconds silent_after = 250ms) {
  HandshakeLimits l;
  l.max_pending = total;
  l.max_pending_per_address = per_address;
  l.evictable_after = after;
  l.silent_evictable_after = silent_after;
  return l;
}

TEST(HandshakeBudget, AnAddressOverItsBudgetIsRefusedWhileOthersAreAdmitted) {
  HandshakeBudget b(limits(64, 3));
  const T0 now{};
  for (int i = 0; i < 3; ++i) EXPECT_NE(b.admit(make_address("127.0.0.1"), now, {}).ticket, 0u);
  auto over = b.admit(make_address("127.0.0.1"), now, {});
  EXPECT_EQ(over.ticket, 0u);
  EXPECT_EQ(over.refused, HandshakeRefusal::kPerAddress);
  EXPECT_NE(b.admit(make_address("127.0.0.2"), now, {}).ticket, 0u);
  EXPECT_EQ(b.pending(), 4u);
  EXPECT_EQ(b.pending_from(make_address("127.0.0.1")), 3u);
  EXPECT_EQ(b.stats().refused_per_address, 1u);
  EXPECT_EQ(b.stats().pending, 4u);
}

TEST(HandshakeBudget, ReleasingAHandshakeFreesItsSlot) {
  HandshakeBudget b(limits(64, 1));
  const T0 now{};
  auto a = b.admit(make_address("10.0.0.1"), now, {});
  ASSERT_NE(a.ticket, 0u);
  EXPECT_EQ(b.admit(make_address("10.0.0.1"), now, {}).ticket, 0u);
  EXPECT_TRUE(b.release(a.ticket));
  EXPECT_FALSE(b.release(a.ticket));  // once only
  EXPECT_NE(b.admit(make_address("10.0.0.1"), now, {}).ticket, 0u);
  EXPECT_EQ(b.pending(), 1u);
}

TEST(HandshakeBudget, IPv6CountsPer56AndMappedIPv4AsIPv4) {
  HandshakeBudget b(limits(64, 2));
  const T0 now{};
  EXPECT_NE(b.admit(make_address("2001:db8:0:1::1"), now, {}).ticket, 0u);
  EXPECT_NE(b.admit(make_address("2001:db8:0:2::99"), now, {}).ticket, 0u);  // same /56
  EXPECT_EQ(b.admit(make_address("2001:db8:0:ff::5"), now, {}).refused,
            HandshakeRefusal::kPerAddress);
  EXPECT_NE(b.admit(make_address("2001:db8:0:100::1"), now, {}).ticket, 0u);  // next /56
  EXPECT_EQ(address_group(make_address("::ffff:192.0.2.7")), "192.0.2.7");
  EXPECT_EQ(address_group(make_address("2001:db8:0:1::1")),
            address_group(make_address("2001:db8::")));
}

TEST(HandshakeBudget, FullBudgetRefusesWhileEveryHandshakeIsYoung) {
  HandshakeBudget b(limits(4, 4, 2s));
  const T0 t0{};
  int evictions = 0;
  for (int i = 1; i <= 4; ++i) {
    auto a = b.admit(make_address("10.0.0." + std::to_string(i)), t0, [&] { ++evictions; });
    ASSERT_NE(a.ticket, 0u);
    if (i > 1) b.mark_progress(a.ticket);
  }
  // 10.0.0.1 never sent a proposal: evictable from 250 ms, not before.
  EXPECT_EQ(b.admit(make_address("10.0.0.8"), t0 + 249ms, {}).refused, HandshakeRefusal::kTotal);
  ASSERT_NE(b.admit(make_address("10.0.0.8"), t0 + 250ms, {}).ticket, 0u);
  EXPECT_EQ(evictions, 1);
  evictions = 0;
  // The others made progress: not evictable before 2 s (the newcomer is 1.75 s old too).
  auto r = b.admit(make_address("10.0.0.9"), t0 + 1999ms, {});
  EXPECT_EQ(r.ticket, 0u);
  EXPECT_EQ(r.refused, HandshakeRefusal::kTotal);
  EXPECT_EQ(evictions, 0);
  EXPECT_EQ(b.stats().refused_total, 2u);
}

TEST(HandshakeBudget, FullBudgetEvictsTheOldestStalledHandshakeOfTheHeaviestAddress) {
  HandshakeBudget b(limits(4, 3, 2s));
  const T0 t0{};
  std::vector<std::string> evicted;
  auto admit = [&](const std::string& ip, T0 at, const std::string& name) {
    auto a = b.admit(make_address(ip), at, [&evicted, name] { evicted.push_back(name); });
    b.mark_progress(a.ticket);  // none silent here: the 2 s rule alone
    return a;
  };
  auto light = admit("10.0.0.1", t0, "light-oldest");  // oldest overall, but its address is light
  ASSERT_NE(light.ticket, 0u);
  ASSERT_NE(admit("10.0.0.2", t0 + 1s, "heavy-1").ticket, 0u);
  auto heavy2 = admit("10.0.0.2", t0 + 2s, "heavy-2");
  ASSERT_NE(heavy2.ticket, 0u);
  ASSERT_NE(admit("10.0.0.2", t0 + 2500ms, "heavy-3-young").ticket, 0u);
  // At t0 + 3.5 s light-oldest (3.5 s) and heavy-1 (2.5 s) are old enough; 10.0.0.2 holds
  // three handshakes, 10.0.0.1 one: heavy-1 goes.
  auto a = admit("10.0.0.3", t0 + 3500ms, "new-1");
  ASSERT_NE(a.ticket, 0u);
  EXPECT_TRUE(a.evicted_other);
  ASSERT_EQ(evicted, std::vector<std::string>{"heavy-1"});
  // Now 10.0.0.2 holds 2 (heavy-2 old enough, heavy-3 not), 10.0.0.1 one: heavy-2 goes.
  auto c = admit("10.0.0.4", t0 + 4100ms, "new-2");
  ASSERT_NE(c.ticket, 0u);
  EXPECT_EQ(evicted, (std::vector<std::string>{"heavy-1", "heavy-2"}));
  EXPECT_FALSE(b.release(heavy2.ticket));  // evicted: its slot was already given away
  EXPECT_EQ(b.pending(), 4u);
  EXPECT_EQ(b.stats().evicted, 2u);
  // One each, all old enough: the oldest handshake goes, light-oldest.
  auto d = admit("10.0.0.5", t0 + 10s, "new-3");
  ASSERT_NE(d.ticket, 0u);
  EXPECT_EQ(evicted.back(), "light-oldest");
}

TEST(HandshakeBudget, AnAddressAtItsOwnLimitIsRefusedBeforeAnyoneIsEvicted) {
  HandshakeBudget b(limits(2, 2, 1s));
  const T0 t0{};
  std::vector<int> evicted;
  ASSERT_NE(b.admit(make_address("10.0.0.1"), t0, [&] { evicted.push_back(1); }).ticket, 0u);
  ASSERT_NE(b.admit(make_address("10.0.0.1"), t0, [&] { evicted.push_back(2); }).ticket, 0u);
  // Its own budget is full too: refused before any eviction.
  EXPECT_EQ(b.admit(make_address("10.0.0.1"), t0 + 5s, {}).refused, HandshakeRefusal::kPerAddress);
  EXPECT_TRUE(evicted.empty());
  ASSERT_NE(b.admit(make_address("10.0.0.2"), t0 + 5s, {}).ticket, 0u);
  EXPECT_EQ(evicted, std::vector<int>{1});
}

TEST(HandshakeBudget, SilentHandshakesAreEvictedSoonerAndFirst) {
  HandshakeBudget b(limits(3, 3, 2s, 250ms));
  const T0 t0{};
  std::vector<std::string> evicted;
  auto admit = [&](const std::string& ip, T0 at, const std::string& name) {
    return b.admit(make_address(ip), at, [&evicted, name] { evicted.push_back(name); });
  };
  auto talking = admit("10.0.0.1", t0, "talking");
  b.mark_progress(talking.ticket);
  ASSERT_NE(admit("10.0.0.2", t0 + 5s, "silent-old").ticket, 0u);
  ASSERT_NE(admit("10.0.0.2", t0 + 5100ms, "silent-young").ticket, 0u);
  // At 5.3 s "talking" (5.3 s) and "silent-old" (300 ms) may go: the silent one goes first.
  ASSERT_NE(admit("10.0.0.3", t0 + 5300ms, "new-1").ticket, 0u);
  EXPECT_EQ(evicted, std::vector<std::string>{"silent-old"});
  // Then "silent-young" (300 ms) before "talking", although "talking" is older.
  ASSERT_NE(admit("10.0.0.4", t0 + 5400ms, "new-2").ticket, 0u);
  EXPECT_EQ(evicted, (std::vector<std::string>{"silent-old", "silent-young"}));
  // new-1 (silent, 200 ms) is too young: the progressed "talking" (5.5 s) goes.
  ASSERT_NE(admit("10.0.0.5", t0 + 5500ms, "new-3").ticket, 0u);
  EXPECT_EQ(evicted.back(), "talking");
}

TEST(LogThrottle, OneLinePerIntervalCountingTheRest) {
  LogThrottle t(10s);
  const T0 t0{};
  EXPECT_EQ(t.allow(t0), 0u);
  for (int i = 1; i <= 744; ++i) EXPECT_FALSE(t.allow(t0 + std::chrono::milliseconds(i)));
  EXPECT_FALSE(t.allow(t0 + 9999ms));
  EXPECT_EQ(t.allow(t0 + 10s), 745u);
  EXPECT_EQ(t.allow(t0 + 20s), 0u);
}

// --- on a Host -----------------------------------------------------------------------------

// Opens a TCP connection to `addr` and sends `bytes` (then nothing).
awaitable<std::shared_ptr<asio::ip::tcp::socket>> stall(core::Multiaddr addr, Bytes bytes) {
  auto ex = co_await asio::this_coro::executor;
  auto sock = std::make_shared<asio::ip::tcp::socket>(ex);
  boost::system::error_code ec;
  asio::ip::tcp::endpoint ep(asio::ip::make_address(*addr.ip()), *addr.tcp_port());
  co_await sock->async_connect(ep, asio::redirect_error(asio::use_awaitable, ec));
  EXPECT_FALSE(ec) << ec.message();
  co_await asio::async_write(*sock, asio::buffer(bytes),
                             asio::redirect_error(asio::use_awaitable, ec));
  co_return sock;
}

// True when the host closes `sock` within `within` (EOF or reset on read).
awaitable<bool> closed_within(std::shared_ptr<asio::ip::tcp::socket> sock,
                              std::chrono::milliseconds within) {
  auto ex = co_await asio::this_coro::executor;
  auto timer = std::make_shared<asio::steady_timer>(ex, within);
  auto timed_out = std::make_shared<bool>(false);
  timer->async_wait([sock, timed_out](boost::system::error_code ec) {
    if (ec) return;
    *timed_out = true;
    sock->cancel();
  });
  uint8_t buf[256];
  boost::system::error_code ec;
  while (!ec) {
    co_await sock->async_read_some(asio::buffer(buf),
                                   asio::redirect_error(asio::use_awaitable, ec));
  }
  timer->cancel();
  co_return !*timed_out;
}

Bytes multistream_header_prefix() {
  Bytes hello = multistream::encode_message(multistream::kHeader);
  hello.resize(7);  // the start of "/multistream/1.0.0\n", as in the report
  return hello;
}

template <class Pred>
bool eventually(Pred pred, std::chrono::seconds within = 10s) {
  auto until = std::chrono::steady_clock::now() + within;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::yield();
  }
  return true;
}

TEST(HandshakeBudgetHost, ConnectionsOverTheAddressBudgetAreClosedAtOnceOthersStillConnect) {
  Loop loop;
  HostConfig cfg;
  cfg.handshake_timeout = 60s;  // only the budget can close anything within this test
  cfg.inbound_handshakes = limits(64, 3);
  auto a = make_host(loop, cfg);
  ASSERT_TRUE(loop.call([&] { return a->listen(loopback()); }).ok());
  auto aa = loop.call([&] { return a->listen_addrs().at(0); });
  std::vector<std::shared_ptr<asio::ip::tcp::socket>> held;
  for (int i = 0; i < 3; ++i)
    held.push_back(loop.run([&] { return stall(aa, multistream_header_prefix()); }));
  ASSERT_TRUE(eventually([&] { return a->stats().handshakes_pending == 3; }));
  auto fourth = loop.run([&] { return stall(aa, multistream_header_prefix()); });
  EXPECT_TRUE(loop.run([&] { return closed_within(fourth, 5s); }));
  EXPECT_EQ(a->stats().inbound_refused_per_address, 1u);
  // The three admitted ones are still held, not closed.
  EXPECT_FALSE(loop.run([&] { return closed_within(held[0], 50ms); }));
  // A peer from another loopback address connects, identifies and pings.
  HostConfig other;
  other.dial_from = asio::ip::make_address("127.0.0.2");
  auto b = make_host(loop, other);
  auto r = loop.run([&] { return b->dial(aa); });
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  auto info = loop.call([&] { return a->peer_info(b->id()); });
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->remote_addr.ip(), "127.0.0.2");
  EXPECT_TRUE(loop.run([&] { return b->ping(a->id()); }).ok());
}

TEST(HandshakeBudgetHost, AFullBudgetEvictsAStalledHandshakeForANewConnection) {
  Loop loop;
  auto now = std::make_shared<std::atomic<int64_t>>(0);  // fake clock, in ms
  HostConfig cfg;
  cfg.handshake_timeout = 60s;
  cfg.inbound_handshakes = limits(2, 2, 2s, 250ms);
  cfg.clock = [now] { return SteadyTime{} + std::chrono::milliseconds(now->load()); };
  auto a = make_host(loop, cfg);
  ASSERT_TRUE(loop.call([&] { return a->listen(loopback()); }).ok());
  auto aa = loop.call([&] { return a->listen_addrs().at(0); });
  auto first = loop.run([&] { return stall(aa, multistream_header_prefix()); });
  ASSERT_TRUE(eventually([&] { return a->stats().handshakes_pending == 1; }));
  now->store(100);
  auto second = loop.run([&] { return stall(aa, multistream_header_prefix()); });
  ASSERT_TRUE(eventually([&] { return a->stats().handshakes_pending == 2; }));
  // Budget full, both silent (7 bytes), the first 200 ms old: a newcomer from another
  // address is refused.
  now->store(200);
  HostConfig other;
  other.dial_from = asio::ip::make_address("127.0.0.2");
  other.dial_timeout = 5s;
  auto b = make_host(loop, other);
  auto refused = loop.run([&] { return b->dial(aa); });
  EXPECT_FALSE(refused.ok());
  EXPECT_EQ(a->stats().inbound_refused_pending, 1u);
  // At 300 ms the first has been silent for 250 ms or more: it is evicted for the newcomer,
  // which gets in; the second (200 ms) is kept.
  now->store(300);
  auto r = loop.run([&] { return b->dial(aa); });
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(loop.run([&] { return closed_within(first, 5s); }));
  EXPECT_FALSE(loop.run([&] { return closed_within(second, 50ms); }));
  EXPECT_EQ(a->stats().handshakes_evicted, 1u);
  EXPECT_TRUE(eventually([&] { return a->stats().handshakes_pending == 1; }));
}

}  // namespace
}  // namespace idn::p2p
