#include "model/model_spec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>

namespace idn::model {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

// A small BranchyNet on FashionMNIST: two trunk stages, a side exit after stage 0.
json base_model() {
  return json::parse(R"({
    "format": "idn-model", "version": 1, "name": "b-lenet-mini", "motif": "branchynet",
    "inputs": [{"name": "image", "dtype": "F32", "shape": [1, 28, 28]}],
    "preprocess": {"mean": [0.286], "std": [0.353]},
    "layers": [
      {"name": "conv1", "type": "conv2d", "inputs": ["image"],
       "params": {"in_channels": 1, "out_channels": 5, "kernel": 5, "padding": 2}},
      {"name": "relu1", "type": "relu", "inputs": ["conv1"]},
      {"name": "pool1", "type": "maxpool2d", "inputs": ["relu1"], "params": {"kernel": 2}},
      {"name": "b0_flat", "type": "flatten", "inputs": ["pool1"]},
      {"name": "b0_fc", "type": "linear", "inputs": ["b0_flat"],
       "params": {"in_features": 980, "out_features": 10}},
      {"name": "conv2", "type": "conv2d", "inputs": ["pool1"],
       "params": {"in_channels": 5, "out_channels": 10, "kernel": 5}},
      {"name": "pool2", "type": "maxpool2d", "inputs": ["conv2"], "params": {"kernel": 2}},
      {"name": "flat", "type": "flatten", "inputs": ["pool2"]},
      {"name": "fc", "type": "linear", "inputs": ["flat"],
       "params": {"in_features": 250, "out_features": 10}}
    ],
    "stages": [
      {"name": "stage0", "layers": ["conv1", "relu1", "pool1"], "output": "pool1"},
      {"name": "stage1", "layers": ["conv2", "pool2", "flat", "fc"], "output": "fc"}
    ],
    "exits": [
      {"name": "exit0", "stage": 0, "layers": ["b0_flat", "b0_fc"], "output": "b0_fc",
       "criterion": "entropy", "threshold": 0.5, "temperature": 1.3},
      {"name": "exit1", "stage": 1, "layers": [], "output": "fc",
       "criterion": "confidence", "threshold": 0.0}
    ]
  })");
}

json& layer(json& j, std::string_view name) {
  for (json& l : j["layers"])
    if (l["name"] == name) return l;
  throw std::runtime_error("no layer");
}

// Parses base_model() after `edit`; returns the error (or OK).
Status error_after(const std::function<void(json&)>& edit) {
  json j = base_model();
  edit(j);
  return parse_model_spec(j).status();
}

TEST(ModelSpecTest, ValidModelGetsShapesAndFlops) {
  auto spec = parse_model_spec(base_model());
  ASSERT_TRUE(spec.ok()) << spec.status().to_string();
  EXPECT_EQ(spec->layer("conv1")->out_shape, (std::vector<int64_t>{5, 28, 28}));
  EXPECT_EQ(spec->layer("pool1")->out_shape, (std::vector<int64_t>{5, 14, 14}));
  EXPECT_EQ(spec->layer("b0_flat")->out_shape, (std::vector<int64_t>{980}));
  EXPECT_EQ(spec->layer("conv2")->out_shape, (std::vector<int64_t>{10, 10, 10}));
  EXPECT_EQ(spec->layer("pool2")->out_shape, (std::vector<int64_t>{10, 5, 5}));
  EXPECT_EQ(spec->layer("fc")->out_shape, (std::vector<int64_t>{10}));
  // conv: 2*k*k*in*out*Ho*Wo + out*Ho*Wo (bias).
  EXPECT_EQ(spec->layer("conv1")->flops, 2 * 25 * 1 * 5 * 784 + 5 * 784);
  EXPECT_EQ(spec->layer("relu1")->flops, 5 * 784);
  EXPECT_EQ(spec->layer("pool1")->flops, 4 * 5 * 196);  // kernel^2 per output element
  EXPECT_EQ(spec->layer("b0_fc")->flops, 2 * 980 * 10 + 10);
  EXPECT_EQ(spec->layer("conv2")->flops, 2 * 25 * 5 * 10 * 100 + 1000);
  EXPECT_EQ(spec->stages[0].flops, 199920 + 3920 + 3920);
  EXPECT_EQ(spec->stages[1].flops, 251000 + 1000 + 250 + 5010);
  EXPECT_EQ(spec->exits[0].flops, 980 + 19610);
  EXPECT_EQ(spec->exits[1].flops, 0);
  EXPECT_EQ(spec->trunk_flops(), 207760 + 257260);
  EXPECT_EQ(spec->num_classes(), 10);
  EXPECT_EQ(spec->exits[0].criterion, ExitCriterion::kEntropy);
  EXPECT_DOUBLE_EQ(spec->exits[0].temperature, 1.3);
  EXPECT_DOUBLE_EQ(spec->exits[1].temperature, 1.0);
  EXPECT_FLOAT_EQ(spec->preprocess_mean[0], 0.286f);
}

