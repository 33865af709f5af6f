#include "ise/service_descriptor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <limits>

namespace idn::ise {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

std::string root_cid() {
  return core::Cid::of(core::Multicodec::kDagPb, as_bytes("a model package")).to_string();
}

model::ModelSpec mini_spec() {
  auto spec = model::parse_model_spec_text(R"({
    "format": "idn-model", "version": 1, "name": "b-lenet-mini", "motif": "branchynet",
    "inputs": [{"name": "image", "dtype": "F32", "shape": [1, 28, 28]}],
    "layers": [
      {"name": "conv1", "type": "conv2d", "inputs": ["image"],
       "params": {"in_channels": 1, "out_channels": 5, "kernel": 5, "padding": 2}},
      {"name": "pool1", "type": "maxpool2d", "inputs": ["conv1"], "params": {"kernel": 2}},
      {"name": "b0_flat", "type": "flatten", "inputs": ["pool1"]},
      {"name": "b0_fc", "type": "linear", "inputs": ["b0_flat"],
       "params": {"in_features": 980, "out_features": 10}},
      {"name": "flat", "type": "flatten", "inputs": ["pool1"]},
      {"name": "fc", "type": "linear", "inputs": ["flat"],
       "params": {"in_features": 980, "out_features": 10}}
    ],
    "stages": [
      {"name": "stage0", "layers": ["conv1", "pool1"], "output": "pool1"},
      {"name": "stage1", "layers": ["flat", "fc"], "output": "fc"}
    ],
    "exits": [
      {"name": "exit0", "stage": 0, "layers": ["b0_flat", "b0_fc"], "output": "b0_fc",
       "criterion": "entropy", "threshold": 0.5},
      {"name": "exit1", "stage": 1, "layers": [], "output": "fc",
       "criterion": "confidence", "threshold": 0.0}
    ]
  })");
  EXPECT_TRUE(spec.ok()) << spec.status().to_string();
  return *spec;
}

ServiceDescriptor good() {
  auto d = descriptor_from_model(mini_spec(), root_cid(), "FashionMNIST B-LeNet, 2 exits");
  EXPECT_TRUE(d.ok()) << d.status().to_string();
  return *d;
}

TEST(ServiceDescriptor, BuiltFromAModelSpec) {
  ServiceDescriptor d = good();
  EXPECT_EQ(d.name, "b-lenet-mini");
  EXPECT_EQ(d.motif, "branchynet");
  ASSERT_EQ(d.inputs.size(), 1u);
  EXPECT_EQ(d.inputs[0].shape, (std::vector<int64_t>{1, 28, 28}));
  ASSERT_EQ(d.outputs.size(), 1u);
  EXPECT_EQ(d.outputs[0].shape, (std::vector<int64_t>{10}));
  ASSERT_EQ(d.exits.size(), 2u);
  EXPECT_EQ(d.exits[0].criterion, model::ExitCriterion::kEntropy);
  EXPECT_DOUBLE_EQ(d.exits[0].threshold, 0.5);
  EXPECT_EQ(d.model_cid, root_cid());
  EXPECT_EQ(d.model_hash, model_hash_of(model::to_json_text(mini_spec())));
}

TEST(ServiceDescriptor, CanonicalFormHasSortedKeysAndNoWhitespace) {
  auto c = canonical_json(good());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->find("\": "), std::string::npos) << *c;
  EXPECT_EQ(c->find(", \""), std::string::npos) << *c;
  EXPECT_EQ(c->find('\n'), std::string::npos);
  EXPECT_EQ(c->rfind("{\"cost\":{\"bytes\":", 0), 0u) << *c;  // first key alphabetically
  EXPECT_LT(c->find("\"description\""), c->find("\"exits\""));
  EXPECT_LT(c->find("\"exits\""), c->find("\"format\""));
  EXPECT_LT(c->find("\"cid\""), c->find("\"hash\""));
  // Reading it back and writing it again gives the same bytes.
  auto back = parse_descriptor(*c);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, good());
  EXPECT_EQ(*canonical_json(*back), *c);
}

