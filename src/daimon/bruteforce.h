// The brute-force attack on a DEL function (dissertation §6.3): the chance p that a random
// label vector's embedding lands within distance eps of y_t = f(x_t), assuming f's outputs
// are uniform on the unit (n-1)-sphere. Pure functions: any thread.
#pragma once

#include "core/status.h"

namespace idn::daimon {

struct BruteForce {
  double eps = 0;           // the distance the attacker must reach: d(f(x), y_t) < eps
  int n = 0;                // embedding dimension
  double beta = 0;          // the cap's half-angle: d = 1 - cos(beta), so beta = acos(1 - eps)
  long double p = 0;        // I(sin^2 beta; (n-1)/2, 1/2): the cap's share of a hemisphere
  double log10_p = 0;       // log10(p), finite even where p underflows a double
  double log10_trials = 0;  // log10(1/p): random guesses for an even chance of one hit (q = 1/p)
};

// eps in (0, 1] (d reaches 1 at a right angle; beyond it d is 1 by definition, so eps > 1
// is every vector), n in 2..65536. InvalidArgument otherwise.
Result<BruteForce> bruteforce(double eps, int n);

}  // namespace idn::daimon
