// What the `idn demo` commands share: the FashionMNIST test images they stream and the short
// form of a peer ID their tables print. Plain functions; any thread.
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

}  // namespace idn::cli
