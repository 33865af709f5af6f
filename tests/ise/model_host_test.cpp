// ise::ModelHost without LibTorch or a DHT: two hosts on loopback with real stores and Bitswap,
// a fake routing table for provider records and a fake executor that records what it loads.
// Publishing hosts and provides the service and its package; initModel on the other host finds
// it, fetches and verifies it, loads it and provides it; teardown unloads and withdraws; a
// missing provider or a load failure leaves nothing hosted.
#include "ise/model_host.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "model/package.h"
#include "p2p/p2p_test_util.h"
#include "store/bitswap.h"
#include "store/blockstore.h"
#include "store/importer.h"

namespace idn::ise {
namespace {

namespace fs = std::filesystem;
using p2p::testing::Loop;

// The provider records both hosts see (what a DHT would hold), by key.
using Directory = std::map<core::Multihash, std::vector<routing::PeerInfo>>;

class FakeRouting final : public ServiceRouting {
 public:
  FakeRouting(Directory& dir, routing::PeerInfo self) : dir_(dir), self_(std::move(self)) {}
  p2p::awaitable<Status> provide(core::Multihash key) override {
    provided.insert(key);
    auto& v = dir_[key];
    if (std::none_of(v.begin(), v.end(), [&](const auto& p) { return p.id == self_.id; }))
      v.push_back(self_);
    co_return Status::ok();
  }
  p2p::awaitable<Status> withdraw(core::Multihash key) override {
    withdrawn.insert(key);
    std::erase_if(dir_[key], [&](const auto& p) { return p.id == self_.id; });
    co_return Status::ok();
  }
  p2p::awaitable<Result<std::vector<routing::PeerInfo>>> find_providers(core::Multihash key,
                                                                        size_t n) override {
    auto it = dir_.find(key);
    if (it == dir_.end() || it->second.empty()) co_return Status::not_found("no provider");
    std::vector<routing::PeerInfo> out = it->second;
    if (out.size() > n) out.erase(out.begin() + n, out.end());
    co_return out;
  }
  std::set<core::Multihash> provided, withdrawn;

 private:
  Directory& dir_;
  routing::PeerInfo self_;
};

class FakeExecutor final : public ModelExecutor {
 public:
  bool loaded(const core::Multihash& id) const override { return services.contains(id); }
  Status load(const core::Multihash& id, const ServiceDescriptor& d, const fs::path& dir) override {
    loads++;
    if (fail) return Status::invalid_argument("refused by the test");
    // What an engine would read: the package is whole where it says.
    if (!model::load_package(dir).ok()) return Status::corruption("incomplete package");
    services[id] = {d, dir};
    return Status::ok();
  }
  void unload(const core::Multihash& id) override { services.erase(id); }
  std::map<core::Multihash, std::pair<ServiceDescriptor, fs::path>> services;
  int loads = 0;
  bool fail = false;
};

fs::path temp_dir(const std::string& name) {
  fs::path p =
      fs::temp_directory_path() / ("idn_ise_mh_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p;
}

// A plain one-layer model, its weights zero: all a package needs, no training.
fs::path write_package(const fs::path& dir) {
  auto spec = model::parse_model_spec_text(R"({
    "format": "idn-model", "version": 1, "name": "tiny-linear", "motif": "plain",
    "inputs": [{"name": "x", "dtype": "F32", "shape": [4]}],
    "layers": [{"name": "fc", "type": "linear", "inputs": ["x"],
                "params": {"in_features": 4, "out_features": 2}}],
    "stages": [{"name": "stage0", "layers": ["fc"], "output": "fc"}],
    "exits": [{"name": "exit0", "stage": 0, "layers": [], "output": "fc",
               "criterion": "confidence", "threshold": 0.0}]
  })");
  EXPECT_TRUE(spec.ok()) << spec.status().to_string();
  model::Package pkg{*spec, {}};
  for (const auto& w : spec->required_weights())
    pkg.weights.emplace(w.name, core::Tensor::zeros(core::DType::kF32, w.shape));
  EXPECT_TRUE(model::save_package(pkg, dir).is_ok());
  return dir;
}

struct Peer {
  Loop& loop;
  fs::path dir;
  p2p::testing::HostPtr host;
  std::unique_ptr<store::Blockstore> store;
  std::unique_ptr<store::bitswap::Bitswap> bitswap;
  std::unique_ptr<FakeRouting> routing;
  FakeExecutor executor;
  std::unique_ptr<ModelHost> models;
  int hosted_changes = 0;

