#include "motifs/ddnn.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "motifs/ddnn_train.h"
#include "nn/binary_export.h"

namespace idn::motifs {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

torch::Tensor mask(std::vector<std::vector<int>> rows) {
  std::vector<uint8_t> flat;
  for (auto& r : rows)
    for (int v : r) flat.push_back(static_cast<uint8_t>(v));
  return torch::tensor(flat, torch::kUInt8)
      .view({static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())})
      .to(torch::kBool);
}

// Two samples, three devices, two features each.
torch::Tensor hand_inputs() {
  return torch::tensor({1.f, -2.f, 3.f, 0.f, -1.f, 5.f,  //
                        4.f, 4.f, -3.f, 1.f, 2.f, -6.f})
      .view({2, 3, 2});
}

TEST(DdnnAggregationTest, MaxPoolTakesEachComponentsMaximumOverPresentDevices) {
  const auto x = hand_inputs();
  auto all = aggregate(Aggregation::kMax, x, mask({{1, 1, 1}, {1, 1, 1}}));
  EXPECT_TRUE(all.equal(torch::tensor({3.f, 5.f, 4.f, 4.f}).view({2, 2})));
  // Device 1 absent in sample 0 (its 3 is not taken: -1 is the max of devices 0 and 2 for
  // the first component), devices 0 and 1 absent in sample 1.
  auto some = aggregate(Aggregation::kMax, x, mask({{1, 0, 1}, {0, 0, 1}}));
  EXPECT_TRUE(some.equal(torch::tensor({1.f, 5.f, 2.f, -6.f}).view({2, 2})));
  auto none = aggregate(Aggregation::kMax, x, mask({{0, 0, 0}, {1, 0, 0}}));
  EXPECT_TRUE(none.equal(torch::tensor({0.f, 0.f, 4.f, 4.f}).view({2, 2})));
}

TEST(DdnnAggregationTest, AveragePoolAveragesPresentDevicesOnly) {
  const auto x = hand_inputs();
  auto all = aggregate(Aggregation::kAverage, x, mask({{1, 1, 1}, {1, 1, 1}}));
  EXPECT_TRUE(torch::allclose(all, torch::tensor({1.f, 1.f, 1.f, -1.f / 3}).view({2, 2})));
  auto some = aggregate(Aggregation::kAverage, x, mask({{1, 0, 1}, {0, 0, 1}}));
  EXPECT_TRUE(some.equal(torch::tensor({0.f, 1.5f, 2.f, -6.f}).view({2, 2})));
}

TEST(DdnnAggregationTest, ConcatKeepsDeviceOrderAndZeroesAbsentBlocks) {
  const auto x = hand_inputs();
  auto some = aggregate(Aggregation::kConcat, x, mask({{1, 0, 1}, {1, 1, 1}}));
  EXPECT_TRUE(
      some.equal(torch::tensor({1.f, -2.f, 0.f, 0.f, -1.f, 5.f, 4.f, 4.f, -3.f, 1.f, 2.f, -6.f})
                     .view({2, 6})));
  // Feature maps concatenate along channels: [N, K, C, H, W] -> [N, K*C, H, W].
  auto maps = torch::arange(2 * 3 * 2 * 2 * 2, torch::kFloat32).view({2, 3, 2, 2, 2});
  auto cc = aggregate(Aggregation::kConcat, maps, mask({{1, 1, 1}, {1, 1, 1}}));
  EXPECT_EQ(cc.sizes().vec(), (std::vector<int64_t>{2, 6, 2, 2}));
  EXPECT_TRUE(cc[1][3].equal(maps[1][1][1]));
}

TEST(DdnnAggregationTest, MaxPoolGradientReachesOnlyTheMaximum) {
  auto x = hand_inputs().requires_grad_();
  aggregate(Aggregation::kMax, x, mask({{1, 0, 1}, {1, 1, 1}})).sum().backward();
  EXPECT_TRUE(x.grad().equal(
      torch::tensor({1.f, 0.f, 0.f, 0.f, 0.f, 1.f, 1.f, 1.f, 0.f, 0.f, 0.f, 0.f}).view({2, 3, 2})));
}