TEST(ModelSpecTest, DefaultsAreFilledIntoParams) {
  auto spec = parse_model_spec(base_model());
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->layer("pool1")->params["stride"], 2);
  EXPECT_EQ(spec->layer("pool1")->params["padding"], 0);
  EXPECT_EQ(spec->layer("conv2")->params["stride"], 1);
  EXPECT_EQ(spec->layer("conv2")->params["bias"], true);
}

TEST(ModelSpecTest, ToJsonRoundTripsAndWritesFlops) {
  auto spec = parse_model_spec(base_model());
  ASSERT_TRUE(spec.ok());
  json j = to_json(*spec);
  EXPECT_EQ(j["stages"][0]["flops"], 207760);
  EXPECT_EQ(j["exits"][0]["flops"], 20590);
  EXPECT_EQ(j["preprocess"]["mean"][0].dump(), "0.286");
  auto again = parse_model_spec(j);
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(to_json(*again), j);
  EXPECT_EQ(to_json_text(*again), to_json_text(*spec));
  auto text = parse_model_spec_text(to_json_text(*spec));
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(to_json(*text), j);
}

TEST(ModelSpecTest, MultiInputAggregateAndBatchNorm) {
  json j = json::parse(R"({
    "format": "idn-model", "version": 1, "name": "ddnn-mini", "motif": "ddnn",
    "inputs": [{"name": "v0", "shape": [1, 8, 8]}, {"name": "v1", "shape": [1, 8, 8]}],
    "layers": [
      {"name": "c0", "type": "conv2d", "inputs": ["v0"],
       "params": {"in_channels": 1, "out_channels": 2, "kernel": 3, "padding": 1, "bias": false}},
      {"name": "bn0", "type": "batchnorm", "inputs": ["c0"], "params": {"num_features": 2}},
      {"name": "c1", "type": "conv2d", "inputs": ["v1"],
       "params": {"in_channels": 1, "out_channels": 2, "kernel": 3, "padding": 1, "bias": false}},
      {"name": "agg", "type": "aggregate", "inputs": ["bn0", "c1"], "params": {"op": "concat"}},
      {"name": "mx", "type": "aggregate", "inputs": ["bn0", "c1"], "params": {"op": "max"}},
      {"name": "f", "type": "flatten", "inputs": ["agg"]},
      {"name": "fc", "type": "linear", "inputs": ["f"],
       "params": {"in_features": 256, "out_features": 3}},
      {"name": "sm", "type": "softmax", "inputs": ["fc"]}
    ],
    "stages": [
      {"name": "dev0", "layers": ["c0", "bn0"], "output": "bn0"},
      {"name": "dev1", "layers": ["c1"], "output": "c1"},
      {"name": "cloud", "layers": ["agg", "mx", "f", "fc", "sm"], "output": "sm"}
    ],
    "exits": [{"name": "final", "stage": 2, "layers": [], "output": "sm",
               "criterion": "confidence", "threshold": 1}]
  })");
  auto spec = parse_model_spec(j);
  ASSERT_TRUE(spec.ok()) << spec.status().to_string();
  EXPECT_EQ(spec->layer("agg")->out_shape, (std::vector<int64_t>{4, 8, 8}));
  EXPECT_EQ(spec->layer("mx")->out_shape, (std::vector<int64_t>{2, 8, 8}));
  EXPECT_EQ(spec->layer("c0")->flops, 2 * 9 * 1 * 2 * 64);  // no bias term
  auto w = spec->required_weights();
  std::vector<std::string> names;
  for (const auto& x : w) names.push_back(x.name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"c0.weight", "bn0.weight", "bn0.bias", "bn0.running_mean",
                                      "bn0.running_var", "c1.weight", "fc.weight", "fc.bias"}));
  EXPECT_EQ(w[0].shape, (std::vector<int64_t>{2, 1, 3, 3}));
  EXPECT_EQ(w[4].shape, (std::vector<int64_t>{2}));
  EXPECT_EQ(w[6].shape, (std::vector<int64_t>{3, 256}));

  json bad = j;
  bad["layers"][4]["inputs"] = {"bn0", "agg"};
  bad["stages"][2]["layers"] = {"agg", "mx", "f", "fc", "sm"};
  EXPECT_THAT(parse_model_spec(bad).status().message(), HasSubstr("max needs equal shapes"));
  bad = j;
  bad["layers"][1]["params"]["num_features"] = 3;
  EXPECT_THAT(parse_model_spec(bad).status().message(),
              HasSubstr("layer 'bn0' (batchnorm): num_features is 3"));
  bad = j;
  bad["stages"][2]["layers"] = {"mx", "f", "fc", "sm"};
  bad["stages"][1]["layers"] = {"c1", "agg"};
  EXPECT_THAT(parse_model_spec(bad).status().message(), HasSubstr("not that stage's output"));
}

