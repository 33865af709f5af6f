// What the `idn demo` commands share: the FashionMNIST test images they stream, the short form
// of a peer ID their tables print, and how they stop their peers. Plain functions; any thread.
#pragma once

#include <string>

#include "core/status.h"
#include "identity/peer_id.h"
#include "motifs/labeled_data.h"

namespace idn::cli {

// The first `n` test images (and labels) from `data_dir` (empty: Debian's FashionMNIST).
inline Result<motifs::LabeledData> demo_test_data(const std::string& data_dir, int n) {
  motifs::DataOptions d;
  if (!data_dir.empty()) d.dir = data_dir;
  d.limit_train = 1;
  d.validation = 0;
  d.limit_test = n;
  return motifs::load_fashion_mnist_tensors(d);
}

// "..AbCdEf": the last six characters of a peer ID, enough to tell a demo's peers apart.
inline std::string short_id(const identity::PeerId& p) {
  std::string s = p.to_string();
  return s.size() > 8 ? ".." + s.substr(s.size() - 6) : s;
}

// Stops a demo's peers newest first. Each peer bootstraps to peers started before it, so
// stopping the oldest first left the rest dialling a bootstrap peer that had gone and warning
// about it as the demo ended. Stopping a peer twice (one a demo killed) is harmless.
template <typename Peers>
void stop_newest_first(Peers& peers) {
  for (auto it = peers.rbegin(); it != peers.rend(); ++it)
    if (*it) (*it)->stop();
}

}  // namespace idn::cli