  Peer(Loop& l, Directory& directory, const std::string& name)
      : loop(l), dir(temp_dir(name)), host(p2p::testing::make_host(l)) {
    store::BlockstoreOptions o;
    o.sync_writes = false;
    store = std::move(*store::Blockstore::open(dir / "store", o));
    loop.call([&] {
      bitswap = std::make_unique<store::bitswap::Bitswap>(loop.ex(), *host, *store);
      bitswap->start();
      return host->listen(p2p::testing::loopback()).ok();
    });
    routing::PeerInfo self{host->id(), loop.call([&] { return host->listen_addrs(); }), {}};
    routing = std::make_unique<FakeRouting>(directory, self);
    models = std::make_unique<ModelHost>(ModelHost::Parts{loop.ex(), *host, routing.get(), *store,
                                                          *bitswap, executor, dir,
                                                          [this] { hosted_changes++; }});
  }
  ~Peer() {
    loop.call([&] {
      models.reset();
      bitswap->stop();
      bitswap.reset();
      return 0;
    });
    host.reset();
    store.reset();
    fs::remove_all(dir);
  }
  template <class F>
  auto run(F f) {
    return loop.run(f, std::chrono::seconds(60));
  }
  bool hosts(const core::Multihash& id) {
    return loop.call([&] { return models->hosts(id); });
  }
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

struct Fixture : ::testing::Test {
  Loop loop;
  Directory directory;
  fs::path pkg_dir = temp_dir("pkg");
  Fixture() { write_package(pkg_dir); }
  ~Fixture() override { fs::remove_all(pkg_dir); }
};

using ModelHostWithFakes = Fixture;

TEST_F(ModelHostWithFakes, PublishHostsThroughTheExecutorProvidesAndPinsTheService) {
  Peer a(loop, directory, "a");
  auto pub = a.run([&] { return a.models->publish(pkg_dir, "a test model"); });
  ASSERT_TRUE(pub.ok()) << pub.status().to_string();
  EXPECT_EQ(pub->descriptor.description, "a test model");
  // The cost rides in the descriptor: 4x2 weights + 2 biases, F32.
  ASSERT_TRUE(pub->descriptor.cost.has_value());
  EXPECT_EQ(pub->descriptor.cost->bytes, 10u * 4);
  EXPECT_GT(pub->descriptor.cost->flops, 0u);
  ASSERT_EQ(a.executor.services.count(pub->service_id), 1u);
  EXPECT_EQ(a.executor.services[pub->service_id].second,
            a.dir / "models" / pub->model_cid.to_string());
  EXPECT_EQ(a.routing->provided,
            (std::set<core::Multihash>{pub->service_id, pub->model_cid.hash()}));
  EXPECT_TRUE(a.hosts(pub->service_id));
  EXPECT_TRUE(a.loop.call([&] { return a.models->pinned(pub->service_id); }));
  EXPECT_EQ(read_file(a.dir / "hosted"), service_id_text(pub->service_id) + "\n");
  EXPECT_EQ(a.hosted_changes, 1);
  // The operator's service is not the ISE's to tear down.
  Status st = a.run([&] { return a.models->teardown(pub->service_id); });
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_TRUE(a.executor.loaded(pub->service_id));
  EXPECT_TRUE(a.routing->withdrawn.empty());
}

TEST_F(ModelHostWithFakes, InitModelFetchesVerifiesLoadsAndProvidesAndTeardownUndoesIt) {
  Peer a(loop, directory, "a"), b(loop, directory, "b");
  auto pub = a.run([&] { return a.models->publish(pkg_dir, ""); });
  ASSERT_TRUE(pub.ok()) << pub.status().to_string();
  // The descriptor alone first (the ISE reads a service's cost before hosting it).
  auto desc = b.run([&] { return b.models->descriptor(pub->service_id); });
  ASSERT_TRUE(desc.ok()) << desc.status().to_string();
  EXPECT_EQ(*desc, pub->descriptor);
  EXPECT_EQ(b.executor.loads, 0);

  Status st = b.run([&] { return b.models->init_model(pub->service_id, /*pin=*/false); });
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  ASSERT_TRUE(b.executor.loaded(pub->service_id));
  EXPECT_EQ(b.executor.services[pub->service_id].first, pub->descriptor);
  EXPECT_EQ(read_file(b.executor.services[pub->service_id].second / "model.json"),
            read_file(pkg_dir / "model.json"));
  EXPECT_EQ(b.routing->provided,
            (std::set<core::Multihash>{pub->service_id, pub->model_cid.hash()}));
  EXPECT_TRUE(b.hosts(pub->service_id));
  EXPECT_FALSE(b.loop.call([&] { return b.models->pinned(pub->service_id); }));
  EXPECT_FALSE(fs::exists(b.dir / "hosted"));  // the ISE's choice is not re-hosted at start
  EXPECT_EQ(b.hosted_changes, 1);
  // Idempotent.
  st = b.run([&] { return b.models->init_model(pub->service_id, false); });
  EXPECT_TRUE(st.is_ok());
  EXPECT_EQ(b.executor.loads, 1);

  st = b.run([&] { return b.models->teardown(pub->service_id); });
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_FALSE(b.executor.loaded(pub->service_id));
  EXPECT_FALSE(b.hosts(pub->service_id));
  EXPECT_EQ(b.routing->withdrawn, (std::set<core::Multihash>{pub->service_id}));
  EXPECT_EQ(b.hosted_changes, 2);
  ASSERT_EQ(directory[pub->service_id].size(), 1u);
  EXPECT_EQ(directory[pub->service_id][0].id, a.host->id());
}

TEST_F(ModelHostWithFakes, ADescriptorSentByAPeerIsStoredUnderItsIdAndHostedFromTheModelCid) {
  Peer a(loop, directory, "a"), b(loop, directory, "b");
  auto pub = a.run([&] { return a.models->publish(pkg_dir, ""); });
  ASSERT_TRUE(pub.ok()) << pub.status().to_string();
  // A new service over the same package: nobody provides its ID, only the model's CID.
  ServiceDescriptor d = pub->descriptor;
  d.description = "the same package, described anew";
  auto id = service_id(d);
  ASSERT_TRUE(id.ok());
  const std::string pretty = to_json(d).dump(2);  // any formatting
  auto stored = b.loop.call([&] { return b.models->store_descriptor(pretty); });
  ASSERT_TRUE(stored.ok()) << stored.status().to_string();
  EXPECT_EQ(*stored, *id);
  auto local = b.loop.call([&] { return b.models->local_descriptor(*id); });
  ASSERT_TRUE(local.ok()) << local.status().to_string();  // canonical under its ID
  EXPECT_EQ(*local, d);
  EXPECT_FALSE(b.store->is_pinned_block(ModelHost::descriptor_cid(*id)));  // not hosted yet
  Status st = b.run([&] { return b.models->init_model(*id, /*pin=*/false); });
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_TRUE(b.hosts(*id));
  EXPECT_TRUE(b.store->is_pinned_block(ModelHost::descriptor_cid(*id)));
  EXPECT_TRUE(b.routing->provided.contains(*id));

  // Untrusted text is refused with the parser's reason; nothing is stored.
  for (const std::string& bad : {std::string("{"), std::string(R"({"format":"idn-service"})"),
                                 std::string(kMaxDescriptorBytes + 1, ' ')}) {
    auto r = b.loop.call([&] { return b.models->store_descriptor(bad); });
    EXPECT_FALSE(r.ok()) << bad.substr(0, 40);
    EXPECT_FALSE(r.status().message().empty());
  }
}

TEST_F(ModelHostWithFakes, NoProviderIsNotFoundAndNothingIsLoaded) {
  Peer b(loop, directory, "b");
  core::Multihash unknown = core::Multihash::sha2_256(as_bytes("no such descriptor"));
  Status st = b.run([&] { return b.models->init_model(unknown, false); });
  EXPECT_EQ(st.code(), Code::kNotFound) << st.to_string();
  EXPECT_EQ(b.executor.loads, 0);
  EXPECT_TRUE(b.routing->provided.empty());
  EXPECT_FALSE(b.hosts(unknown));
}

TEST_F(ModelHostWithFakes, AnExecutorThatCannotLoadLeavesTheServiceUnhostedAndUnprovided) {
  Peer a(loop, directory, "a"), b(loop, directory, "b");
  auto pub = a.run([&] { return a.models->publish(pkg_dir, ""); });
  ASSERT_TRUE(pub.ok()) << pub.status().to_string();
  b.executor.fail = true;
  Status st = b.run([&] { return b.models->init_model(pub->service_id, false); });
  EXPECT_EQ(st.code(), Code::kInvalidArgument) << st.to_string();
  EXPECT_NE(st.message().find("refused by the test"), std::string::npos) << st.to_string();
  EXPECT_FALSE(b.hosts(pub->service_id));
  EXPECT_TRUE(b.routing->provided.empty());
  EXPECT_EQ(b.hosted_changes, 0);
}

TEST_F(ModelHostWithFakes, HostsFetchPinAndProvideTheOnnxFormTheDescriptorNames) {
  Peer a(loop, directory, "a"), b(loop, directory, "b");
  const fs::path onnx_dir = temp_dir("onnx");
  fs::create_directories(onnx_dir);
  std::ofstream(onnx_dir / "manifest.json") << "{\"format\": \"idn-onnx\"}\n";
  std::ofstream(onnx_dir / "stage_0.onnx") << "graph bytes";
  auto onnx = store::import_path(onnx_dir, *a.store);
  fs::remove_all(onnx_dir);
  ASSERT_TRUE(onnx.ok()) << onnx.status().to_string();
  ASSERT_TRUE(a.store->pin(onnx->cid).is_ok());
  auto pub = store_publication(*a.store, pkg_dir, "", onnx->cid);
  ASSERT_TRUE(pub.ok()) << pub.status().to_string();
  ASSERT_EQ(pub->descriptor.onnx_cid, onnx->cid.to_string());
  Status st = a.run([&] { return a.models->init_model(pub->service_id); });
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  const std::set<core::Multihash> all{pub->service_id, pub->model_cid.hash(), onnx->cid.hash()};
  EXPECT_EQ(a.routing->provided, all);

  st = b.run([&] { return b.models->init_model(pub->service_id, false); });
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_TRUE(b.store->pin(onnx->cid).is_ok());  // every block of it arrived
  EXPECT_EQ(b.routing->provided, all);

  // An ONNX form nobody has does not stop the service from being hosted.
  const core::Cid missing = core::Cid::of(core::Multicodec::kDagPb, as_bytes("nowhere"));
  auto pub2 = store_publication(*a.store, pkg_dir, "second", missing);
  ASSERT_TRUE(pub2.ok()) << pub2.status().to_string();
  st = a.run([&] { return a.models->init_model(pub2->service_id); });
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  Peer c(loop, directory, "c");
  st = c.run([&] { return c.models->init_model(pub2->service_id, false); });
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_TRUE(c.hosts(pub2->service_id));
  EXPECT_EQ(c.routing->provided,
            (std::set<core::Multihash>{pub2->service_id, pub2->model_cid.hash()}));
}

}  // namespace
}  // namespace idn::ise
