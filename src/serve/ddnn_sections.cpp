#include "serve/ddnn_sections.h"

#include <fmt/format.h>

#include <cmath>
#include <optional>

#include "model/exit_criteria.h"
#include "model/file_io.h"
#include "ondevice/ddnn_config.h"

namespace idn::serve {
namespace fs = std::filesystem;
using protocol::InferProgress;
using protocol::InferRequest;

namespace {

// Binary operations of one run of a packed section (XNOR/popcount over each fan-in).
uint64_t section_operations(const ondevice::Section& s) {
  uint64_t ops = 0;
  ondevice::Shape in = s.input_shape();
  for (size_t l = 0; l < s.layers().size(); ++l) {
    const auto& layer = s.layers()[l];
    const int64_t positions = layer.kind == ondevice::LayerKind::kConvP ? in.h * in.w : 1;
    ops += static_cast<uint64_t>(layer.outputs * positions *
                                 ondevice::Section::fan_in(layer.kind, in));
    in = s.output_shape(l);
  }
  return ops;
}

class DeviceHandler final : public Handler {
 public:
  DeviceHandler(DdnnInfo info, int64_t device, ondevice::Section section,
                std::shared_ptr<const data::MultiViewDataset> camera)
      : info_(std::move(info)),
        device_(device),
        view_(info_.views[static_cast<size_t>(device)]),
        section_(std::move(section)),
        camera_(std::move(camera)),
        operations_(section_operations(section_)) {}

  Status validate(const InferRequest& req) const override {
    if (req.has_input() || !req.inputs.empty())
      return Status::invalid_argument(
          "a DDNN device section reads its own camera: send sample_ref, no input");
    if (!req.sample_ref) return Status::invalid_argument("a DDNN device request needs sample_ref");
    if (req.start_stage != 0 || (req.stop_after_stage && *req.stop_after_stage != 0))
      return Status::invalid_argument("a DDNN device section has one stage (0)");
    const uint64_t i = *req.sample_ref;
    if (i >= static_cast<uint64_t>(camera_->n))
      return Status::invalid_argument(
          fmt::format("frame {} is past the camera's replay ({} frames)", i, camera_->n));
    if (!camera_->present(static_cast<int64_t>(i), view_))
      return Status::invalid_argument("not in view");  // short: it crosses the wire per frame
    return Status::ok();
  }

  Result<std::vector<InferProgress>> run(const InferRequest& req) override {
    const auto pixels = camera_->view(static_cast<int64_t>(*req.sample_ref), view_);
    IDN_ASSIGN_OR_RETURN(auto out, section_.run_device(pixels));
    InferProgress p;
    p.final = true;
    p.operations = operations_;
    if (req.stop_after_stage) {
      const int64_t bits = out.feature_shape.size();
      p.output.dtype = core::DType::kU8;
      p.output.shape = {(bits + 7) / 8};
      p.output.bytes = ondevice::pack_bytes(out.features, bits);
    } else {
      // No confidence or entropy: the aggregator judges the aggregate of the devices' scores,
      // never one device's, and they would cost 10 of an answer's ~40 bytes every frame.
      p.output = core::Tensor::f32({static_cast<int64_t>(out.scores.size())}, out.scores);
    }
    return std::vector<InferProgress>{std::move(p)};
  }

