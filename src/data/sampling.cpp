#include "data/sampling.h"

#include <algorithm>
#include <numeric>

namespace idn::data {

uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  // Reject the lowest 2^64 mod n values so the rest split evenly into n residues.
  const uint64_t threshold = (0 - n) % n;
  for (;;) {
    uint64_t x = rng();
    if (x >= threshold) return x % n;
  }
}

std::vector<int64_t> permutation(int64_t n, std::mt19937_64& rng) {
  std::vector<int64_t> p(static_cast<size_t>(std::max<int64_t>(n, 0)));
  std::iota(p.begin(), p.end(), 0);
  for (size_t i = p.size(); i > 1; --i) std::swap(p[i - 1], p[uniform_below(rng, i)]);
  return p;
}

std::vector<std::vector<int64_t>> shuffled_batches(int64_t n, int64_t batch_size, uint64_t seed,
                                                   bool drop_last) {
  std::vector<std::vector<int64_t>> batches;
  if (n <= 0 || batch_size <= 0) return batches;
  std::mt19937_64 rng(seed);
  std::vector<int64_t> order = permutation(n, rng);
  for (int64_t start = 0; start < n; start += batch_size) {
    int64_t end = std::min(n, start + batch_size);
    if (drop_last && end - start < batch_size) break;
    batches.emplace_back(order.begin() + start, order.begin() + end);
  }
  return batches;
}

}  // namespace idn::data
