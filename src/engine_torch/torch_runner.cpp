// LibTorch's StageRunner (nn::Graph), the engine's reference backend. Linking idn_engine_torch
// (whole, see src/CMakeLists.txt) registers it with engine/ before main; nothing calls into this
// file by name.
#include <torch/torch.h>

#include "engine/stage_runner.h"
#include "nn/graph.h"

// OpenBLAS's thread-count control, when the BLAS LibTorch loaded is OpenBLAS (weak: absent
// with another BLAS).
extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace idn::engine {
namespace {

// Keeps rows `index` of every activation; one in oneDNN's blocked layout (nn::Graph keeps a
// stage's inner conv-relu-pool activations so) is made dense first: layers read either layout.
void select_rows(nn::Activations& acts, const torch::Tensor& index) {
  for (auto& a : acts)
    if (a.defined()) a = (a.is_mkldnn() ? a.to_dense() : a).index_select(0, index);
}

class TorchRunner final : public StageRunner {
 public:
  explicit TorchRunner(nn::Graph g) : graph_(std::move(g)) {}

  Status init_preprocess() {
    const auto& spec = graph_->spec();
    if (spec.preprocess_mean.empty()) return Status::ok();
    int64_t c = spec.inputs[0].shape.empty() ? 1 : spec.inputs[0].shape[0];
    if (static_cast<int64_t>(spec.preprocess_mean.size()) != c ||
        spec.preprocess_std.size() != spec.preprocess_mean.size())
      return Status::invalid_argument("preprocess mean/std must have one value per channel (" +
                                      std::to_string(c) + ")");
    std::vector<int64_t> shape{1, c};
    while (shape.size() < spec.inputs[0].shape.size() + 1) shape.push_back(1);
    mean_ = torch::tensor(spec.preprocess_mean).reshape(shape);
    inv_std_ = 1.0 / torch::tensor(spec.preprocess_std).reshape(shape);
    return Status::ok();
  }

  Status begin(const core::Tensor& x, int resume_after) override {
    torch::NoGradGuard ng;
    torch::InferenceMode im;
    try {
      auto t = nn::to_torch(x, /*borrow=*/true);
      if (resume_after < 0) {
        acts_ = graph_->begin({mean_.defined() ? (t - mean_) * inv_std_ : t});
      } else {
        acts_ = graph_->begin({});
        graph_->set_stage_output(resume_after, acts_, t);
      }
    } catch (const std::exception& e) {
      return does_not_fit(e.what());
    }
    return Status::ok();
  }

  Status run_stage(int s) override {
    torch::NoGradGuard ng;
    torch::InferenceMode im;
    try {
      out_ = graph_->run_stage(s, acts_);
    } catch (const std::exception& e) {
      return does_not_fit(e.what());
    }
    return Status::ok();
  }

  core::Tensor stage_output() override { return nn::from_torch(out_); }

  Result<std::span<const float>> run_exit(int e) override {
    torch::NoGradGuard ng;
    torch::InferenceMode im;
    try {
      logits_ = graph_->run_exit(e, acts_).contiguous();
    } catch (const std::exception& ex) {
      return does_not_fit(ex.what());
    }
    return std::span<const float>(logits_.data_ptr<float>(), logits_.numel());
  }

  void keep_rows(const std::vector<int64_t>& rows) override {
    torch::NoGradGuard ng;
    torch::InferenceMode im;
    select_rows(acts_, torch::tensor(rows, torch::kLong));
  }

 private:
  nn::Graph graph_;
  torch::Tensor mean_, inv_std_;  // [1, C, 1, 1] or undefined
  nn::Activations acts_;
  torch::Tensor out_, logits_;
};

void set_threads(int threads) {
  torch::set_num_threads(threads);
  // LibTorch on Debian runs Linear layers through OpenBLAS, whose own thread pool spins in
  // sched_yield between calls: on a small machine those spinners take the cores that the
  // node's io threads need (perf: 16% of a serving run in sched_yield; gone with this).
  if (openblas_set_num_threads) openblas_set_num_threads(threads);
}

Result<std::unique_ptr<StageRunner>> load(const model::Package& pkg,
                                          const std::filesystem::path& dir) {
  nn::Graph graph{nullptr};
  try {
    graph = nn::Graph(pkg.spec);
  } catch (const std::exception& e) {
    return Status::invalid_argument(dir.string() + ": cannot build graph: " + e.what());
  }
  IDN_RETURN_IF_ERROR(graph->load_weights(pkg.weights).with_context(dir.string()));
  graph->eval();
  auto runner = std::make_unique<TorchRunner>(std::move(graph));
  IDN_RETURN_IF_ERROR(runner->init_preprocess().with_context(dir.string()));
  return std::unique_ptr<StageRunner>(std::move(runner));
}

[[maybe_unused]] const bool registered = [] {
  register_torch_runner({.set_threads = set_threads, .load = load});
  return true;
}();

}  // namespace
}  // namespace idn::engine