 private:
  DdnnInfo info_;
  int64_t device_, view_;
  ondevice::Section section_;
  std::shared_ptr<const data::MultiViewDataset> camera_;
  uint64_t operations_;
};

}  // namespace

Result<DdnnInfo> read_ddnn_info(const fs::path& dir) {
  IDN_ASSIGN_OR_RETURN(auto bytes, model::read_file(dir / ondevice::kDdnnManifestFile, 16 << 20));
  const std::string text(bytes.begin(), bytes.end());
  auto bad = [&](const std::string& m) {
    return Status::invalid_argument((dir / ondevice::kDdnnManifestFile).string() + ": " + m);
  };
  DdnnInfo info;
  try {
    const auto j = nlohmann::json::parse(text);
    if (!j.is_object() || j.value("format", "") != "idn-ddnn")
      return bad("not an idn-ddnn manifest");
    auto c = ondevice::ddnn_config_from_json(j.at("config"));
    if (!c.ok()) return bad(c.status().message());
    if (!c->has_local() || c->has_edge())
      return Status::unsupported(fmt::format(
          "DDNN configuration ({}): the network deploys devices, a local exit and the cloud "
          "((b), (c)), not edges or a raw sensor",
          c->letter));
    info.name = j.at("name").get<std::string>();
    info.letter = c->letter;
    info.devices = c->devices();
    info.classes = c->classes;
    info.channels = c->channels;
    info.size = c->size;
    info.views = c->views;
    info.local = std::string(ondevice::aggregation_name(c->local));
    info.local_threshold = j.at("thresholds").at("local").get<double>();
    info.features = ondevice::device_feature_shape(*c);
    info.labels = j.value("labels", std::vector<std::string>{});
  } catch (const nlohmann::json::exception& e) {
    return bad(e.what());
  }
  info.manifest_hash = ise::model_hash_of(text);
  return info;
}

Result<ise::ServiceDescriptor> ddnn_section_descriptor(const DdnnInfo& info,
                                                       const std::string& section,
                                                       const std::string& package_cid) {
  ise::ServiceDescriptor d;
  d.name = info.name + "." + section;
  d.model_cid = package_cid;
  d.model_hash = info.manifest_hash;
  d.motif = "ddnn";
  const auto scores = ise::TensorType{"scores", core::DType::kF32, {info.classes}};
  const auto features = ise::TensorType{"features", core::DType::kU8, {info.feature_bytes()}};
  if (section == "cloud") {
    d.description = fmt::format(
        "DDNN {} cloud section: the present devices' packed features (inputs, input_views) in, "
        "class scores out",
        info.name);
    d.inputs = {features};
    d.outputs = {scores};
    d.exits = {{"cloud", 0, model::ExitCriterion::kEntropy, 0.0}};
  } else if (section.rfind("device", 0) == 0) {
    int64_t dev = -1;
    try {
      dev = std::stoll(section.substr(6));
    } catch (...) {
    }
    if (dev < 0 || dev >= info.devices || section != "device" + std::to_string(dev))
      return Status::invalid_argument("no DDNN section '" + section + "'");
    d.description = fmt::format(
        "DDNN {} device section {} (camera view {}): frame sample_ref in, local-exit scores out "
        "(packed features with stop_after_stage 0)",
        info.name, dev, info.views[static_cast<size_t>(dev)]);
    d.inputs = {{"view", core::DType::kU8, {info.channels, info.size, info.size}}};
    d.outputs = {scores, features};
    d.exits = {{"device", 0, model::ExitCriterion::kEntropy, info.local_threshold}};
  } else {
    return Status::invalid_argument("no DDNN section '" + section + "'");
  }
  IDN_RETURN_IF_ERROR(ise::validate(d));
  return d;
}

Result<std::shared_ptr<Handler>> ddnn_device_handler(
    const fs::path& dir, int64_t device, std::shared_ptr<const data::MultiViewDataset> camera) {
  IDN_ASSIGN_OR_RETURN(auto info, read_ddnn_info(dir));
  if (device < 0 || device >= info.devices)
    return Status::invalid_argument(
        fmt::format("device {} is not in the package ({} devices)", device, info.devices));
  if (!camera) return Status::invalid_argument("a device section needs its camera");
  const int64_t view = info.views[static_cast<size_t>(device)];
  if (camera->views <= view || camera->c != info.channels || camera->h != info.size ||
      camera->w != info.size)
    return Status::invalid_argument(fmt::format(
        "the camera replay ({} views of {}x{}x{}) lacks view {} of {}x{}x{}", camera->views,
        camera->c, camera->h, camera->w, view, info.channels, info.size, info.size));
  const fs::path blob = dir / ("device" + std::to_string(device) + ".idnb");
  IDN_ASSIGN_OR_RETURN(auto bytes, model::read_file(blob, 1 << 20));
  auto section = ondevice::Section::parse(bytes);
  if (!section.ok()) return section.status().with_context(blob.string());
  if (section->input_shape() != ondevice::Shape{info.channels, info.size, info.size} ||
      section->input_kind() != ondevice::InputKind::kPixels)
    return Status::invalid_argument(blob.string() + ": not a pixel section of the package's views");
  std::shared_ptr<Handler> h = std::make_shared<DeviceHandler>(
      std::move(info), device, std::move(*section), std::move(camera));
  return h;
}

namespace {
// Function-local: serve_torch registers from another translation unit's static initializer.
std::optional<DdnnCloudFactory>& cloud_factory() {
  static std::optional<DdnnCloudFactory> f;
  return f;
}
}  // namespace

void register_ddnn_cloud(DdnnCloudFactory factory) {
  cloud_factory() = std::move(factory);
}

Result<std::shared_ptr<Handler>> ddnn_cloud_handler(const fs::path& dir) {
  IDN_ASSIGN_OR_RETURN(auto info, read_ddnn_info(dir));
  if (!cloud_factory())
    return Status::unsupported(dir.string() +
                               ": a DDNN cloud section runs on LibTorch, and this idn was built "
                               "without it (device sections run without)");
  return (*cloud_factory())(std::move(info), dir);
}

}  // namespace idn::serve
