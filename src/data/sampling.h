// Seeded, platform-independent randomness for data handling: the std distributions and
// std::shuffle differ between standard libraries, so splits and batch orders would too.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace idn::data {

// Uniform in [0, n), n > 0, without modulo bias.
uint64_t uniform_below(std::mt19937_64& rng, uint64_t n);
// 0..n-1 in a random order (Fisher-Yates).
std::vector<int64_t> permutation(int64_t n, std::mt19937_64& rng);
// Shuffled mini-batches of indices 0..n-1 covering every index once; the last batch is smaller
// unless drop_last drops it. Same seed, same batches.
std::vector<std::vector<int64_t>> shuffled_batches(int64_t n, int64_t batch_size, uint64_t seed,
                                                   bool drop_last = false);

}  // namespace idn::data