TEST(ServiceDescriptor, ServiceIdIsSha256OfTheCanonicalBytesAndChangesWithContent) {
  ServiceDescriptor d = good();
  auto id = service_id(d);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(*id, core::Multihash::sha2_256(as_bytes(*canonical_json(d))));
  std::string text = service_id_text(*id);
  EXPECT_EQ(text.rfind("Qm", 0), 0u);
  EXPECT_EQ(*parse_service_id(text), *id);
  EXPECT_EQ(*parse_service_id(id->to_string(core::Multibase::kBase32)), *id);
  EXPECT_TRUE(matches_service_id(*canonical_json(d), *id));
  // Same content in a different key order/whitespace: not the canonical bytes.
  std::string pretty = to_json(d).dump(2);
  EXPECT_FALSE(matches_service_id(pretty, *id));
  d.exits[0].threshold = 0.6;
  EXPECT_NE(*service_id(d), *id);
}

TEST(ServiceDescriptor, ParseIgnoresKeyOrderAndWhitespace) {
  ServiceDescriptor d = good();
  auto back = parse_descriptor(to_json(d).dump(4));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*service_id(*back), *service_id(d));
}

Status error_after(const std::function<void(json&)>& edit) {
  json j = to_json(good());
  edit(j);
  return parse_descriptor(j.dump()).status();
}

TEST(ServiceDescriptor, ValidationNamesTheBadField) {
  struct Case {
    std::function<void(json&)> edit;
    std::string expect;
  } cases[] = {
      {[](json& j) { j["name"] = ""; }, "name"},
      {[](json& j) { j["name"] = "has space"; }, "name 'has space'"},
      {[](json& j) { j.erase("motif"); }, "missing key 'motif'"},
      {[](json& j) { j["motif"] = "resnet"; }, "motif 'resnet'"},
      {[](json& j) { j["extra"] = 1; }, "unknown key 'extra'"},
      {[](json& j) { j["format"] = "x"; }, "format"},
      {[](json& j) { j["inputs"] = json::array(); }, "inputs must list"},
      {[](json& j) { j["inputs"][0]["dtype"] = "F99"; }, "inputs[0].dtype"},
      {[](json& j) {
         j["inputs"][0]["shape"] = json::array({1, 0});
       },
       "inputs[0].shape"},
      {[](json& j) { j["outputs"][0]["shape"] = "10"; }, "outputs[0].shape"},
      {[](json& j) { j["model"]["cid"] = "not-a-cid"; }, "model.cid"},
      {[](json& j) { j["model"]["hash"] = "zzz"; }, "model.hash"},
      {[](json& j) { j["exits"][1]["stage"] = 0; }, "exits[1].stage"},
      {[](json& j) { j["exits"][1]["threshold"] = 1.5; }, "exits[1].threshold"},
      {[](json& j) { j["exits"][0]["criterion"] = "vibes"; }, "exits[0].criterion"},
      {[](json& j) { j["exits"] = json::array(); }, "exits"},
  };
  for (const auto& c : cases) {
    Status s = error_after(c.edit);
    EXPECT_FALSE(s.is_ok()) << c.expect;
    EXPECT_THAT(s.message(), HasSubstr(c.expect));
  }
  EXPECT_EQ(error_after([](json& j) { j["version"] = 2; }).code(), Code::kUnsupported);
}

TEST(ServiceDescriptor, UntrustedTextIsRefusedCleanly) {
  EXPECT_FALSE(parse_descriptor("").ok());
  EXPECT_FALSE(parse_descriptor("[]").ok());
  EXPECT_FALSE(parse_descriptor("{\"name\":\"a\",\"name\":\"b\"}").ok());
  EXPECT_FALSE(parse_descriptor(std::string(200, '[') + std::string(200, ']')).ok());
  EXPECT_FALSE(parse_descriptor(std::string(kMaxDescriptorBytes + 1, ' ')).ok());
  std::string c = *canonical_json(good());
  for (size_t n = 0; n < c.size(); n += 7) EXPECT_FALSE(parse_descriptor(c.substr(0, n)).ok());
  ServiceDescriptor d = good();
  d.description = "\xff\xfe";
  EXPECT_THAT(validate(d).message(), HasSubstr("UTF-8"));
}

