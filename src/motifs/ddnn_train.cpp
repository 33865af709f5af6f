#include "motifs/ddnn_train.h"

#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "model/exit_criteria.h"
#include "nn/binary_export.h"

namespace idn::motifs {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double accuracy(const torch::Tensor& scores, const torch::Tensor& labels) {
  if (!scores.defined()) return kNaN;
  if (labels.size(0) == 0) return kNaN;
  return scores.argmax(1).eq(labels).to(torch::kFloat64).mean().item<double>();
}

// η of softmax(scores) per row, with the shared §3.4.2 arithmetic.
std::vector<float> entropies(const torch::Tensor& scores) {
  const auto s = scores.detach().to(torch::kFloat32).contiguous();
  const int64_t n = s.size(0), k = s.size(1);
  std::vector<float> probs(static_cast<size_t>(k)), out;
  for (int64_t i = 0; i < n; ++i) {
    std::span<const float> row(s.data_ptr<float>() + i * k, static_cast<size_t>(k));
    model::softmax_with_temperature(row, 1.0, probs);
    out.push_back(static_cast<float>(model::normalized_entropy(probs)));
  }
  return out;
}

int64_t packed_bytes(ondevice::Shape s) {
  return (s.size() + 7) / 8;
}

// splitmix64's finaliser: a seed per epoch from the options' seed.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

Status check_dropout(double q) {
  if (q >= 0 && q < 1) return Status::ok();
  return Status::invalid_argument("device dropout must be in [0, 1), got " + std::to_string(q));
}

}  // namespace

Result<MultiViewTensors> multiview_tensors(const data::MultiViewDataset& d, const DdnnConfig& c) {
  if (d.c != c.channels || d.h != c.size || d.w != c.size)
    return Status::invalid_argument("multi-view set has " + std::to_string(d.c) + "x" +
                                    std::to_string(d.h) + "x" + std::to_string(d.w) +
                                    " views, the model reads " + std::to_string(c.channels) + "x" +
                                    std::to_string(c.size) + "x" + std::to_string(c.size));
  if (d.classes() != c.classes)
    return Status::invalid_argument("multi-view set has " + std::to_string(d.classes()) +
                                    " classes, the model " + std::to_string(c.classes));
  for (int64_t v : c.views)
    if (v >= d.views)
      return Status::invalid_argument("the model reads view " + std::to_string(v) +
                                      ", the set has " + std::to_string(d.views));
  const int64_t n = d.n, k = c.devices(), vs = d.view_size();
  MultiViewTensors t;
  t.views = torch::empty({n, k, d.c, d.h, d.w}, torch::kFloat32);
  t.view_labels = torch::empty({n, k}, torch::kInt64);
  t.labels = torch::from_blob(const_cast<int64_t*>(d.labels.data()), {n}, torch::kInt64).clone();
  float* out = t.views.data_ptr<float>();
  auto vl = t.view_labels.accessor<int64_t, 2>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) {
      const int64_t v = c.views[static_cast<size_t>(j)];
      const auto px = d.view(i, v);
      for (int64_t p = 0; p < vs; ++p) out[(i * k + j) * vs + p] = static_cast<float>(px[p]);
      vl[i][j] = d.view_labels[static_cast<size_t>(i * d.views + v)];
    }
  return t;
}

torch::Tensor presence(const DdnnConfig& c, const torch::Tensor& view_labels) {
  if (c.mask_absent) return view_labels.ge(0);
  return torch::ones(view_labels.sizes(), torch::kBool);
}

Result<torch::Tensor> drop_devices(const torch::Tensor& present, double q, uint64_t seed) {
  if (Status s = check_dropout(q); !s.is_ok()) return s;
  if (present.dim() != 2)
    return Status::invalid_argument("drop_devices: present [N, devices] expected");
  auto out = present.to(torch::kCPU, torch::kBool).clone().contiguous();
  if (q == 0) return out;
  const int64_t n = out.size(0), k = out.size(1);
  bool* p = out.data_ptr<bool>();
  std::mt19937_64 rng(seed);
  std::vector<int64_t> seen;
  for (int64_t i = 0; i < n; ++i) {
    bool* row = p + i * k;
    seen.clear();
    bool kept = false;
    for (int64_t d = 0; d < k; ++d) {
      if (!row[d]) continue;
      seen.push_back(d);
      if (static_cast<double>(rng() >> 11) * 0x1.0p-53 < q)
        row[d] = false;
      else
        kept = true;
    }
    if (!kept && !seen.empty()) row[seen[rng() % seen.size()]] = true;
  }
  return out;
}

