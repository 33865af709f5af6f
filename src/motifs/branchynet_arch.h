// BranchyNet architectures sized for 28x28x1 images (FashionMNIST): B-LeNet (one branch after
// the first conv, as in the BranchyNet paper) and a B-AlexNet-style net (two branches, after
// conv1 and conv2, Fig. 3.5), each with a baseline: the same trunk without branches.
#pragma once

#include <string>
#include <vector>

#include "model/model_spec.h"

namespace idn::motifs {

// "b-lenet", "lenet", "b-alexnet", "alexnet"
std::vector<std::string> branchynet_arch_names();
// Builds the named architecture for `classes` outputs; thresholds start at 1.0 (never exit
// early) until calibration and threshold search set them.
Result<model::ModelSpec> branchynet_arch(const std::string& name, int classes = 10);

}  // namespace idn::motifs