TEST(ModelSpecTest, RequiredWeightsAndCheckWeights) {
  auto spec = parse_model_spec(base_model());
  ASSERT_TRUE(spec.ok());
  std::map<std::string, core::Tensor> w;
  for (const WeightSpec& r : spec->required_weights())
    w[r.name] = core::Tensor::zeros(core::DType::kF32, r.shape);
  EXPECT_EQ(w.size(), 8u);
  EXPECT_EQ(w.at("conv2.weight").shape, (std::vector<int64_t>{10, 5, 5, 5}));
  EXPECT_EQ(w.at("b0_fc.weight").shape, (std::vector<int64_t>{10, 980}));
  EXPECT_TRUE(check_weights(*spec, w).is_ok());

  auto missing = w;
  missing.erase("fc.bias");
  EXPECT_THAT(check_weights(*spec, missing).message(), HasSubstr("missing weight 'fc.bias'"));
  auto extra = w;
  extra["ghost.weight"] = core::Tensor::zeros(core::DType::kF32, {1});
  EXPECT_THAT(check_weights(*spec, extra).message(), HasSubstr("unexpected weight 'ghost.weight'"));
  auto dtype = w;
  dtype["conv1.bias"] = core::Tensor::zeros(core::DType::kF64, {5});
  EXPECT_THAT(check_weights(*spec, dtype).message(), HasSubstr("'conv1.bias' has dtype F64"));
  auto shape = w;
  shape["fc.weight"] = core::Tensor::zeros(core::DType::kF32, {250, 10});
  EXPECT_THAT(check_weights(*spec, shape).message(),
              HasSubstr("'fc.weight' has shape [250, 10]; expected [10, 250]"));
}

struct ErrorCase {
  const char* name;
  std::function<void(json&)> edit;
  const char* expected;
};

class ModelSpecErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ModelSpecErrorTest, ErrorNamesTheCulprit) {
  Status st = error_after(GetParam().edit);
  ASSERT_FALSE(st.is_ok()) << GetParam().name;
  EXPECT_THAT(st.message(), HasSubstr(GetParam().expected)) << GetParam().name;
}

const ErrorCase kErrorCases[] = {
    {"missing_format", [](json& j) { j.erase("format"); }, "missing \"format\""},
    {"wrong_format", [](json& j) { j["format"] = "onnx"; }, "\"format\" is \"onnx\""},
    {"missing_version", [](json& j) { j.erase("version"); }, "missing \"version\""},
    {"wrong_version", [](json& j) { j["version"] = 2; }, "\"version\" is 2"},
    {"unknown_top_key", [](json& j) { j["extra"] = 1; }, "unknown key \"extra\""},
    {"unknown_layer_type", [](json& j) { layer(j, "relu1")["type"] = "gelu"; },
     "layer 'relu1': unknown layer type \"gelu\""},
    {"missing_param", [](json& j) { layer(j, "conv1")["params"].erase("kernel"); },
     "layer 'conv1' (conv2d): missing required param \"kernel\""},
    {"wrong_param_type", [](json& j) { layer(j, "conv2")["params"]["kernel"] = "5"; },
     "layer 'conv2' (conv2d): param \"kernel\" must be an integer"},
    {"wrong_bool_type", [](json& j) { layer(j, "fc")["params"]["bias"] = 1; },
     "layer 'fc' (linear): param \"bias\" must be true or false"},
    {"unknown_param",
     [](json& j) {
       layer(j, "relu1")["params"] = {{"inplace", true}};
     },
     "layer 'relu1' (relu): unknown param \"inplace\""},
    {"duplicate_layer",
     [](json& j) {
       layer(j, "relu1")["name"] = "conv1";
       j["stages"][0]["layers"][1] = "conv1";
     },
     "duplicate layer name 'conv1'"},
    {"undefined_input", [](json& j) { layer(j, "relu1")["inputs"] = {"nope"}; },
     "layer 'relu1' (relu): input 'nope' is not defined"},
    {"forward_reference", [](json& j) { layer(j, "conv2")["inputs"] = {"pool2"}; },
     "cycle among layers: conv2 -> pool2 -> conv2"},
    {"cycle_through_three", [](json& j) { layer(j, "relu1")["inputs"] = {"b0_flat"}; },
     "cycle among layers: relu1 -> b0_flat -> pool1 -> relu1"},
    {"later_layer", [](json& j) { layer(j, "b0_flat")["inputs"] = {"pool2"}; },
     "layer 'b0_flat' (flatten): input 'pool2' is defined later"},
    {"self_cycle", [](json& j) { layer(j, "relu1")["inputs"] = {"relu1"}; },
     "cycle among layers: relu1 -> relu1"},
    {"layer_in_no_stage", [](json& j) { j["exits"][0]["layers"] = {"b0_fc"}; },
     "layer 'b0_flat' is in no stage or exit"},
    {"layer_in_two",
     [](json& j) {
       j["exits"][0]["layers"] = {"pool1", "b0_flat", "b0_fc"};
     },
     "layer 'pool1' is in both stage 'stage0' and exit 'exit0'"},
    {"stage_output_not_in_stage", [](json& j) { j["stages"][0]["output"] = "conv2"; },
     "stage 'stage0': output 'conv2' is not one of its layers"},
    {"exit_stage_out_of_range", [](json& j) { j["exits"][0]["stage"] = 7; },
     "exit 'exit0': stage 7 is out of range"},
    {"exit_output_not_in_head",
     [](json& j) {
       j["exits"][1]["output"] = "pool2";
       j["stages"][1]["layers"] = {"conv2", "pool2"};
       j["stages"][1]["output"] = "pool2";
       j["exits"][1]["layers"] = {"flat", "fc"};
       j["exits"][1]["output"] = "pool2";
     },
     "exit 'exit1': output 'pool2' is not one of its layers"},
    {"exit_logits_not_1d",
     [](json& j) {
       j["stages"][1]["layers"] = {"conv2", "pool2"};
       j["stages"][1]["output"] = "pool2";
       j["exits"][1]["layers"] = json::array();
       j["exits"][1]["output"] = "pool2";
       j["layers"].erase(j["layers"].end() - 2, j["layers"].end());
     },
     "exit 'exit1': output 'pool2' has shape [10, 5, 5]; exit logits must be a 1-D"},
    {"bad_criterion", [](json& j) { j["exits"][0]["criterion"] = "margin"; },
     "exit 'exit0': unknown exit criterion \"margin\""},
    {"threshold_above_1", [](json& j) { j["exits"][0]["threshold"] = 1.5; },
     "exit 'exit0': threshold 1.5"},
    {"threshold_negative", [](json& j) { j["exits"][1]["threshold"] = -0.1; },
     "exit 'exit1': threshold -0.1"},
    {"temperature_zero", [](json& j) { j["exits"][0]["temperature"] = 0; },
     "exit 'exit0': temperature 0"},
    {"linear_in_features_mismatch", [](json& j) { layer(j, "fc")["params"]["in_features"] = 251; },
     "layer 'fc' (linear): in_features is 251 but its input 'flat' has 250 features"},
    {"linear_needs_flatten",
     [](json& j) {
       layer(j, "b0_fc")["inputs"] = {"pool1"};
       j["layers"].erase(j["layers"].begin() + 3);
       j["exits"][0]["layers"] = {"b0_fc"};
     },
     "layer 'b0_fc' (linear): needs a 1-D input, but 'pool1' has shape [5, 14, 14] (insert a "
     "flatten"},
    {"conv_channels_mismatch", [](json& j) { layer(j, "conv2")["params"]["in_channels"] = 6; },
     "layer 'conv2' (conv2d): in_channels is 6 but its input 'pool1' has shape [5, 14, 14]"},
    {"conv_kernel_too_big", [](json& j) { layer(j, "conv2")["params"]["kernel"] = 15; },
     "layer 'conv2' (conv2d): kernel 15 is larger than the padded input"},
    {"stored_flops_disagree", [](json& j) { j["stages"][1]["flops"] = 12345; },
     "stage 'stage1': stored flops 12345 disagree with the 257260"},
    {"stored_exit_flops_disagree", [](json& j) { j["exits"][0]["flops"] = 1; },
     "exit 'exit0': stored flops 1 disagree"},
    {"no_exits", [](json& j) { j["exits"] = json::array(); }, "model has no exits"},
    {"last_stage_without_exit", [](json& j) { j["exits"].erase(1); },
     "the final stage needs an exit"},
    {"exit_reads_later_stage",
     [](json& j) {
       json flat = j["layers"][3], fc = j["layers"][4];
       j["layers"].erase(j["layers"].begin() + 3, j["layers"].begin() + 5);
       flat["inputs"] = {"fc"};
       fc["params"]["in_features"] = 10;
       j["layers"].push_back(flat);
       j["layers"].push_back(fc);
     },
     "layer 'b0_flat' (flatten) in exit 'exit0' reads 'fc' from the later stage 'stage1'"},
    {"stage_reads_exit_layer", [](json& j) { layer(j, "conv2")["inputs"] = {"b0_flat"}; },
     "exit heads are side branches"},
    {"stage_reads_non_output",
     [](json& j) {
       layer(j, "conv2")["inputs"] = {"relu1"};
       layer(j, "conv2")["params"]["kernel"] = 19;
     },
     "which is not that stage's output"},
    {"labels_count",
     [](json& j) {
       j["labels"] = {"a", "b"};
     },
     "\"labels\" has 2 names but the exits produce 10"},
    {"unknown_motif", [](json& j) { j["motif"] = "resnet"; }, "unknown motif \"resnet\""},
    {"preprocess_mismatch",
     [](json& j) {
       j["preprocess"]["std"] = {0.1, 0.2};
     },
     "preprocess has 1 means but 2 stds"},
    {"dropout_p",
     [](json& j) {
       layer(j, "relu1")["type"] = "dropout";
       layer(j, "relu1")["params"] = {{"p", 1.0}};
     },
     "layer 'relu1' (dropout): param \"p\" must be in [0, 1)"},
    {"aggregate_op",
     [](json& j) {
       layer(j, "relu1")["type"] = "aggregate";
       layer(j, "relu1")["params"] = {{"op", "sum"}};
     },
     "param \"op\" is \"sum\""},
    {"two_inputs_for_relu",
     [](json& j) {
       layer(j, "relu1")["inputs"] = {"conv1", "image"};
     },
     "layer 'relu1' (relu): takes exactly one input, got 2"},
    {"layer_not_object", [](json& j) { j["layers"][2] = 5; }, "layers[2] must be a JSON object"},
    {"exit_stage_not_int", [](json& j) { j["exits"][0]["stage"] = "0"; },
     "exit 'exit0': \"stage\" must be an integer"},
    {"huge_dims",
     [](json& j) {
       j["inputs"][0]["shape"] = {1, 1ll << 40, 28};
     },
     "out of range"},
};

