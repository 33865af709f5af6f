#include "motifs/del.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <random>

#include <fmt/format.h>

#include "motifs/spec_builder.h"

namespace idn::motifs {
namespace {

using daimon::Label;

Status check_labels(std::span<const Label> x, int64_t m, uint32_t classes) {
  if (static_cast<int64_t>(x.size()) != m) {
    return Status::invalid_argument(
        fmt::format("a label vector of {} labels; this DEL takes {}", x.size(), m));
  }
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i] >= classes) {
      return Status::invalid_argument(
          fmt::format("label {} at position {} is not below the {} classes", x[i], i, classes));
    }
  }
  return Status::ok();
}

int64_t input_width(int64_t m, uint32_t classes, DelEncoding e) {
  return e == DelEncoding::kOneHot ? m * classes : m;
}

// Dense input rows [B, width] for the package's graph.
torch::Tensor encode_dense(const std::vector<std::vector<Label>>& xs, int64_t m, uint32_t classes,
                           DelEncoding e) {
  const int64_t width = input_width(m, classes, e);
  torch::Tensor t = torch::zeros({static_cast<int64_t>(xs.size()), width});
  auto a = t.accessor<float, 2>();
  for (size_t b = 0; b < xs.size(); ++b) {
    for (int64_t i = 0; i < m; ++i) {
      if (e == DelEncoding::kOneHot) {
        a[b][i * classes + xs[b][i]] = 1.0f;
      } else {
        a[b][i] = classes > 1 ? float(xs[b][i]) / float(classes - 1) : 0.0f;
      }
    }
  }
  return t;
}

// The MLP while it trains. One-hot rows are never built: the first layer's weights are kept
// transposed ([m*C, hidden]) and summed by label index (embedding_bag), which is exactly the
// dense layer on a one-hot row at 1/C of its cost.
struct Trainer {
  int64_t m, hidden, n;
  uint32_t classes;
  DelEncoding enc;
  torch::Tensor w1, b1, w2, b2;  // w1: [m*C, hidden] (one-hot) or [hidden, m] (value)

  Trainer(int64_t m_, uint32_t c, const DelOptions& o)
      : m(m_), hidden(o.hidden), n(o.n), classes(c), enc(o.encoding) {
    // PyTorch's nn.Linear initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)); a one-hot row
    // has m ones, so its fan-in is m as well.
    auto uniform = [](std::vector<int64_t> shape, double fan_in) {
      double k = 1.0 / std::sqrt(fan_in);
      return (torch::rand(shape) * 2 - 1).mul_(k).requires_grad_();
    };
    w1 = enc == DelEncoding::kOneHot ? uniform({m * classes, hidden}, double(m))
                                     : uniform({hidden, m}, double(m));
    b1 = uniform({hidden}, double(m));
    w2 = uniform({n, hidden}, double(hidden));
    b2 = uniform({n}, double(hidden));
  }

  std::vector<torch::Tensor> parameters() { return {w1, b1, w2, b2}; }

  torch::Tensor forward(const std::vector<const std::vector<Label>*>& xs) {
    const int64_t B = static_cast<int64_t>(xs.size());
    torch::Tensor h;
    if (enc == DelEncoding::kOneHot) {
      torch::Tensor idx = torch::empty({B, m}, torch::kLong);
      auto a = idx.accessor<int64_t, 2>();
      for (int64_t b = 0; b < B; ++b) {
        for (int64_t i = 0; i < m; ++i) a[b][i] = i * classes + (*xs[b])[i];
      }
      namespace F = torch::nn::functional;
      h = F::embedding_bag(idx, w1, F::EmbeddingBagFuncOptions().mode(torch::kSum)) + b1;
    } else {
      torch::Tensor x = torch::empty({B, m});
      auto a = x.accessor<float, 2>();
      for (int64_t b = 0; b < B; ++b) {
        for (int64_t i = 0; i < m; ++i) a[b][i] = float((*xs[b])[i]) / float(classes - 1);
      }
      h = torch::addmm(b1, x, w1.t());
    }
    torch::Tensor y = torch::addmm(b2, torch::relu(h), w2.t());
    return torch::nn::functional::normalize(y,
                                            torch::nn::functional::NormalizeFuncOptions().dim(1));
  }