TEST(DdnnConfigTest, LettersGiveFigure41sStructures) {
  auto a = ddnn_config('a'), b = ddnn_config('b'), c = ddnn_config('c', 6), d = ddnn_config('d'),
       e = ddnn_config('e', 4), f = ddnn_config('f', 6);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok() && d.ok() && e.ok() && f.ok());
  EXPECT_EQ(a->devices(), 1);
  EXPECT_FALSE(a->has_local());
  EXPECT_EQ(c->devices(), 6);
  EXPECT_FALSE(c->has_edge());
  EXPECT_EQ(d->edges, 1);
  EXPECT_EQ(e->devices(), 4);
  EXPECT_EQ(f->edges, 2);
  EXPECT_EQ(f->edge_devices(1), (std::pair<int64_t, int64_t>{3, 6}));
  auto bad = ddnn_config('g');
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("'g'"));
  EXPECT_THAT(parse_aggregation("XX").status().message(), HasSubstr("MP, AP or CC"));
  EXPECT_EQ(*parse_aggregation("cc"), Aggregation::kConcat);
  auto j = to_json(*f);
  EXPECT_EQ(to_json(*ddnn_config_from_json(j)), j);
  j["edges"] = 0;
  EXPECT_FALSE(ddnn_config_from_json(j).ok());
}

// A tiny multi-view set: three classes with distinct shapes (a bar, a cross, a box) plus noise,
// seen by four cameras.
data::Dataset shapes_source() {
  data::Dataset d;
  d.c = 1;
  d.h = d.w = 28;
  uint64_t s = 11;
  for (int64_t label : {2, 4, 5})
    for (int i = 0; i < 12; ++i) {
      for (int y = 0; y < 28; ++y)
        for (int x = 0; x < 28; ++x) {
          s = s * 6364136223846793005ull + 1442695040888963407ull;
          const float noise = static_cast<float>(s >> 40) / static_cast<float>(1 << 24) * 0.3f;
          bool on = label == 2   ? (x >= 12 && x < 16)
                    : label == 4 ? (x >= 12 && x < 16) || (y >= 12 && y < 16)
                                 : (x < 4 || x >= 24 || y < 4 || y >= 24);
          d.images.push_back(std::min(1.f, (on ? 0.8f : 0.f) + noise));
        }
      d.labels.push_back(label);
      ++d.n;
    }
  return d;
}

data::MultiViewDataset tiny_views(int64_t samples, uint64_t seed) {
  data::MultiViewOptions o;
  o.samples = samples;
  o.size = 16;
  o.seed = seed;
  auto cams = data::default_cameras(3);
  cams.resize(4);
  for (auto& c : cams) {
    c.shift_x /= 2;
    c.shift_y /= 2;
    c.scale /= 2;
    c.occluder_w = c.occluder_h = 0;
  }
  o.cameras = cams;
  auto d = data::generate_multiview(shapes_source(), o);
  EXPECT_TRUE(d.ok()) << d.status().to_string();
  return *d;
}

DdnnConfig tiny_config(char letter, Aggregation local = Aggregation::kMax,
                       Aggregation cloud = Aggregation::kConcat) {
  auto c = ddnn_config(letter, 4);
  EXPECT_TRUE(c.ok());
  c->size = 16;
  c->device_filters = 4;
  c->edge_filters = 4;
  c->cloud_filters = 8;
  c->local = local;
  c->cloud = cloud;
  return *c;
}

struct Trained {
  Ddnn model{nullptr};
  MultiViewTensors data;
};

Trained train_tiny(const DdnnConfig& c, int64_t epochs = 8) {
  torch::manual_seed(3);
  Trained t;
  t.model = Ddnn(c);
  auto d = multiview_tensors(tiny_views(120, 5), c);
  EXPECT_TRUE(d.ok());
  t.data = *d;
  DdnnTrainOptions o;
  o.epochs = epochs;
  o.batch_size = 16;
  o.lr = 3e-3;
  auto r = train_ddnn(t.model, t.data, o);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  if (r.ok()) EXPECT_EQ(static_cast<int64_t>(r->size()), epochs);
  return t;
}