// Written by hand (and its ID computed apart, with Python's hashlib) from the format as it was
// before "cost" existed: a descriptor without a cost must keep these bytes and this ID.
constexpr std::string_view kCostlessCanonical =
    R"({"description":"a test","exits":[{"criterion":"confidence","name":"exit0","stage":0,)"
    R"("threshold":0.5}],"format":"idn-service","inputs":[{"dtype":"F32","name":"x","shape":[4]}],)"
    R"("model":{"cid":"bafybeif4jjyrqcdq66kfcvp3waxuwcroh6vcuyww2mnxaoibgbk62gmgti",)"
    R"("hash":"QmNtvf2gUpvV63KxYE36Ur9skagD68bDjp89JiFTTjqpFo"},"motif":"plain","name":"tiny",)"
    R"("outputs":[{"dtype":"F32","name":"logits","shape":[2]}],"version":1})";

ServiceDescriptor costless() {
  ServiceDescriptor d;
  d.name = "tiny";
  d.description = "a test";
  d.inputs = {TensorType{"x", core::DType::kF32, {4}}};
  d.outputs = {TensorType{"logits", core::DType::kF32, {2}}};
  d.model_cid = "bafybeif4jjyrqcdq66kfcvp3waxuwcroh6vcuyww2mnxaoibgbk62gmgti";
  d.model_hash = "QmNtvf2gUpvV63KxYE36Ur9skagD68bDjp89JiFTTjqpFo";
  d.motif = "plain";
  d.exits = {ExitInfo{"exit0", 0, model::ExitCriterion::kConfidence, 0.5}};
  return d;
}

TEST(ServiceDescriptor, WithoutCostTheCanonicalFormAndIdAreTheOldOnes) {
  auto c = canonical_json(costless());
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(*c, kCostlessCanonical);
  EXPECT_EQ(service_id_text(*service_id(costless())),
            "Qmc8rgE7GKTrLjbsA32g3X7MBNUQjpS3WpQWnfiNSoJWqk");
  auto back = parse_descriptor(kCostlessCanonical);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_FALSE(back->cost.has_value());
  EXPECT_TRUE(matches_service_id(kCostlessCanonical, *service_id(costless())));
}

TEST(ServiceDescriptor, CostRoundTripsInCanonicalFormAndChangesTheId) {
  ServiceDescriptor d = costless();
  d.cost = ServiceCost{1234, 5678};
  auto c = canonical_json(d);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  // Sorted: "cost" comes before "description".
  EXPECT_EQ(c->rfind(R"({"cost":{"bytes":5678,"flops":1234},"description":)", 0), 0u) << *c;
  auto back = parse_descriptor(*c);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, d);
  EXPECT_TRUE(matches_service_id(*c, *service_id(d)));
  EXPECT_NE(*service_id(d), *service_id(costless()));
}

