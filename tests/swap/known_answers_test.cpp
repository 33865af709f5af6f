// The policy half of challenges (§7.5.3.3): ComputeSwap draws challenges at challenge_rate, and
// AnswerBook turns answers several peers agreed on into known answers, naming the peers that
// answered against the majority.
#include "swap/known_answers.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <random>
#include <set>

#include "identity/peer_id.h"
#include "swap/swap.h"

namespace idn::swap {
namespace {

namespace fs = std::filesystem;

core::Tensor input(float v, size_t n = 4) {
  std::vector<float> x(n, v);
  return core::Tensor::f32({1, static_cast<int64_t>(n)}, x);
}

const Bytes kA{1}, kB{2}, kC{3}, kD{4};

TEST(AnswerBook, AnInputIsKnownOnceAQuorumOfPeersNamedTheSameFinalAnswer) {
  AnswerBook book;
  EXPECT_FALSE(book.agreed(input(1)));
  EXPECT_TRUE(book.record(input(1), kA, 1, 7).empty());
  EXPECT_FALSE(book.agreed(input(1))) << "one peer's word is what a challenge checks";
  EXPECT_FALSE(book.pick(0.5));
  EXPECT_TRUE(book.record(input(1), kB, 1, 7).empty());
  auto known = book.agreed(input(1));
  ASSERT_TRUE(known);
  EXPECT_EQ(known->exit_index, 1u);
  EXPECT_EQ(known->predicted, 7);
  EXPECT_EQ(known->peers, 2u);
  EXPECT_FALSE(book.agreed(input(2)));
  // An equal tensor is the same input; a different shape is not.
  EXPECT_TRUE(book.agreed(input(1)));
  EXPECT_FALSE(book.agreed(core::Tensor::f32({4}, std::vector<float>(4, 1.0f))));
}

TEST(AnswerBook, TheSameClassFromAnotherExitIsAnotherAnswer) {
  AnswerBook book;
  book.record(input(1), kA, 0, 7);
  book.record(input(1), kB, 1, 7);
  EXPECT_FALSE(book.agreed(input(1)));
}

TEST(AnswerBook, WithoutAStrictMajorityNothingIsKnownAndNobodyIsBlamed) {
  AnswerBook book;
  EXPECT_TRUE(book.record(input(1), kA, 1, 7).empty());
  EXPECT_TRUE(book.record(input(1), kB, 1, 3).empty());
  EXPECT_FALSE(book.agreed(input(1)));
  book.record(input(1), kC, 1, 7);  // 2 against 1: B is out
  EXPECT_TRUE(book.agreed(input(1)));
  EXPECT_TRUE(book.record(input(1), kD, 1, 3).empty());  // 2 against 2: no majority again
  EXPECT_FALSE(book.agreed(input(1)));
}

TEST(AnswerBook, APeerAgainstTheMajorityIsNamedOnceEvenAfterItAnswersAgain) {
  AnswerBook book;
  EXPECT_TRUE(book.record(input(1), kA, 1, 3).empty());  // the odd one, first
  EXPECT_TRUE(book.record(input(1), kB, 1, 7).empty());  // 1 against 1
  auto odd = book.record(input(1), kC, 1, 7);            // 2 against 1: A is out
  ASSERT_EQ(odd.size(), 1u);
  EXPECT_EQ(odd[0], kA);
  EXPECT_EQ(book.agreed(input(1))->predicted, 7);
  EXPECT_TRUE(book.record(input(1), kA, 1, 3).empty()) << "A was already named for this input";
  EXPECT_TRUE(book.record(input(1), kD, 1, 7).empty());  // 3 against 1
  const Bytes kE{5};
  auto late = book.record(input(1), kE, 1, 5);  // 3 against 2 different answers
  ASSERT_EQ(late.size(), 1u);
  EXPECT_EQ(late[0], kE);
}

TEST(AnswerBook, PickChoosesUniformlyAmongKnownInputsOnly) {
  AnswerBook book;
  for (float v : {1.0f, 2.0f, 3.0f}) {
    book.record(input(v), kA, 1, int(v));
    book.record(input(v), kB, 1, int(v));
  }
  book.record(input(9), kA, 1, 9);  // one peer only: not known
  std::set<int> seen;
  for (double u : {0.0, 0.34, 0.67, 0.999, 1.0}) {
    auto p = book.pick(u);
    ASSERT_TRUE(p);
    EXPECT_EQ(book.agreed(p->first)->predicted, p->second.predicted);
    seen.insert(p->second.predicted);
  }
  EXPECT_EQ(seen, (std::set<int>{1, 2, 3}));
}

TEST(AnswerBook, TheOldestInputsAreForgottenPastTheLimits) {
  AnswerBook book({.quorum = 2, .max_inputs = 2, .max_bytes = 1 << 20});
  for (float v : {1.0f, 2.0f, 3.0f}) {
    book.record(input(v), kA, 0, 1);
    book.record(input(v), kB, 0, 1);
  }
  EXPECT_EQ(book.inputs(), 2u);
  EXPECT_FALSE(book.agreed(input(1)));
  EXPECT_TRUE(book.agreed(input(3)));

  AnswerBook small({.quorum = 2, .max_inputs = 100, .max_bytes = 3 * 16});  // 16-byte inputs
  for (float v : {1.0f, 2.0f, 3.0f, 4.0f}) small.record(input(v), kA, 0, 1);
  EXPECT_EQ(small.inputs(), 3u);
  EXPECT_EQ(small.bytes(), 48u);
  small.record(input(0, 100), kA, 0, 1);  // larger than the whole budget: not kept
  EXPECT_EQ(small.inputs(), 3u);
}

// should_challenge() with a seeded RNG: the fraction of requests challenged is challenge_rate,
// within 4 standard deviations of a binomial.
TEST(ChallengePolicy, ChallengesAreSentAtTheConfiguredRate) {
  fs::path dir = fs::temp_directory_path() / ("idn-challenge-rate-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto key = identity::KeyPair::from_seed(Bytes(32, 5));
  ASSERT_TRUE(key.ok());
  ManualClock clock;
  for (double rate : {0.0, 0.01, 0.2, 1.0}) {
    Config cfg;
    cfg.challenge_rate = rate;
    std::mt19937_64 rng(42);
    auto s = ComputeSwap::open(cfg, *key, dir / ("l" + std::to_string(rate)), clock, [&rng] {
      return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    });
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    constexpr int kRequests = 20'000;
    int challenged = 0;
    for (int i = 0; i < kRequests; ++i) challenged += (*s)->should_challenge();
    const double mean = rate * kRequests, sd = std::sqrt(kRequests * rate * (1 - rate));
    EXPECT_NEAR(challenged, mean, 4 * sd + 0.5) << "challenge_rate " << rate;
  }
  fs::remove_all(dir);
}

// Probation: a provider's every answer is challenged until it has passed probation_challenges
// challenges (a failed one does not count), then at challenge_rate; trusted peers never are.
TEST(ChallengePolicy, ANewProviderIsChallengedUntilItPassesProbation) {
  fs::path dir = fs::temp_directory_path() / ("idn-probation-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto key = identity::KeyPair::from_seed(Bytes(32, 5));
  ASSERT_TRUE(key.ok());
  const Bytes stranger(34, 7), trusted(34, 9);
  ManualClock clock;
  Config cfg;
  cfg.challenge_rate = 0;
  cfg.probation_challenges = 2;
  cfg.trusted = {trusted};
  std::mt19937_64 rng(1);
  auto s = ComputeSwap::open(cfg, *key, dir / "l", clock, [&rng] {
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  });
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  ComputeSwap& cs = **s;
  EXPECT_FALSE(cs.in_probation(trusted));
  EXPECT_FALSE(cs.should_challenge(trusted));
  EXPECT_TRUE(cs.in_probation(stranger)) << "never met: in probation";
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(cs.should_challenge(stranger)) << i;
  cs.on_challenge_result(stranger, true);
  EXPECT_TRUE(cs.should_challenge(stranger)) << "one of two passed";
  cs.on_challenge_result(stranger, false);  // a failure does not count towards probation
  EXPECT_TRUE(cs.in_probation(stranger));
  cs.on_challenge_result(stranger, true);
  EXPECT_FALSE(cs.in_probation(stranger));
  for (int i = 0; i < 100; ++i)
    EXPECT_FALSE(cs.should_challenge(stranger)) << "after probation: challenge_rate 0";

  cfg.probation_challenges = 0;  // off: nobody is in probation
  auto off = ComputeSwap::open(cfg, *key, dir / "off", clock, [] { return 0.5; });
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE((*off)->in_probation(stranger));
  EXPECT_FALSE((*off)->should_challenge(stranger));
  cfg.probation_challenges = 1001;
  EXPECT_FALSE(validate(cfg).is_ok());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace idn::swap