  // mean |e - d| over `xs` with their errors `es`; x_t's embedding is computed alongside.
  torch::Tensor loss(const std::vector<const std::vector<Label>*>& xs, const std::vector<Label>& xt,
                     const std::vector<float>& es) {
    std::vector<const std::vector<Label>*> all = xs;
    all.push_back(&xt);
    torch::Tensor y = forward(all);
    const int64_t B = static_cast<int64_t>(xs.size());
    torch::Tensor cos = (y.slice(0, 0, B) * y.slice(0, B, B + 1)).sum(1);
    torch::Tensor d = 1 - cos.clamp_min(0);  // §6.1.1: 1 for obtuse angles
    torch::Tensor e = torch::tensor(es);
    return (d - e).abs().mean();
  }

  std::map<std::string, core::Tensor> export_weights() const {
    torch::NoGradGuard ng;
    torch::Tensor fc1 = enc == DelEncoding::kOneHot ? w1.t().contiguous() : w1.contiguous();
    return {{"fc1.weight", nn::from_torch(fc1)},
            {"fc1.bias", nn::from_torch(b1.contiguous())},
            {"fc2.weight", nn::from_torch(w2.contiguous())},
            {"fc2.bias", nn::from_torch(b2.contiguous())}};
  }
};

Result<model::ModelSpec> del_spec(int64_t m, const DelOptions& o) {
  SpecBuilder b("del", "plain");
  b.input("labels", {input_width(m, o.classes, o.encoding)})
      .stage("mlp")
      .linear("fc1", input_width(m, o.classes, o.encoding), o.hidden)
      .relu("relu1")
      .linear("fc2", o.hidden, o.n)
      .exit("embedding");
  IDN_ASSIGN_OR_RETURN(auto spec, b.build());
  spec.operating_point["del"] = {{"m", m},
                                 {"classes", o.classes},
                                 {"n", o.n},
                                 {"encoding", std::string(del_encoding_name(o.encoding))}};
  return spec;
}

}  // namespace

std::string_view del_encoding_name(DelEncoding e) {
  return e == DelEncoding::kOneHot ? "one-hot" : "value";
}

Result<DelEncoding> parse_del_encoding(std::string_view s) {
  if (s == "one-hot") return DelEncoding::kOneHot;
  if (s == "value") return DelEncoding::kValue;
  return Status::invalid_argument(
      fmt::format("DEL encoding \"{}\": expected \"one-hot\" or \"value\"", s));
}

Result<Del> Del::load(const std::filesystem::path& dir) {
  IDN_ASSIGN_OR_RETURN(auto package, model::load_package(dir));
  auto r = from_package(std::move(package));
  if (!r.ok()) return r.status().with_context(dir.string());
  return r;
}

Result<Del> Del::from_package(model::Package package) {
  const auto& op = package.spec.operating_point;
  if (!op.contains("del") || !op["del"].is_object()) {
    return Status::invalid_argument("not a DEL package: model.json has no operating_point.del");
  }
  const auto& d = op["del"];
  Del del;
  try {
    del.m_ = d.at("m").get<int64_t>();
    del.classes_ = d.at("classes").get<uint32_t>();
    del.n_ = d.at("n").get<int64_t>();
    IDN_ASSIGN_OR_RETURN(del.encoding_, parse_del_encoding(d.at("encoding").get<std::string>()));
  } catch (const std::exception& e) {
    return Status::invalid_argument(std::string("operating_point.del: ") + e.what());
  }
  if (del.m_ < 1 || del.classes_ < 2 || del.n_ < 1) {
    return Status::invalid_argument("operating_point.del: m, n must be >= 1 and classes >= 2");
  }
  const auto& spec = package.spec;
  if (spec.inputs.size() != 1 ||
      spec.inputs[0].shape !=
          std::vector<int64_t>{input_width(del.m_, del.classes_, del.encoding_)}) {
    return Status::invalid_argument("a DEL package's input must be [m] (value) or [m*C] (one-hot)");
  }
  if (spec.exits.size() != 1 || spec.layer(spec.exits[0].output) == nullptr ||
      spec.layer(spec.exits[0].output)->out_shape != std::vector<int64_t>{del.n_}) {
    return Status::invalid_argument("a DEL package has one exit of n values");
  }
  del.graph_ = nn::Graph(spec);
  IDN_RETURN_IF_ERROR(del.graph_->load_weights(package.weights));
  del.graph_->eval();
  del.package_ = std::move(package);
  return del;
}