TEST(ServiceDescriptor, CostOfAModelIsItsTrunkFlopsAndItsWeightBytes) {
  model::ModelSpec spec = mini_spec();
  ServiceCost cost = model_cost(spec);
  EXPECT_EQ(cost.flops, static_cast<uint64_t>(spec.trunk_flops()));
  EXPECT_GT(cost.flops, 0u);
  // conv1 5x1x5x5 + 5, b0_fc and fc 980x10 + 10 each: 19,750 F32 parameters.
  EXPECT_EQ(cost.bytes, 19'750u * 4);
  EXPECT_EQ(good().cost, cost);  // descriptor_from_model fills it
}

TEST(ServiceDescriptor, BadCostsAreRefusedNamingTheField) {
  struct Case {
    std::function<void(json&)> edit;
    std::string expect;
  } cases[] = {
      {[](json& j) { j["cost"] = 5; }, "cost must be an object"},
      {[](json& j) {
         j["cost"] = json{{"flops", 10}};
       },
       "cost.bytes is missing"},
      {[](json& j) {
         j["cost"] = json{{"bytes", 10}};
       },
       "cost.flops is missing"},
      {[](json& j) {
         j["cost"] = json{{"bytes", 1}, {"flops", 1}, {"watts", 3}};
       },
       "cost has unknown key 'watts'"},
      {[](json& j) {
         j["cost"] = json{{"bytes", -1}, {"flops", 1}};
       },
       "cost.bytes must be a non-"},
      {[](json& j) {
         j["cost"] = json{{"bytes", 1.5}, {"flops", 1}};
       },
       "cost.bytes must be a non-"},
      {[](json& j) {
         j["cost"] = json{{"bytes", "1"}, {"flops", 1}};
       },
       "cost.bytes must be a non-"},
      {[](json& j) {
         j["cost"] = json{{"bytes", 1}, {"flops", 0}};
       },
       "cost.flops 0 must be 1.."},
      {[](json& j) {
         j["cost"] = json{{"bytes", kMaxCostBytes + 1}, {"flops", 1}};
       },
       "cost.bytes is 17592186044417, at most"},
      {[](json& j) {
         j["cost"] = json{{"bytes", 1}, {"flops", kMaxCostFlops + 1}};
       },
       "cost.flops is 4611686018427387905, at most"},
      {[](json& j) {
         j["cost"] = json{{"bytes", 1}, {"flops", std::numeric_limits<uint64_t>::max()}};
       },
       "cost.flops is 18446744073709551615, at most"},
  };
  for (const auto& c : cases) {
    Status s = error_after(c.edit);
    EXPECT_FALSE(s.is_ok()) << c.expect;
    EXPECT_THAT(s.message(), HasSubstr(c.expect));
  }
  ServiceDescriptor d = costless();
  d.cost = ServiceCost{0, 1};
  EXPECT_THAT(validate(d).message(), HasSubstr("cost.flops 0"));
  d.cost = ServiceCost{1, kMaxCostBytes + 1};
  EXPECT_THAT(validate(d).message(), HasSubstr("cost.bytes"));
  d.cost = ServiceCost{1, 0};  // a model without parameters is possible
  EXPECT_TRUE(validate(d).is_ok());
}

// A ParallelNet spec (one linear layer) whose operating_point.parallelnet is `record`.
model::ModelSpec parallelnet_spec(const json& record) {
  json j = json::parse(R"({
    "format": "idn-model", "version": 1, "name": "pn-mini", "motif": "parallelnet",
    "inputs": [{"name": "x", "dtype": "F32", "shape": [4]}],
    "layers": [{"name": "fc", "type": "linear", "inputs": ["x"],
                "params": {"in_features": 4, "out_features": 2}}],
    "stages": [{"name": "stage0", "layers": ["fc"], "output": "fc"}],
    "exits": [{"name": "exit0", "stage": 0, "layers": [], "output": "fc",
               "criterion": "confidence", "threshold": 0.5}]
  })");
  if (!record.is_null()) j["operating_point"] = json{{"parallelnet", record}};
  auto spec = model::parse_model_spec_text(j.dump());
  EXPECT_TRUE(spec.ok()) << spec.status().to_string();
  return *spec;
}

constexpr std::string_view kGenesisHash = "QmNtvf2gUpvV63KxYE36Ur9skagD68bDjp89JiFTTjqpFo";

// What generate_parallelnet records (the fields the descriptor reads, and some it does not).
json generated_record() {
  return json{{"role", "generated"},
              {"genesis", {{"name", "g"}, {"model_hash", kGenesisHash}, {"parameters", 10}}},
              {"p_train", {{"p", 0.5}}},
              {"p_test", {{"p", 0.45}}},
              {"mask_seed", 3},
              {"scaling", "inverted"}};
}