DdnnLoss ddnn_loss(const DdnnOutput& out, const torch::Tensor& view_labels,
                   const torch::Tensor& labels, const DdnnLossWeights& w) {
  DdnnLoss l;
  l.total = torch::zeros({}, torch::kFloat32);
  for (size_t d = 0; d < out.device_scores.size(); ++d) {
    const auto y = view_labels.select(1, static_cast<int64_t>(d));
    if (!y.ge(0).any().item<bool>()) continue;  // nobody to learn from: no NaN
    auto ce = torch::nn::functional::cross_entropy(
        out.device_scores[d], y, torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-1));
    l.device += ce.item<double>();
    l.total = l.total + w.device * ce;
  }
  auto add = [&](const torch::Tensor& scores, double weight, double& into) {
    if (!scores.defined()) return;
    auto ce = torch::nn::functional::cross_entropy(scores, labels);
    into = ce.item<double>();
    l.total = l.total + weight * ce;
  };
  add(out.local, w.local, l.local);
  add(out.edge, w.edge, l.edge);
  add(out.cloud, w.cloud, l.cloud);
  return l;
}

Result<std::vector<DdnnEpoch>> train_ddnn(Ddnn& model, const MultiViewTensors& train,
                                          const DdnnTrainOptions& o) {
  const auto& c = model->config();
  const int64_t n = train.size();
  if (n < 2) return Status::invalid_argument("train_ddnn: at least two samples needed");
  if (o.batch_size < 2) return Status::invalid_argument("train_ddnn: batch size must be >= 2");
  if (o.epochs < 0 || !(o.lr > 0))
    return Status::invalid_argument("train_ddnn: epochs >= 0 and lr > 0 expected");
  if (Status s = check_dropout(o.device_dropout); !s.is_ok()) return s.with_context("train_ddnn");
  if (train.views.size(1) != c.devices())
    return Status::invalid_argument("train_ddnn: the set was made for another configuration");
  torch::optim::Adam adam(model->parameters(),
                          torch::optim::AdamOptions(o.lr).betas({o.beta1, o.beta2}).eps(o.eps));
  const auto present = presence(c, train.view_labels);
  std::mt19937_64 rng(o.seed);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::vector<DdnnEpoch> epochs;
  model->train();
  for (int64_t e = 0; e < o.epochs; ++e) {
    const auto start = std::chrono::steady_clock::now();
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    DdnnEpoch ep;
    ep.epoch = e + 1;
    // Device dropout: this epoch's presence; a dropped view is absent, so out of its loss too.
    torch::Tensor ep_present = present, ep_view_labels = train.view_labels;
    if (o.device_dropout > 0) {
      auto dropped = drop_devices(present, o.device_dropout, mix(mix(o.seed) + e));
      if (!dropped.ok()) return dropped.status();
      ep_present = *dropped;
      ep.dropped = present.sum().item<int64_t>() - ep_present.sum().item<int64_t>();
      ep_view_labels = train.view_labels.masked_fill(ep_present.logical_not(), -1);
    }
    int64_t batches = 0;
    for (int64_t b = 0; b < n; b += o.batch_size) {
      int64_t end = std::min(n, b + o.batch_size);
      if (n - end == 1) end = n;  // no batch of one
      const auto idx = torch::from_blob(order.data() + b, {end - b}, torch::kInt64).clone();
      auto out = model->forward(train.views.index_select(0, idx), ep_present.index_select(0, idx));
      auto loss = ddnn_loss(out, ep_view_labels.index_select(0, idx),
                            train.labels.index_select(0, idx), o.weights);
      adam.zero_grad();
      loss.total.backward();
      adam.step();
      model->clip_weights();
      ep.loss.device += loss.device;
      ep.loss.local += loss.local;
      ep.loss.edge += loss.edge;
      ep.loss.cloud += loss.cloud;
      ++batches;
      b = end - o.batch_size;  // the loop adds batch_size back
    }
    for (double* v : {&ep.loss.device, &ep.loss.local, &ep.loss.edge, &ep.loss.cloud})
      *v /= static_cast<double>(batches);
    ep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (o.on_epoch) o.on_epoch(ep);
    epochs.push_back(ep);
  }
  model->eval();
  return epochs;
}