Result<std::vector<std::vector<float>>> Del::embed(const std::vector<std::vector<Label>>& xs) {
  for (const auto& x : xs) IDN_RETURN_IF_ERROR(check_labels(x, m_, classes_));
  std::vector<std::vector<float>> out;
  torch::NoGradGuard ng;
  constexpr size_t kChunk = 64;  // one-hot rows are m*C floats each
  for (size_t i = 0; i < xs.size(); i += kChunk) {
    std::vector<std::vector<Label>> part(xs.begin() + i,
                                         xs.begin() + std::min(xs.size(), i + kChunk));
    torch::Tensor y = graph_->forward_all(encode_dense(part, m_, classes_, encoding_))[0];
    y = torch::nn::functional::normalize(y, torch::nn::functional::NormalizeFuncOptions().dim(1))
            .contiguous();
    for (int64_t b = 0; b < y.size(0); ++b) {
      const float* p = y[b].data_ptr<float>();
      out.emplace_back(p, p + n_);
    }
  }
  return out;
}

Result<std::vector<float>> Del::embed(std::span<const Label> x) {
  IDN_ASSIGN_OR_RETURN(auto ys, embed(std::vector<std::vector<Label>>{{x.begin(), x.end()}}));
  return std::move(ys[0]);
}

Result<Del> train_del(std::span<const Label> xt_span, const DelOptions& o,
                      const std::function<void(const DelEpoch&)>& progress) {
  if (o.classes < 2 || o.n < 2 || o.hidden < 1 || o.epochs < 1 || o.batch < 1 ||
      o.samples_per_epoch < o.batch || o.test_samples < 1 || !(o.lr > 0)) {
    return Status::invalid_argument(
        "DEL options: need classes >= 2, n >= 2, hidden, epochs, batch, test samples >= 1, "
        "samples per epoch >= batch and lr > 0");
  }
  const int64_t m = static_cast<int64_t>(xt_span.size());
  if (m < 1) return Status::invalid_argument("empty test label vector");
  IDN_RETURN_IF_ERROR(check_labels(xt_span, m, o.classes));
  const std::vector<Label> xt(xt_span.begin(), xt_span.end());
  torch::manual_seed(o.seed);
  std::mt19937_64 rng(o.seed), test_rng(o.seed ^ 0x9e3779b97f4a7c15ULL);

  auto draw = [&](std::mt19937_64& r, int64_t count, std::vector<std::vector<Label>>& xs,
                  std::vector<float>& es) -> Status {
    xs.clear();
    es.clear();
    for (int64_t i = 0; i < count; ++i) {
      IDN_ASSIGN_OR_RETURN(auto x, daimon::generate_data(xt, o.classes, r));
      es.push_back(static_cast<float>(*daimon::error(x, xt)));
      xs.push_back(std::move(x));
    }
    return Status::ok();
  };
  std::vector<std::vector<Label>> test_x, xs;
  std::vector<float> test_e, es;
  IDN_RETURN_IF_ERROR(draw(test_rng, o.test_samples, test_x, test_e));

  Trainer t(m, o.classes, o);
  torch::optim::Adam opt(t.parameters(),
                         torch::optim::AdamOptions(o.lr).betas(std::make_tuple(0.9, 0.999)));
  auto ptrs = [](const std::vector<std::vector<Label>>& v, size_t a, size_t b) {
    std::vector<const std::vector<Label>*> p;
    for (size_t i = a; i < b; ++i) p.push_back(&v[i]);
    return p;
  };
  for (int epoch = 1; epoch <= o.epochs; ++epoch) {
    auto t0 = std::chrono::steady_clock::now();
    IDN_RETURN_IF_ERROR(draw(rng, o.samples_per_epoch, xs, es));
    double sum = 0;
    int64_t steps = 0;
    for (int64_t i = 0; i + o.batch <= o.samples_per_epoch; i += o.batch) {
      std::vector<float> be(es.begin() + i, es.begin() + i + o.batch);
      torch::Tensor loss = t.loss(ptrs(xs, i, i + o.batch), xt, be);
      opt.zero_grad();
      loss.backward();
      opt.step();
      sum += loss.item<double>();
      ++steps;
    }
    double test = 0;
    {
      torch::NoGradGuard ng;
      for (size_t i = 0; i < test_x.size(); i += size_t(o.batch)) {
        size_t end = std::min(test_x.size(), i + size_t(o.batch));
        std::vector<float> be(test_e.begin() + i, test_e.begin() + end);
        test += t.loss(ptrs(test_x, i, end), xt, be).item<double>() * double(end - i);
      }
      test /= double(test_x.size());
    }
    if (progress) {
      progress({.epoch = epoch,
                .train_loss = sum / double(steps),
                .test_loss = test,
                .seconds =
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()});
    }
  }
  IDN_ASSIGN_OR_RETURN(auto spec, del_spec(m, o));
  model::Package package{std::move(spec), t.export_weights()};
  IDN_RETURN_IF_ERROR(model::check_weights(package.spec, package.weights));
  return Del::from_package(std::move(package));
}

}  // namespace idn::motifs