TEST(ServiceDescriptor, OriginOfAGeneratedModelNamesItsGenesisSeedAndP) {
  auto d = descriptor_from_model(parallelnet_spec(generated_record()), root_cid(), "member");
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  ASSERT_TRUE(d->origin.has_value());
  EXPECT_EQ(d->origin->role, OriginRole::kGenerated);
  EXPECT_EQ(d->origin->genesis_hash, kGenesisHash);
  EXPECT_EQ(d->origin->mask_seed, 3u);
  EXPECT_EQ(d->origin->p_test, 0.45);
  auto c = canonical_json(*d);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_NE(c->find(std::string(R"("origin":{"genesis":")") + std::string(kGenesisHash) +
                    R"(","mask_seed":3,"p_test":0.45,"role":"generated"})"),
            std::string::npos)
      << *c;
  auto back = parse_descriptor(*c);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, *d);
  EXPECT_TRUE(matches_service_id(*c, *service_id(*d)));
  EXPECT_EQ(describe(*d->origin), "ParallelNet model generated from genesis " +
                                      std::string(kGenesisHash) + " at p_test 0.45, mask seed 3");
  // Another seed is another service.
  json other = generated_record();
  other["mask_seed"] = 4;
  auto d4 = descriptor_from_model(parallelnet_spec(other), root_cid(), "member");
  ASSERT_TRUE(d4.ok());
  EXPECT_NE(*service_id(*d4), *service_id(*d));
}

TEST(ServiceDescriptor, OriginOfAGenesisSaysGenesisOnly) {
  auto d = descriptor_from_model(
      parallelnet_spec(json{{"role", "genesis"}, {"p_train", {{"p", 0.45}}}}), root_cid(), "g");
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->origin, ServiceOrigin{});
  EXPECT_NE(canonical_json(*d)->find(R"("origin":{"role":"genesis"})"), std::string::npos);
  EXPECT_EQ(describe(*d->origin), "ParallelNet genesis model");
  // No record (a plain model, or a ParallelNet package from before the record): no origin.
  auto plain = descriptor_from_model(parallelnet_spec(json()), root_cid(), "g");
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->origin.has_value());
  EXPECT_FALSE(good().origin.has_value());
}

TEST(ServiceDescriptor, WithoutOriginTheCanonicalFormAndIdAreUnchanged) {
  // The hand-written pre-cost form above, and the same with a cost: no "origin" key appears.
  ServiceDescriptor d = costless();
  d.motif = "parallelnet";
  std::string expect(kCostlessCanonical);
  expect.replace(expect.find("\"plain\""), 7, "\"parallelnet\"");
  EXPECT_EQ(*canonical_json(d), expect);
  d.cost = ServiceCost{1234, 5678};
  EXPECT_EQ(*canonical_json(d), R"({"cost":{"bytes":5678,"flops":1234},)" + expect.substr(1));
  // Adding an origin changes the bytes and the ID.
  auto id = *service_id(d);
  d.origin = ServiceOrigin{};
  EXPECT_NE(*service_id(d), id);
}

// Written by hand, its ID computed apart with Python's hashlib: costless() as a generated
// ParallelNet member. Keys sorted: "origin" between "name" and "outputs", its own keys sorted.
constexpr std::string_view kGeneratedCanonical =
    R"({"description":"a test","exits":[{"criterion":"confidence","name":"exit0","stage":0,)"
    R"("threshold":0.5}],"format":"idn-service","inputs":[{"dtype":"F32","name":"x","shape":[4]}],)"
    R"("model":{"cid":"bafybeif4jjyrqcdq66kfcvp3waxuwcroh6vcuyww2mnxaoibgbk62gmgti",)"
    R"("hash":"QmNtvf2gUpvV63KxYE36Ur9skagD68bDjp89JiFTTjqpFo"},"motif":"parallelnet","name":"tiny",)"
    R"("origin":{"genesis":"QmNtvf2gUpvV63KxYE36Ur9skagD68bDjp89JiFTTjqpFo","mask_seed":3,)"
    R"("p_test":0.45,"role":"generated"},"outputs":[{"dtype":"F32","name":"logits","shape":[2]}],)"
    R"("version":1})";

