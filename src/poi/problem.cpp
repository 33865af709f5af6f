#include "poi/problem.h"

#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/multihash.h"
#include "model/file_io.h"
#include "model/safetensors.h"

namespace idn::poi {
namespace {

namespace fs = std::filesystem;
constexpr const char* kProblemJson = "problem.json";
constexpr const char* kInputs = "inputs.safetensors";
constexpr const char* kDel = "del";

std::string hex_sha256(ByteView b) {
  auto h = core::sha256(b);
  return hex_encode(ByteView(h.data(), h.size()));
}

}  // namespace

Status write_problem(const fs::path& dir, motifs::Del& del, const core::Tensor& inputs,
                     std::span<const daimon::Label> xt, double d_c, double delta) {
  if (static_cast<int64_t>(xt.size()) != del.m() || inputs.shape.empty() ||
      inputs.shape[0] != del.m() || inputs.dtype != core::DType::kF32) {
    return Status::invalid_argument(fmt::format(
        "a problem needs m = {} labels and F32 inputs [m, ...]; got {} labels and inputs {}",
        del.m(), xt.size(), core::shape_string(inputs.shape)));
  }
  if (!std::isfinite(d_c) || !std::isfinite(delta) || delta < 0 || d_c <= 0 || d_c > 1) {
    return Status::invalid_argument("need 0 < d_c <= 1 and delta >= 0");
  }
  std::error_code ec;
  if (fs::exists(dir) && !fs::is_empty(dir, ec)) {
    return Status::invalid_argument(dir.string() + " exists and is not empty");
  }
  fs::create_directories(dir, ec);
  if (ec) return Status::io_error("cannot create " + dir.string() + ": " + ec.message());
  IDN_ASSIGN_OR_RETURN(auto yt, del.embed(xt));
  IDN_RETURN_IF_ERROR(model::save_package(del.package(), dir / kDel));
  IDN_RETURN_IF_ERROR(model::save_safetensors(dir / kInputs, {{"inputs", inputs}}, {}));
  nlohmann::json j = {{"format", "idn-daimon-problem"},
                      {"version", 1},
                      {"classes", del.classes()},
                      {"m", del.m()},
                      {"n", del.n()},
                      {"encoding", std::string(motifs::del_encoding_name(del.encoding()))},
                      {"y_t", yt},
                      {"d_c", d_c},
                      {"delta", delta},
                      {"inputs", kInputs},
                      {"del", kDel}};
  std::string text = j.dump(2) + "\n";
  return model::write_file_atomic(
      dir / kProblemJson, ByteView(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

Result<Problem> load_problem(const fs::path& dir) {
  const fs::path pj = dir / kProblemJson;
  IDN_ASSIGN_OR_RETURN(Bytes raw, model::read_file(pj, 64 << 20));
  Problem p;
  p.dir = dir;
  p.id = hex_sha256(raw);
  auto bad = [&](const std::string& what) {
    return Status::invalid_argument(pj.string() + ": " + what);
  };
  nlohmann::json j = nlohmann::json::parse(raw.begin(), raw.end(), nullptr, false);
  if (!j.is_object()) return bad("not a JSON object");
  try {
    if (j.at("format") != "idn-daimon-problem" || j.at("version") != 1)
      return bad("not an idn-daimon-problem, version 1");
    p.classes = j.at("classes").get<uint32_t>();
    p.m = j.at("m").get<int64_t>();
    p.yt = j.at("y_t").get<std::vector<float>>();
    p.d_c = j.at("d_c").get<double>();
    p.delta = j.at("delta").get<double>();
    if (j.at("inputs").get<std::string>() != kInputs || j.at("del").get<std::string>() != kDel)
      return bad("\"inputs\" and \"del\" must name inputs.safetensors and del");
  } catch (const std::exception& e) {
    return bad(e.what());
  }
  IDN_ASSIGN_OR_RETURN(auto del, motifs::Del::load(dir / kDel));
  if (del.m() != p.m || del.classes() != p.classes ||
      static_cast<int64_t>(p.yt.size()) != del.n()) {
    return bad("m, classes or the size of y_t disagree with the DEL package");
  }
  p.del.emplace(std::move(del));
  IDN_ASSIGN_OR_RETURN(auto st, model::load_safetensors(dir / kInputs));
  auto it = st.tensors.find("inputs");
  if (it == st.tensors.end() || it->second.dtype != core::DType::kF32 || it->second.shape.empty() ||
      it->second.shape[0] != p.m) {
    return Status::invalid_argument((dir / kInputs).string() +
                                    ": needs one F32 tensor \"inputs\" of m rows");
  }
  p.inputs = std::move(it->second);
  return p;
}

}  // namespace idn::poi
