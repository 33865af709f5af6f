// How many services a node hosts on demand when its operator leaves k to it ([ise] k = 0):
// the compute budget (one core per service at least) and the memory budget (each service's
// parameter bytes, as its descriptor's cost says, once per inference worker). Pure arithmetic,
// no I/O; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/bytes.h"

namespace idn::ise {

struct Capacity {
  size_t cores = 1;
  uint64_t memory_bytes = 0;  // what the on-demand services may take in all
  size_t workers = 1;         // inference workers: each holds its own copy of every model
};

// One service the node hosts on demand or is about to start, with its descriptor's
// cost.bytes (nullopt: the descriptor has no cost).
struct Candidate {
  Bytes service;
  std::optional<uint64_t> param_bytes;
};

struct DerivedK {
  size_t k = 1;
  // The largest memory one service takes among those that fit (bytes x workers), if any is
  // known.
  std::optional<uint64_t> largest_bytes;
  // Services whose one copy per worker alone exceeds the whole budget: never started.
  std::vector<Bytes> too_big;
  std::string why;  // the rule's numbers, for /status
};

// k = min(cores, floor(memory / largest)), where largest = max(param_bytes x workers) over the
// candidates that fit the budget at all; without a known cost only the cores bound holds.
// Costing every service as the largest keeps the rule one number (the queue's k) while never
// overcommitting memory whichever k services are chosen. At least 1 (cores >= 1 and the
// largest fits).
DerivedK derive_k(const Capacity& cap, const std::vector<Candidate>& services);

}  // namespace idn::ise
