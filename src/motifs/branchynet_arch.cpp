#include "motifs/branchynet_arch.h"

#include "motifs/spec_builder.h"

namespace idn::motifs {
namespace {

// LeNet-5 (Caffe variant) on 28x28: conv5x5(20) pool relu | conv5x5(50) pool relu fc500 relu fc.
// The branch after conv1 (§3.6.2: first branch low, one cheap layer) pools the 20x12x12 map to
// 20x6x6 and classifies with one linear layer: ~1% of the trunk's FLOPs.
Result<model::ModelSpec> lenet(bool branches, int classes) {
  SpecBuilder b(branches ? "b-lenet" : "lenet", branches ? "branchynet" : "plain");
  b.input("image", {1, 28, 28});
  b.stage("stage0").conv("conv1", 1, 20, 5).maxpool("pool1", 2).relu("relu1");
  if (branches)
    b.exit("exit0").maxpool("b0_pool", 2).flatten("b0_flat").linear("b0_fc", 720, classes);
  if (branches) b.stage("stage1");
  b.conv("conv2", 20, 50, 5).maxpool("pool2", 2).relu("relu2").flatten("flat");
  b.linear("fc1", 800, 500).relu("relu3").dropout("drop1", 0.3);
  b.exit(branches ? "exit1" : "exit0").linear("fc2", 500, classes);
  return b.build();
}

// AlexNet-style on 28x28 (Fig. 3.5 shrunk to one channel and 28 pixels): five convs with LRN
// after the first two, three linear layers; branches after conv1 and conv2, each a pool and
// one linear layer.
Result<model::ModelSpec> alexnet(bool branches, int classes) {
  SpecBuilder b(branches ? "b-alexnet" : "alexnet", branches ? "branchynet" : "plain");
  b.input("image", {1, 28, 28});
  b.stage("stage0")
      .conv("conv1", 1, 32, 5, 1, 2)
      .relu("relu1")
      .maxpool("pool1", 3, 2, 1)
      .lrn("lrn1", 3);  // 32x14x14
  if (branches)
    b.exit("exit0").maxpool("b0_pool", 2).flatten("b0_flat").linear("b0_fc", 32 * 7 * 7, classes);
  if (branches) b.stage("stage1");
  b.conv("conv2", 32, 64, 5, 1, 2)
      .relu("relu2")
      .maxpool("pool2", 3, 2, 1)
      .lrn("lrn2", 3);  // 64x7x7
  if (branches)
    b.exit("exit1").maxpool("b1_pool", 2).flatten("b1_flat").linear("b1_fc", 64 * 3 * 3, classes);
  if (branches) b.stage("stage2");
  b.conv("conv3", 64, 96, 3, 1, 1).relu("relu3");
  b.conv("conv4", 96, 96, 3, 1, 1).relu("relu4");
  b.conv("conv5", 96, 64, 3, 1, 1).relu("relu5").maxpool("pool5", 3, 2, 1);  // 64x4x4
  b.flatten("flat").linear("fc1", 1024, 256).relu("relu6").dropout("drop1", 0.3);
  b.linear("fc2", 256, 128).relu("relu7");
  b.exit(branches ? "exit2" : "exit0").linear("fc3", 128, classes);
  return b.build();
}

}  // namespace

std::vector<std::string> branchynet_arch_names() {
  return {"b-lenet", "lenet", "b-alexnet", "alexnet"};
}

Result<model::ModelSpec> branchynet_arch(const std::string& name, int classes) {
  if (name == "b-lenet") return lenet(true, classes);
  if (name == "lenet") return lenet(false, classes);
  if (name == "b-alexnet") return alexnet(true, classes);
  if (name == "alexnet") return alexnet(false, classes);
  return Status::invalid_argument("unknown architecture '" + name +
                                  "' (expected b-lenet, lenet, b-alexnet or alexnet)");
}

}  // namespace idn::motifs