INSTANTIATE_TEST_SUITE_P(AllErrors, ModelSpecErrorTest, ::testing::ValuesIn(kErrorCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(ModelSpecTest, InvalidJsonTextIsAnError) {
  auto st = parse_model_spec_text("{\"format\": ");
  EXPECT_THAT(st.status().message(), HasSubstr("not valid JSON"));
  EXPECT_THAT(parse_model_spec_text("[1,2]").status().message(), HasSubstr("JSON object"));
}

TEST(ModelSpecTest, DuplicateKeysAndDeepNestingAreRefused) {
  std::string text = base_model().dump();
  std::string dup = text.substr(0, text.size() - 1) + ", \"name\": \"other\"}";
  EXPECT_THAT(parse_model_spec_text(dup).status().message(),
              HasSubstr("key \"name\" appears more than once"));
  std::string deep = text.substr(0, text.size() - 1) +
                     ", \"operating_point\": {\"x\": " + std::string(100, '[') +
                     std::string(100, ']') + "}}";
  EXPECT_THAT(parse_model_spec_text(deep).status().message(), HasSubstr("nests 102 levels"));
  std::string ok = text.substr(0, text.size() - 1) + ", \"operating_point\": {\"x\": [[1]]}}";
  EXPECT_TRUE(parse_model_spec_text(ok).ok());
}

TEST(ModelSpecTest, FuzzSeedCorpusIsValidExceptBadVersion) {
  const std::filesystem::path dir =
      std::filesystem::path(IDN_SOURCE_DIR) / "fuzz/corpus/model_json";
  int checked = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::ifstream f(e.path());
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    auto spec = parse_model_spec_text(text);
    if (e.path().filename() == "bad_version.json")
      EXPECT_EQ(spec.status().code(), Code::kUnsupported);
    else
      EXPECT_TRUE(spec.ok()) << e.path() << ": " << spec.status().to_string();
    ++checked;
  }
  EXPECT_GE(checked, 3);
}

TEST(ModelSpecTest, RequiredWeightsOfUnvalidatedSpecDoNotThrow) {
  ModelSpec spec;
  spec.layers.emplace_back();
  spec.layers[0].name = std::string(1, 'x');
  spec.layers[0].type = LayerType::kConv2d;
  spec.layers[0].params = 3;
  EXPECT_EQ(spec.required_weights().size(), 2u);
  EXPECT_FALSE(validate_model_spec(spec).is_ok());
}

}  // namespace
}  // namespace idn::model