StagedResult infer_staged(Ddnn& model, const torch::Tensor& views, const torch::Tensor& present_in,
                          const DdnnThresholds& t) {
  torch::NoGradGuard no_grad;
  model->eval();
  const auto& c = model->config();
  const int64_t n = views.size(0), k = c.devices();
  const auto present = present_in.to(torch::kBool);
  StagedResult r;
  r.exit.assign(static_cast<size_t>(n), 2);
  r.predicted.assign(static_cast<size_t>(n), 0);
  r.entropy.assign(static_cast<size_t>(n), 0);
  const auto pa = present.accessor<bool, 2>();
  auto present_devices = [&](int64_t i) {
    int64_t m = 0;
    for (int64_t d = 0; d < k; ++d) m += pa[i][d];
    return m;
  };
  auto settle = [&](const torch::Tensor& scores, const std::vector<int64_t>& rows, int exit) {
    const auto e = entropies(scores);
    const auto pred = scores.argmax(1);
    for (size_t j = 0; j < rows.size(); ++j) {
      r.exit[static_cast<size_t>(rows[j])] = exit;
      r.entropy[static_cast<size_t>(rows[j])] = e[j];
      r.predicted[static_cast<size_t>(rows[j])] = pred[static_cast<int64_t>(j)].item<int64_t>();
    }
  };
  // Step 1: every present device runs its section and sends its scores to the local aggregator.
  std::vector<torch::Tensor> features, scores;
  for (int64_t d = 0; d < k; ++d) {
    auto o = model->device_forward(d, views.select(1, d));
    auto mask = present.select(1, d).to(torch::kFloat32);
    features.push_back(o.features * mask.view({n, 1, 1, 1}));
    if (o.scores.defined()) scores.push_back(o.scores * mask.view({n, 1}));
  }
  const auto feat = device_feature_shape(c);
  std::vector<int64_t> rows(static_cast<size_t>(n));
  std::iota(rows.begin(), rows.end(), 0);
  if (c.letter == 'a') {
    for (int64_t i = 0; i < n; ++i)
      r.device_bytes += present_devices(i) * c.channels * c.size * c.size;
  } else {
    for (int64_t i = 0; i < n; ++i) r.device_bytes += present_devices(i) * 4 * c.classes;
    // Steps 2-3: the local aggregator exits the samples it is sure of.
    const auto local = model->local_forward(torch::stack(scores, 1), present);
    const auto e = entropies(local);
    std::vector<int64_t> stay, go;
    for (int64_t i = 0; i < n; ++i)
      (exits_at(e[static_cast<size_t>(i)], t.local) ? stay : go).push_back(i);
    settle(local.index_select(0, torch::tensor(stay, torch::kInt64)), stay, 0);
    rows = go;
    // Step 4: the rest send their features upward, bit-packed.
    for (int64_t i : rows) r.device_bytes += present_devices(i) * packed_bytes(feat);
  }
  if (rows.empty()) return r;
  auto sel = torch::tensor(rows, torch::kInt64);
  auto all_features = torch::stack(features, 1).index_select(0, sel);
  auto sub_present = present.index_select(0, sel);
  if (c.has_edge()) {
    // Step 5: the edge runs on the samples that reached it and exits those it is sure of.
    r.edge_runs = static_cast<int64_t>(rows.size());
    std::vector<torch::Tensor> ef, es, ep;
    for (int64_t g = 0; g < c.edges; ++g) {
      auto [first, last] = c.edge_devices(g);
      auto p = sub_present.narrow(1, first, last - first);
      auto o = model->edge_forward(g, all_features.narrow(1, first, last - first), p);
      ef.push_back(o.features);
      es.push_back(o.scores);
      ep.push_back(p.any(1));
    }
    auto edge_present = torch::stack(ep, 1);
    const auto edge = model->edge_exit(torch::stack(es, 1), edge_present);
    const auto e = entropies(edge);
    std::vector<int64_t> stay_j, go_j, stay, go;
    for (size_t j = 0; j < rows.size(); ++j) {
      if (exits_at(e[j], t.edge)) {
        stay_j.push_back(static_cast<int64_t>(j));
        stay.push_back(rows[j]);
      } else {
        go_j.push_back(static_cast<int64_t>(j));
        go.push_back(rows[j]);
      }
    }
    settle(edge.index_select(0, torch::tensor(stay_j, torch::kInt64)), stay, 1);
    if (go.empty()) return r;
    // Step 6: the edges forward their features to the cloud.
    const auto go_sel = torch::tensor(go_j, torch::kInt64);
    const auto edge_feat = torch::stack(ef, 1).index_select(0, go_sel);
    edge_present = edge_present.index_select(0, go_sel);
    const auto ea = edge_present.accessor<bool, 2>();
    const int64_t bytes = (edge_feat.size(2) * edge_feat.size(3) * edge_feat.size(4) + 7) / 8;
    for (int64_t j = 0; j < edge_present.size(0); ++j)
      for (int64_t g = 0; g < c.edges; ++g) r.edge_bytes += ea[j][g] * bytes;
    r.cloud_runs = static_cast<int64_t>(go.size());
    settle(model->cloud_forward(edge_feat, edge_present), go, 2);
    return r;
  }
  r.cloud_runs = static_cast<int64_t>(rows.size());
  settle(model->cloud_forward(all_features, sub_present), rows, 2);
  return r;
}