TEST(ServiceDescriptor, OriginHasTheHandWrittenCanonicalFormAndId) {
  ServiceDescriptor d = costless();
  d.motif = "parallelnet";
  d.origin = ServiceOrigin{OriginRole::kGenerated, std::string(kGenesisHash), 3, 0.45};
  auto c = canonical_json(d);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(*c, kGeneratedCanonical);
  EXPECT_EQ(service_id_text(*service_id(d)), "Qmei8wBYMEBbrWnrfM3xusLSkH3dNkNEQ7MHdUm2Ui4XpV");
  auto back = parse_descriptor(kGeneratedCanonical);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, d);
}

TEST(ServiceDescriptor, MalformedParallelNetRecordsAreRefusedNamingTheField) {
  struct Case {
    std::function<void(json&)> edit;
    std::string expect;
  } cases[] = {
      {[](json& r) { r["role"] = "member"; }, "operating_point.parallelnet.role"},
      {[](json& r) { r.erase("role"); }, "operating_point.parallelnet.role"},
      {[](json& r) { r["genesis"].erase("model_hash"); }, ".genesis.model_hash"},
      {[](json& r) { r["genesis"]["model_hash"] = "zzz"; }, "origin.genesis 'zzz'"},
      {[](json& r) { r["mask_seed"] = -1; }, ".mask_seed must be a non-negative integer"},
      {[](json& r) { r["mask_seed"] = "3"; }, ".mask_seed must be a non-negative integer"},
      {[](json& r) { r.erase("p_test"); }, ".p_test.p must be a number"},
      {[](json& r) { r["p_test"]["p"] = 1.5; }, "origin.p_test must be in (0, 1]"},
      {[](json& r) { r = 7; }, "operating_point.parallelnet must be an object"},
  };
  for (const auto& c : cases) {
    json r = generated_record();
    c.edit(r);
    auto d = descriptor_from_model(parallelnet_spec(r), root_cid(), "member");
    EXPECT_FALSE(d.ok()) << c.expect;
    EXPECT_THAT(d.status().message(), HasSubstr(c.expect));
  }
}

TEST(ServiceDescriptor, BadOriginsAreRefusedNamingTheField) {
  auto generated = [] {
    auto d = descriptor_from_model(parallelnet_spec(generated_record()), root_cid(), "member");
    EXPECT_TRUE(d.ok());
    return to_json(*d);
  };
  struct Case {
    std::function<void(json&)> edit;
    std::string expect;
  } cases[] = {
      {[](json& j) { j["origin"] = 1; }, "origin must be an object"},
      {[](json& j) { j["origin"]["colour"] = "red"; }, "origin has unknown key 'colour'"},
      {[](json& j) { j["origin"].erase("role"); }, "origin.role must be"},
      {[](json& j) { j["origin"]["role"] = "parent"; }, "origin.role must be"},
      {[](json& j) { j["origin"]["role"] = "genesis"; }, "origin of a genesis model names no"},
      {[](json& j) { j["origin"].erase("genesis"); }, "origin.genesis ''"},
      {[](json& j) { j["origin"]["genesis"] = ""; }, "origin.genesis must not be empty"},
      {[](json& j) { j["origin"]["genesis"] = 5; }, "origin.genesis must be a string"},
      {[](json& j) {
         j["origin"]["genesis"] =
             core::Multihash::sha2_256(as_bytes("x")).to_string(core::Multibase::kBase32);
       },
       "bare base58btc"},
      {[](json& j) { j["origin"].erase("mask_seed"); }, "origin.mask_seed is missing"},
      {[](json& j) { j["origin"]["mask_seed"] = -2; }, "origin.mask_seed must be a non-negative"},
      {[](json& j) { j["origin"]["mask_seed"] = 1.5; }, "origin.mask_seed must be a non-negative"},
      {[](json& j) { j["origin"].erase("p_test"); }, "origin.p_test is missing"},
      {[](json& j) { j["origin"]["p_test"] = 0; }, "origin.p_test must be in (0, 1]"},
      {[](json& j) { j["origin"]["p_test"] = 1.01; }, "origin.p_test must be in (0, 1]"},
      {[](json& j) { j["origin"]["p_test"] = "0.4"; }, "origin.p_test must be a number"},
      {[](json& j) { j["motif"] = "plain"; }, "origin is for ParallelNet models"},
  };
  for (const auto& c : cases) {
    json j = generated();
    c.edit(j);
    Status s = parse_descriptor(j.dump()).status();
    EXPECT_FALSE(s.is_ok()) << c.expect;
    EXPECT_THAT(s.message(), HasSubstr(c.expect));
  }
  EXPECT_TRUE(parse_descriptor(generated().dump()).ok());
  // The largest seed round-trips exactly.
  json j = generated();
  j["origin"]["mask_seed"] = std::numeric_limits<uint64_t>::max();
  auto d = parse_descriptor(j.dump());
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->origin->mask_seed, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(*parse_descriptor(*canonical_json(*d)), *d);
}

