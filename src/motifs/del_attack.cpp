#include "motifs/del_attack.h"

#include <torch/torch.h>

#include <random>

namespace idn::motifs {

Result<std::vector<double>> inverse_attack(Del& del, std::span<const daimon::Label> xt_span,
                                           const InverseAttackOptions& o,
                                           const std::function<void(int, double)>& progress) {
  if (o.epochs < 1 || o.batch < 1 || o.samples_per_epoch < o.batch || o.hidden < 1 || !(o.lr > 0))
    return Status::invalid_argument("inverse attack: need epochs, batch, hidden >= 1, lr > 0");
  const int64_t m = del.m(), n = del.n(), C = del.classes();
  const std::vector<daimon::Label> xt(xt_span.begin(), xt_span.end());
  IDN_ASSIGN_OR_RETURN(auto yt, del.embed(xt));
  torch::manual_seed(o.seed);
  std::mt19937_64 rng(o.seed);
  torch::nn::Sequential inv(torch::nn::Linear(n, o.hidden), torch::nn::ReLU(),
                            torch::nn::Linear(o.hidden, m * C));
  torch::optim::Adam opt(inv->parameters(), torch::optim::AdamOptions(o.lr));
  torch::Tensor yt_t = torch::tensor(yt).reshape({1, n});
  std::vector<double> errors;
  for (int epoch = 1; epoch <= o.epochs; ++epoch) {
    inv->train();
    for (int64_t s = 0; s + o.batch <= o.samples_per_epoch; s += o.batch) {
      std::vector<std::vector<daimon::Label>> xs;
      for (int64_t b = 0; b < o.batch; ++b) {
        if (o.data == InverseData::kNearby) {
          IDN_ASSIGN_OR_RETURN(auto x, daimon::generate_data(xt, uint32_t(C), rng));
          xs.push_back(std::move(x));
        } else {
          xs.push_back(daimon::random_labels(size_t(m), uint32_t(C), rng));
        }
      }
      IDN_ASSIGN_OR_RETURN(auto ys, del.embed(xs));
      torch::Tensor y = torch::empty({o.batch, n});
      torch::Tensor target = torch::zeros({o.batch, m * C});
      auto ya = y.accessor<float, 2>();
      auto ta = target.accessor<float, 2>();
      for (int64_t b = 0; b < o.batch; ++b) {
        for (int64_t k = 0; k < n; ++k) ya[b][k] = ys[size_t(b)][size_t(k)];
        for (int64_t i = 0; i < m; ++i) ta[b][i * C + xs[size_t(b)][size_t(i)]] = 1.0f;
      }
      torch::Tensor loss = torch::mse_loss(inv->forward(y), target);
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
    inv->eval();
    torch::NoGradGuard ng;
    torch::Tensor guess = inv->forward(yt_t).reshape({m, C}).argmax(1).contiguous();
    std::vector<daimon::Label> x(static_cast<size_t>(m));
    auto ga = guess.accessor<int64_t, 1>();
    for (int64_t i = 0; i < m; ++i) x[size_t(i)] = static_cast<daimon::Label>(ga[i]);
    double e = *daimon::error(x, xt);
    errors.push_back(e);
    if (progress) progress(epoch, e);
  }
  return errors;
}

}  // namespace idn::motifs