Result<DdnnEvaluation> evaluate_ddnn(Ddnn& model, const MultiViewTensors& test,
                                     const DdnnThresholds& t, const std::vector<int64_t>& failed) {
  const auto& c = model->config();
  if (test.size() == 0) return Status::invalid_argument("evaluate_ddnn: empty set");
  if (test.views.size(1) != c.devices())
    return Status::invalid_argument("evaluate_ddnn: the set was made for another configuration");
  auto present = presence(c, test.view_labels).clone();
  for (int64_t d : failed) {
    if (d < 0 || d >= c.devices())
      return Status::invalid_argument("evaluate_ddnn: no device " + std::to_string(d));
    present.select(1, d).fill_(false);
  }
  torch::NoGradGuard no_grad;
  model->eval();
  DdnnEvaluation e;
  e.samples = test.size();
  const auto out = model->forward(test.views, present);
  e.local = accuracy(out.local, test.labels);
  e.edge = accuracy(out.edge, test.labels);
  e.cloud = accuracy(out.cloud, test.labels);
  for (size_t d = 0; d < out.device_scores.size(); ++d) {
    const auto seen =
        test.view_labels.select(1, static_cast<int64_t>(d)).ge(0).nonzero().squeeze(1);
    e.device.push_back(
        accuracy(out.device_scores[d].index_select(0, seen), test.labels.index_select(0, seen)));
  }
  const auto staged = infer_staged(model, test.views, present, t);
  int64_t right = 0, at[3] = {0, 0, 0};
  const auto labels = test.labels.accessor<int64_t, 1>();
  for (int64_t i = 0; i < e.samples; ++i) {
    right += staged.predicted[static_cast<size_t>(i)] == labels[i];
    ++at[staged.exit[static_cast<size_t>(i)]];
  }
  const double n = static_cast<double>(e.samples);
  e.overall = right / n;
  e.local_exit = at[0] / n;
  e.edge_exit = at[1] / n;
  e.cloud_exit = at[2] / n;
  e.device_bytes_per_sample = static_cast<double>(staged.device_bytes) / n;
  e.edge_bytes_per_sample = static_cast<double>(staged.edge_bytes) / n;
  e.raw_bytes_per_sample = present.sum().item<double>() * c.channels * c.size * c.size / n;
  const auto feat = device_feature_shape(c);
  e.eq41_bytes = c.letter == 'a' ? static_cast<double>(c.channels * c.size * c.size)
                                 : 4.0 * c.classes + (1 - e.local_exit) * feat.size() / 8.0;
  if (c.has_local()) {
    auto s = nn::export_section(model->device_blocks(0), ondevice::InputKind::kPixels,
                                {c.channels, c.size, c.size});
    if (!s.ok()) return s.status().with_context("device 0");
    e.device_param_bytes = s->param_bytes();
  }
  return e;
}

