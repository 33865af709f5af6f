// ComputeSwap's strategy (dissertation §7.5.2) as pure functions: the debt ratio r (eq. 7.1)
// and the probability p(r) of serving a request. No I/O, no state: safe from any thread.
#pragma once

#include <cstdint>

#include "core/status.h"

namespace idn::swap {

// r = debt / (credit + grace) (eq. 7.1), from the server's view of one peer: `debt` is the
// operations the server performed for the peer, `credit` the operations the peer performed
// for the server. Eq. 7.1 adds 1 to keep r finite when credit is 0; counted in operations
// (FLOPs), a 1 would make a newcomer's first request (millions of operations) push r far past
// m, so no peer could ever be served twice before it served. `grace` is that 1 in a unit worth
// having: the operations a stranger may owe before p(r) starts to fall (grace = 1 is eq. 7.1
// literally). Must be >= 1.
double debt_ratio(uint64_t debt, uint64_t credit, uint64_t grace = 1);

// §7.4's r_i as the ISE weighs a peer's needs: 1 + what we owe the peer (`credit`: the
// operations it performed for us) over what it owes us (`debt`), as eq. 7.1 counts them. The 1
// lets demand from peers we owe nothing count too: with s = Σ r_i alone a new network, where
// nobody owes anybody, would host nothing.
double need_weight(uint64_t credit, uint64_t debt, uint64_t grace);

struct StrategyParams {
  // The debt ratio at and beyond which p is 0. Must be > 1.
  double m = 4.0;
  // How p falls between r = 1 and r = m: n = 1 linearly; larger n is more lenient until r
  // nears m, then drops steeply (Fig. 7.1). Must be > 0.
  double n = 2.0;
};

// InvalidArgument naming the parameter when m <= 1, n <= 0 or either is not finite.
Status validate(const StrategyParams& p);

// p(r) = 1 for r <= 1; 1 - I((r - 1)/(m - 1); n, 1/n) for 1 < r < m; 0 for r >= m, where I is
// the regularized incomplete beta function. Parameters must pass validate(); a NaN r gives 0.
double service_probability(double r, const StrategyParams& p);

}  // namespace idn::swap
