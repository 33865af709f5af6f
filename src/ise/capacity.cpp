#include "ise/capacity.h"

#include <fmt/format.h>

#include <algorithm>

namespace idn::ise {

namespace {

std::string mib(uint64_t bytes) {
  return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
}

}  // namespace

DerivedK derive_k(const Capacity& cap, const std::vector<Candidate>& services) {
  DerivedK out;
  const size_t cores = std::max<size_t>(1, cap.cores);
  const uint64_t workers = std::max<size_t>(1, cap.workers);
  for (const Candidate& c : services) {
    if (!c.param_bytes) continue;
    // Costs are bounded (kMaxCostBytes, 2^44) and so are workers: no overflow.
    uint64_t need = *c.param_bytes * workers;
    if (need > cap.memory_bytes) {
      out.too_big.push_back(c.service);
      continue;
    }
    out.largest_bytes = std::max(out.largest_bytes.value_or(0), need);
  }
  if (!out.largest_bytes || *out.largest_bytes == 0) {
    out.k = cores;
    out.why = fmt::format("{} cores; no service's cost known, so no memory bound", cores);
  } else {
    const uint64_t by_memory = cap.memory_bytes / *out.largest_bytes;
    out.k = static_cast<size_t>(std::min<uint64_t>(cores, by_memory));
    out.why =
        fmt::format("min({} cores, {} budget / {} for the largest service ({} workers) = {})",
                    cores, mib(cap.memory_bytes), mib(*out.largest_bytes), workers, by_memory);
  }
  if (!out.too_big.empty())
    out.why += fmt::format("; {} service(s) larger than the whole budget are not hosted",
                           out.too_big.size());
  return out;
}

}  // namespace idn::ise