nlohmann::json to_json(const DdnnEvaluation& e) {
  auto num = [](double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); };
  nlohmann::json devices = nlohmann::json::array();
  for (double v : e.device) devices.push_back(num(v));
  return {{"samples", e.samples},
          {"local_accuracy", num(e.local)},
          {"edge_accuracy", num(e.edge)},
          {"cloud_accuracy", num(e.cloud)},
          {"overall_accuracy", num(e.overall)},
          {"device_exit_accuracy", devices},
          {"local_exit", e.local_exit},
          {"edge_exit", e.edge_exit},
          {"cloud_exit", e.cloud_exit},
          {"eq41_bytes_per_device", e.eq41_bytes},
          {"device_bytes_per_sample", e.device_bytes_per_sample},
          {"edge_bytes_per_sample", e.edge_bytes_per_sample},
          {"raw_bytes_per_sample", e.raw_bytes_per_sample},
          {"device_param_bytes", e.device_param_bytes}};
}

Result<double> individual_accuracy(const data::MultiViewDataset& train,
                                   const data::MultiViewDataset& test, int64_t view,
                                   const DdnnConfig& like, const DdnnTrainOptions& options) {
  if (view < 0 || view >= train.views || view >= test.views)
    return Status::invalid_argument("individual_accuracy: no view " + std::to_string(view));
  DdnnConfig c = like;
  c.letter = 'b';
  c.views = {0};
  c.edges = 0;
  if (Status s = validate(c); !s.is_ok()) return s;
  // The camera's own data set: the samples it sees, pixels back to 0..255.
  auto camera = [&](const data::MultiViewDataset& d) {
    const auto cam = d.camera(view);
    std::vector<int64_t> seen;
    for (int64_t i = 0; i < cam.n; ++i)
      if (cam.labels[static_cast<size_t>(i)] >= 0) seen.push_back(i);
    MultiViewTensors t;
    const int64_t m = static_cast<int64_t>(seen.size());
    t.views = torch::empty({m, 1, cam.c, cam.h, cam.w}, torch::kFloat32);
    t.labels = torch::empty({m}, torch::kInt64);
    float* out = t.views.data_ptr<float>();
    for (int64_t j = 0; j < m; ++j) {
      const auto img = cam.image(seen[static_cast<size_t>(j)]);
      for (size_t p = 0; p < img.size(); ++p)
        out[j * cam.image_size() + static_cast<int64_t>(p)] = std::round(img[p] * 255.0f);
      t.labels[j] = cam.labels[static_cast<size_t>(seen[static_cast<size_t>(j)])];
    }
    t.view_labels = t.labels.unsqueeze(1).clone();
    return t;
  };
  const auto tr = camera(train), te = camera(test);
  if (tr.size() < 2 || te.size() == 0)
    return Status::invalid_argument("individual_accuracy: camera " + std::to_string(view) +
                                    " sees too few samples");
  Ddnn m(c);
  DdnnTrainOptions o = options;
  o.weights = {1, 0, 0, 0};  // the device's own exit only
  o.on_epoch = nullptr;
  auto fit = train_ddnn(m, tr, o);
  if (!fit.ok()) return fit.status();
  torch::NoGradGuard no_grad;
  auto d = m->device_forward(0, te.views.select(1, 0));
  return accuracy(d.scores, te.labels);
}

}  // namespace idn::motifs