TEST(DdnnModelTest, EveryConfigurationRunsForwardAndBackward) {
  for (char letter : {'a', 'b', 'c', 'd', 'e', 'f'})
    for (auto agg : {Aggregation::kMax, Aggregation::kAverage, Aggregation::kConcat}) {
      SCOPED_TRACE(std::string(1, letter) + " " + std::string(aggregation_name(agg)));
      auto c = tiny_config(letter, agg, agg);
      c.edge = agg;
      torch::manual_seed(1);
      Ddnn m(c);
      auto d = multiview_tensors(tiny_views(6, 1), c);
      ASSERT_TRUE(d.ok());
      auto out = m->forward(d->views, presence(c, d->view_labels));
      EXPECT_EQ(out.cloud.sizes().vec(), (std::vector<int64_t>{6, 3}));
      EXPECT_EQ(out.local.defined(), letter != 'a');
      EXPECT_EQ(out.edge.defined(), letter >= 'd');
      auto loss = ddnn_loss(out, d->view_labels, d->labels, {});
      loss.total.backward();
      EXPECT_TRUE(std::isfinite(loss.total.item<double>()));
    }
}

TEST(DdnnModelTest, AbsentViewsAreLeftOutOfLossAndAggregation) {
  auto c = tiny_config('c', Aggregation::kAverage, Aggregation::kAverage);
  torch::manual_seed(2);
  Ddnn m(c);
  m->eval();
  auto d = multiview_tensors(tiny_views(8, 2), c);
  ASSERT_TRUE(d.ok());
  auto present = presence(c, d->view_labels);
  ASSERT_TRUE(present.logical_not().any().item<bool>()) << "the set should have absent views";
  auto out = m->forward(d->views, present);
  // Whatever an absent view holds does not change any exit.
  auto scrambled = d->views.clone();
  scrambled.masked_fill_(present.logical_not().view({8, 4, 1, 1, 1}), 200.f);
  auto out2 = m->forward(scrambled, present);
  EXPECT_TRUE(out.local.equal(out2.local));
  EXPECT_TRUE(out.cloud.equal(out2.cloud));
  // The reference's policy (mask_absent = false) does see them.
  c.mask_absent = false;
  EXPECT_TRUE(presence(c, d->view_labels).all().item<bool>());
  // Device losses ignore the samples a device does not see: changing its scores there changes
  // nothing.
  auto loss = ddnn_loss(out, d->view_labels, d->labels, {1, 0, 0, 0});
  for (auto& s : out.device_scores) s = s.clone();
  out.device_scores[0].masked_fill_(d->view_labels.select(1, 0).lt(0).unsqueeze(1), 100.f);
  EXPECT_DOUBLE_EQ(ddnn_loss(out, d->view_labels, d->labels, {1, 0, 0, 0}).device, loss.device);
}

TEST(DdnnInferenceTest, ThresholdsDecideWhereSamplesExit) {
  auto c = tiny_config('e');
  torch::manual_seed(4);
  Ddnn m(c);
  m->eval();
  auto d = multiview_tensors(tiny_views(20, 3), c);
  ASSERT_TRUE(d.ok());
  const auto present = presence(c, d->view_labels);
  const int64_t seen = present.sum().item<int64_t>();
  const auto feat_bytes = (device_feature_shape(c).size() + 7) / 8;
  auto all_local = infer_staged(m, d->views, present, {1.0, 1.0});
  EXPECT_THAT(all_local.exit, ::testing::Each(0));
  EXPECT_EQ(all_local.edge_runs, 0);
  EXPECT_EQ(all_local.device_bytes, seen * 4 * 3);
  auto all_edge = infer_staged(m, d->views, present, {0.0, 1.0});
  EXPECT_THAT(all_edge.exit, ::testing::Each(1));
  EXPECT_EQ(all_edge.cloud_runs, 0);
  auto all_cloud = infer_staged(m, d->views, present, {0.0, 0.0});
  EXPECT_THAT(all_cloud.exit, ::testing::Each(2));
  EXPECT_EQ(all_cloud.cloud_runs, 20);
  EXPECT_EQ(all_cloud.device_bytes, seen * (4 * 3 + feat_bytes));
  // In between, a sample exits locally exactly when its local η <= T (η as computed at exit
  // time; it agrees with torch's own entropy of the local exit).
  torch::NoGradGuard no_grad;
  auto out = m->forward(d->views, present);
  const auto p = torch::softmax(out.local, 1);
  const auto eta = -(p * p.log()).sum(1) / std::log(3.0);
  for (int64_t i = 0; i < 20; ++i)
    EXPECT_NEAR(all_local.entropy[static_cast<size_t>(i)], eta[i].item<double>(), 1e-5);
  auto sorted = all_local.entropy;
  std::sort(sorted.begin(), sorted.end());
  const double t = sorted[10];
  ASSERT_GT(t, 0);
  ASSERT_LT(t, 1);
  auto mid = infer_staged(m, d->views, present, {t, 0.0});
  int64_t local = 0;
  for (int64_t i = 0; i < 20; ++i) {
    EXPECT_EQ(mid.exit[static_cast<size_t>(i)] == 0, all_local.entropy[static_cast<size_t>(i)] <= t)
        << i;
    local += mid.exit[static_cast<size_t>(i)] == 0;
  }
  EXPECT_GT(local, 0);
  EXPECT_LT(local, 20);
  EXPECT_EQ(mid.edge_runs, 20 - local);
  // Each exit's answer is that exit's argmax.
  for (int64_t i = 0; i < 20; ++i) {
    EXPECT_EQ(all_local.predicted[static_cast<size_t>(i)], out.local[i].argmax().item<int64_t>());
    EXPECT_EQ(all_cloud.predicted[static_cast<size_t>(i)], out.cloud[i].argmax().item<int64_t>());
  }
}

