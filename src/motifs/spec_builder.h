// A small fluent builder for model::ModelSpec, so architectures read like their figures:
// layers are appended to the current stage or exit head and chained on the previous output.
#pragma once

#include <string>
#include <vector>

#include "model/model_spec.h"

namespace idn::motifs {

class SpecBuilder {
 public:
  SpecBuilder(std::string name, std::string motif);

  SpecBuilder& input(std::string name, std::vector<int64_t> shape);
  // Starts a new stage; following layers belong to it and chain from the previous stage.
  SpecBuilder& stage(std::string name);
  // Starts an exit head after the current stage, chaining from `from` (default: the stage's
  // last layer). Following layers belong to the head until the next stage()/exit().
  SpecBuilder& exit(std::string name, std::string from = "");

  SpecBuilder& conv(std::string name, int64_t in, int64_t out, int64_t kernel, int64_t stride = 1,
                    int64_t padding = 0);
  SpecBuilder& linear(std::string name, int64_t in, int64_t out);
  SpecBuilder& relu(std::string name);
  SpecBuilder& maxpool(std::string name, int64_t kernel, int64_t stride = 0, int64_t padding = 0);
  SpecBuilder& avgpool(std::string name, int64_t kernel, int64_t stride = 0, int64_t padding = 0);
  SpecBuilder& batchnorm(std::string name, int64_t features);
  SpecBuilder& dropout(std::string name, double p);
  SpecBuilder& flatten(std::string name);
  SpecBuilder& lrn(std::string name, int64_t size);

  SpecBuilder& labels(std::vector<std::string> labels);
  SpecBuilder& preprocess(std::vector<float> mean, std::vector<float> std);

  // Validates (shapes, FLOPs) and returns the spec.
  Result<model::ModelSpec> build();

 private:
  SpecBuilder& add(std::string name, model::LayerType type, nlohmann::json params);

  model::ModelSpec spec_;
  std::string last_;        // the output the next layer chains from
  std::string stage_last_;  // the current stage's last layer
  bool in_exit_ = false;
};

}  // namespace idn::motifs