TEST(ServiceDescriptor, ServiceIdTextMustBeSha256) {
  EXPECT_FALSE(parse_service_id("hello").ok());
  auto sha512 = core::Multihash::compute(core::HashCode::kSha2_512, as_bytes("x")).value();
  EXPECT_THAT(parse_service_id(sha512.to_base58()).status().message(), HasSubstr("sha2-256"));
}

TEST(ServiceDescriptor, OnnxCidRoundTripsAndIsAbsentFromOlderDescriptors) {
  ServiceDescriptor d = costless();
  EXPECT_EQ(*canonical_json(d), kCostlessCanonical);  // no "onnx" key unless one is named
  const auto id = *service_id(d);
  const std::string onnx =
      core::Cid::of(core::Multicodec::kDagPb, as_bytes("an onnx export")).to_string();
  d.onnx_cid = onnx;
  auto c = canonical_json(d);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  // Keys sorted: "onnx" between "name" and "outputs".
  EXPECT_THAT(*c, HasSubstr(R"("name":"tiny","onnx":{"cid":")" + onnx + R"("},"outputs":)"));
  EXPECT_NE(*service_id(d), id);
  auto back = parse_descriptor(*c);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, d);
}

TEST(ServiceDescriptor, BadOnnxFieldsAreRefusedNamingTheField) {
  ServiceDescriptor d = costless();
  d.onnx_cid = "not-a-cid";
  EXPECT_THAT(canonical_json(d).status().message(), HasSubstr("onnx.cid 'not-a-cid'"));
  struct Case {
    std::function<void(json&)> edit;
    std::string expect;
  } cases[] = {
      {[](json& j) { j["onnx"] = "bafy"; }, "onnx must be an object"},
      {[](json& j) { j["onnx"] = json::object(); }, "onnx.cid must be a string"},
      {[](json& j) {
         j["onnx"] = {{"cid", 5}};
       },
       "onnx.cid must be a string"},
      {[](json& j) {
         j["onnx"] = {{"cid", root_cid()}, {"opset", 13}};
       },
       "onnx has unknown key 'opset'"},
      {[](json& j) {
         j["onnx"] = {{"cid", "zzz"}};
       },
       "onnx.cid 'zzz'"},
  };
  for (const auto& c : cases) {
    json j = to_json(costless());
    c.edit(j);
    Status s = parse_descriptor(j.dump()).status();
    EXPECT_FALSE(s.is_ok()) << c.expect;
    EXPECT_THAT(s.message(), HasSubstr(c.expect));
  }
}

}  // namespace
}  // namespace idn::ise