TEST(DdnnTrainTest, TinyModelBeatsChanceAndPackageRoundTrips) {
  auto c = tiny_config('c');
  auto t = train_tiny(c);
  auto e = evaluate_ddnn(t.model, t.data, {0.8, 0.8});
  ASSERT_TRUE(e.ok()) << e.status().to_string();
  EXPECT_GT(e->local, 0.6);
  EXPECT_GT(e->cloud, 0.6);
  EXPECT_GT(e->overall, 0.6);
  EXPECT_TRUE(std::isnan(e->edge));
  EXPECT_NEAR(e->local_exit + e->edge_exit + e->cloud_exit, 1.0, 1e-12);
  auto all_local = evaluate_ddnn(t.model, t.data, {1.0, 1.0});
  ASSERT_TRUE(all_local.ok());
  EXPECT_DOUBLE_EQ(all_local->overall, all_local->local);
  EXPECT_DOUBLE_EQ(all_local->eq41_bytes, 12.0);
  auto held_out = multiview_tensors(tiny_views(60, 9), c);
  ASSERT_TRUE(held_out.ok());
  auto test = evaluate_ddnn(t.model, *held_out, {0.8, 0.8});
  ASSERT_TRUE(test.ok());
  EXPECT_GT(test->overall, 0.6);

  const fs::path dir = fs::temp_directory_path() / ("ddnn-test-" + std::to_string(::getpid()));
  DdnnPackage p;
  p.model = t.model;
  p.thresholds = {0.7, 0.9};
  p.labels = {"a", "b", "c"};
  ASSERT_TRUE(save_ddnn(p, dir).is_ok());
  auto loaded = load_ddnn(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  EXPECT_EQ(loaded->thresholds.local, 0.7);
  EXPECT_EQ(to_json(loaded->model->config()), to_json(c));
  torch::NoGradGuard no_grad;
  const auto present = presence(c, t.data.view_labels);
  auto a = t.model->forward(t.data.views, present),
       b = loaded->model->forward(t.data.views, present);
  EXPECT_TRUE(a.local.equal(b.local));
  EXPECT_TRUE(a.cloud.equal(b.cloud));

  // Every device's packed section equals the trained device section bit for bit.
  for (int64_t dev = 0; dev < c.devices(); ++dev) {
    std::ifstream in(dir / ("device" + std::to_string(dev) + ".idnb"), std::ios::binary);
    Bytes bytes((std::istreambuf_iterator<char>(in)), {});
    auto s = ondevice::Section::parse(bytes);
    ASSERT_TRUE(s.ok());
    auto torch_out = t.model->device_forward(dev, t.data.views.select(1, dev));
    for (int64_t i = 0; i < t.data.size(); ++i) {
      std::vector<uint8_t> px;
      for (float v : std::span<const float>(t.data.views[i][dev].contiguous().data_ptr<float>(),
                                            static_cast<size_t>(3 * 16 * 16)))
        px.push_back(static_cast<uint8_t>(v));
      auto r = s->run_pixels(px);
      ASSERT_TRUE(r.ok());
      const auto& scores = r->back().scores;
      for (int64_t k = 0; k < 3; ++k)
        ASSERT_EQ(scores[static_cast<size_t>(k)], torch_out.scores[i][k].item<float>())
            << "device " << dev << " sample " << i;
      // The features it would send upward: bit = +1.
      const auto& bits = (*r)[r->size() - 2].bits;
      const auto f = torch_out.features[i].flatten();
      for (int64_t k = 0; k < f.size(0); ++k)
        ASSERT_EQ((bits[static_cast<size_t>(k / 64)] >> (k % 64)) & 1,
                  f[k].item<float>() > 0 ? 1u : 0u);
    }
  }

  // A corrupt package is refused with the file named.
  {
    std::fstream f(dir / "device1.idnb", std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(40);
    f.put('\x5a');
  }
  auto corrupt = load_ddnn(dir);
  ASSERT_FALSE(corrupt.ok());
  EXPECT_THAT(corrupt.status().to_string(), HasSubstr("device1.idnb"));
  std::ofstream(dir / kDdnnManifestFile) << "{\"format\": \"idn-ddnn\"";
  EXPECT_THAT(load_ddnn(dir).status().to_string(), HasSubstr("ddnn.json"));
  fs::remove_all(dir);
}

TEST(DdnnTrainTest, FailedDevicesAndIndividualAccuracy) {
  auto c = tiny_config('c');
  auto t = train_tiny(c, 4);
  auto failed = evaluate_ddnn(t.model, t.data, {0.8, 0.8}, {0, 1, 2, 3});
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(failed->device_bytes_per_sample, 0.0);  // nobody sends
  EXPECT_FALSE(evaluate_ddnn(t.model, t.data, {0.8, 0.8}, {7}).ok());
  DdnnTrainOptions o;
  o.epochs = 8;
  o.batch_size = 16;
  o.lr = 3e-3;
  // Camera 0 sees the item whole; trained alone, it classifies held-out samples well.
  auto acc = individual_accuracy(tiny_views(120, 5), tiny_views(60, 9), 0, c, o);
  ASSERT_TRUE(acc.ok()) << acc.status().to_string();
  EXPECT_GT(*acc, 0.6);
  EXPECT_FALSE(individual_accuracy(tiny_views(20, 5), tiny_views(20, 9), 9, c, o).ok());
}

TEST(DdnnTrainTest, DeviceDropoutClearsPresentDevicesAtRateQButNeverAll) {
  // Rows 0-999: four devices present; 1000-1999: device 0 only; 2000-2999: none.
  const int64_t n = 3000;
  auto present = torch::ones({n, 4}, torch::kBool);
  present.narrow(0, 1000, 1000).narrow(1, 1, 3).fill_(false);
  present.narrow(0, 2000, 1000).fill_(false);
  auto a = drop_devices(present, 0.3, 7), b = drop_devices(present, 0.3, 7),
       other = drop_devices(present, 0.3, 8);
  ASSERT_TRUE(a.ok() && b.ok() && other.ok()) << a.status().to_string();
  EXPECT_TRUE(a->equal(*b));
  EXPECT_FALSE(a->equal(*other));
  // Only present devices are cleared; a sample keeps at least one (a lone device always stays).
  EXPECT_FALSE(a->logical_and(present.logical_not()).any().item<bool>());
  EXPECT_TRUE(a->narrow(0, 0, 2000).any(1).all().item<bool>());
  EXPECT_TRUE(a->narrow(0, 1000, 1000).equal(present.narrow(0, 1000, 1000)));
  EXPECT_FALSE(a->narrow(0, 2000, 1000).any().item<bool>());
  // Each of four devices is cleared with probability q, less the rows where all four were drawn
  // and one stays: q - q^4 / 4 (sd of the estimate 0.007).
  const auto full = a->narrow(0, 0, 1000);
  EXPECT_NEAR(1 - full.to(torch::kFloat64).mean().item<double>(), 0.3 - std::pow(0.3, 4) / 4, 0.03);
  EXPECT_TRUE(full.sum(1).lt(3).any().item<bool>()) << "several devices of a sample may drop";
  // With q = 0.9 most full rows keep one device, chosen at random: each device is the one.
  auto high = drop_devices(present, 0.9, 7);
  ASSERT_TRUE(high.ok());
  const auto h = high->narrow(0, 0, 1000);
  EXPECT_TRUE(h.any(1).all().item<bool>());
  const auto lone = h.index_select(0, h.sum(1).eq(1).nonzero().squeeze(1));
  EXPECT_GT(lone.size(0), 500);
  for (int64_t d = 0; d < 4; ++d) EXPECT_GT(lone.select(1, d).sum().item<int64_t>(), 100) << d;
  // q = 0 changes nothing; q outside [0, 1) is refused.
  EXPECT_TRUE(drop_devices(present, 0, 7)->equal(present));
  EXPECT_THAT(drop_devices(present, 1, 7).status().message(), HasSubstr("[0, 1)"));
  EXPECT_FALSE(drop_devices(present, -0.1, 7).ok());
}

bool same_weights(const Ddnn& a, const Ddnn& b) {
  const auto x = a->named_parameters(), y = b->named_parameters();
  for (const auto& p : x)
    if (!p.value().equal(y[p.key()])) return false;
  const auto bx = a->named_buffers(), by = b->named_buffers();
  for (const auto& p : bx)
    if (!p.value().equal(by[p.key()])) return false;
  return true;
}

TEST(DdnnTrainTest, DeviceDropoutIsSeededAndOffAtZero) {
  const auto c = tiny_config('c');
  auto d = multiview_tensors(tiny_views(120, 5), c);
  ASSERT_TRUE(d.ok());
  const int64_t seen = presence(c, d->view_labels).sum().item<int64_t>();
  struct Fit {
    Ddnn model{nullptr};
    std::vector<DdnnEpoch> epochs;
  };
  auto fit = [&](DdnnTrainOptions o) {
    torch::manual_seed(3);
    Fit f{Ddnn(c), {}};
    o.epochs = 3;
    o.batch_size = 16;
    o.lr = 3e-3;
    auto r = train_ddnn(f.model, *d, o);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    if (r.ok()) f.epochs = *r;
    return f;
  };
  DdnnTrainOptions off, zero, q3, q3_seed2;
  zero.device_dropout = 0;
  q3.device_dropout = q3_seed2.device_dropout = 0.3;
  q3_seed2.seed = 2;
  const auto base = fit(off), z = fit(zero), a = fit(q3), b = fit(q3), s2 = fit(q3_seed2);
  // q = 0 is the training without dropout: nothing dropped, the same weights.
  for (const auto& e : z.epochs) EXPECT_EQ(e.dropped, 0);
  EXPECT_TRUE(same_weights(base.model, z.model));
  // q = 0.3: about 30 % of the present views dropped, a fresh draw each epoch, the same for the
  // same seed, and the model trained differently.
  ASSERT_EQ(a.epochs.size(), 3u);
  for (const auto& e : a.epochs) {
    EXPECT_GT(e.dropped, 0.2 * static_cast<double>(seen)) << e.epoch;
    EXPECT_LT(e.dropped, 0.4 * static_cast<double>(seen)) << e.epoch;
  }
  EXPECT_TRUE(a.epochs[0].dropped != a.epochs[1].dropped ||
              a.epochs[1].dropped != a.epochs[2].dropped);
  EXPECT_TRUE(same_weights(a.model, b.model));
  for (size_t i = 0; i < a.epochs.size(); ++i) {
    EXPECT_EQ(a.epochs[i].dropped, b.epochs[i].dropped);
    EXPECT_EQ(a.epochs[i].loss.cloud, b.epochs[i].loss.cloud);
  }
  EXPECT_FALSE(same_weights(a.model, base.model));
  EXPECT_FALSE(same_weights(a.model, s2.model));
  // A dropped view is out of its device's loss as an absent one is, so the losses differ too.
  EXPECT_NE(a.epochs[0].loss.device, base.epochs[0].loss.device);
  torch::manual_seed(3);
  Ddnn m(c);
  DdnnTrainOptions bad;
  bad.device_dropout = 1;
  auto r = train_ddnn(m, *d, bad);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().to_string(), HasSubstr("device dropout"));
}

}  // namespace
}  // namespace idn::motifs
