// The Open exchange (§7.5.3.2) when messages are lost while both peers stay connected: found by
// tests/cli/swap_crash_test.sh, where a restarted provider and its consumer dialled each other
// at once, one connection was closed as a duplicate with Opens and Evidence on its streams, and
// both stayed in Open with differing ledgers until the next reconnect.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "identity/peer_id.h"
#include "swap/swap.h"
#include "swap_test_util.h"

namespace idn::swap {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using testing::key;

std::vector<protocol::SwapOpen> opens(const std::vector<Action>& actions) {
  std::vector<protocol::SwapOpen> out;
  for (const auto& a : actions) {
    if (auto* s = std::get_if<SendSwap>(&a)) {
      if (auto* m = std::get_if<protocol::SwapOpen>(&s->message)) out.push_back(*m);
    }
  }
  return out;
}

class LostOpenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("idn_swap_lost_open_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    for (auto* k : {&ka_, &kb_}) {
      auto s = ComputeSwap::open({}, *k, dir_ / (k == &ka_ ? "a" : "b") / "ledgers.sqlite", clock_,
                                 [] { return 0.0; });
      ASSERT_TRUE(s.ok()) << s.status().to_string();
      (k == &ka_ ? a_ : b_) = std::move(*s);
    }
    ida_ = a_->self();
    idb_ = b_->self();
  }
  void TearDown() override {
    a_.reset();
    b_.reset();
    fs::remove_all(dir_);
  }

  fs::path dir_;
  ManualClock clock_;
  identity::KeyPair ka_ = key(21), kb_ = key(22);
  std::unique_ptr<ComputeSwap> a_, b_;
  Bytes ida_, idb_;
};

TEST_F(LostOpenTest, APeerLeftInOpenOpensAgainAndTheOnlineSideReplies) {
  a_->on_connected(idb_);
  b_->on_connected(ida_);
  auto from_a = opens(a_->take_actions());
  auto from_b = opens(b_->take_actions());
  ASSERT_EQ(from_a.size(), 1u);
  ASSERT_EQ(from_b.size(), 1u);
  // b's Open reaches a; a's Open to b is lost with the stream it was on.
  EXPECT_EQ(a_->on_open(idb_, from_b[0]), ComputeSwap::OpenResult::kOnline);
  (void)a_->take_actions();
  EXPECT_EQ(b_->snapshot(ida_).state, PeerState::kOpen);

  clock_.advance(5s);  // past kOpenRetry
  b_->tick();
  auto again = opens(b_->take_actions());
  ASSERT_EQ(again.size(), 1u) << "b, still in Open, did not open again";
  EXPECT_FALSE(again[0].reply);
  EXPECT_EQ(a_->on_open(idb_, again[0]), ComputeSwap::OpenResult::kOnline);
  auto reply = opens(a_->take_actions());
  ASSERT_EQ(reply.size(), 1u) << "a, already Online, did not answer b's Open";
  EXPECT_TRUE(reply[0].reply);
  EXPECT_EQ(b_->on_open(ida_, reply[0]), ComputeSwap::OpenResult::kOnline);
  EXPECT_TRUE(opens(b_->take_actions()).empty());  // a reply is never answered
  EXPECT_EQ(b_->snapshot(ida_).state, PeerState::kOnline);
  // Online: no more Opens.
  clock_.advance(5s);  // past kOpenRetry
  b_->tick();
  EXPECT_TRUE(opens(b_->take_actions()).empty());
}

}  // namespace
}  // namespace idn::swap
