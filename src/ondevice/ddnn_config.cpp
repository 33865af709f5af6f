#include "ondevice/ddnn_config.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <string>

namespace idn::ondevice {
namespace {

int64_t pooled(int64_t s, int64_t blocks) {
  for (int64_t i = 0; i < blocks; ++i) s = (s - 1) / 2 + 1;
  return s;
}

}  // namespace

std::string_view aggregation_name(Aggregation a) {
  switch (a) {
    case Aggregation::kMax:
      return "MP";
    case Aggregation::kAverage:
      return "AP";
    case Aggregation::kConcat:
      return "CC";
  }
  return "?";
}

Result<Aggregation> parse_aggregation(std::string_view s) {
  std::string u(s);
  for (auto& ch : u) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  if (u == "MP") return Aggregation::kMax;
  if (u == "AP") return Aggregation::kAverage;
  if (u == "CC") return Aggregation::kConcat;
  return Status::invalid_argument("unknown aggregation '" + std::string(s) +
                                  "' (expected MP, AP or CC)");
}

std::pair<int64_t, int64_t> DdnnConfig::edge_devices(int64_t g) const {
  const int64_t n = devices(), e = std::max<int64_t>(edges, 1);
  return {g * n / e, (g + 1) * n / e};
}

Result<DdnnConfig> ddnn_config(char letter, int64_t views) {
  DdnnConfig c;
  c.letter = letter;
  if (views < 1 || views > 64)
    return Status::invalid_argument("views must be in 1..64, got " + std::to_string(views));
  const bool multi = letter == 'c' || letter == 'e' || letter == 'f';
  const int64_t n = multi ? views : 1;
  for (int64_t v = 0; v < n; ++v) c.views.push_back(v);
  switch (letter) {
    case 'a':
    case 'b':
    case 'c':
      c.edges = 0;
      break;
    case 'd':
    case 'e':
      c.edges = 1;
      break;
    case 'f':
      c.edges = 2;
      break;
    default:
      return Status::invalid_argument(std::string("unknown DDNN configuration '") + letter +
                                      "' (expected a letter a-f of Fig. 4.1)");
  }
  if (Status s = validate(c); !s.is_ok()) return s;
  return c;
}

Status validate(const DdnnConfig& c) {
  auto bad = [](const std::string& m) { return Status::invalid_argument("ddnn config: " + m); };
  if (c.letter < 'a' || c.letter > 'f')
    return bad(std::string("unknown configuration '") + c.letter + "' (expected a-f)");
  const int64_t n = c.devices();
  if (n < 1 || n > 64) return bad("1..64 devices expected, got " + std::to_string(n));
  const bool single = c.letter == 'a' || c.letter == 'b' || c.letter == 'd';
  if (single && n != 1) return bad(std::string("(") + c.letter + ") has one device");
  if (c.letter == 'f' && n < 2) return bad("(f) needs at least two devices");
  std::set<int64_t> seen;
  for (int64_t v : c.views)
    if (v < 0 || v >= 64 || !seen.insert(v).second) return bad("views must be distinct, in 0..63");
  const int64_t want_edges = c.letter == 'd' || c.letter == 'e' ? 1 : c.letter == 'f' ? -1 : 0;
  if (want_edges >= 0 && c.edges != want_edges)
    return bad(std::string("(") + c.letter + ") has " + std::to_string(want_edges) + " edge(s)");
  if (c.letter == 'f' && (c.edges < 2 || c.edges > n))
    return bad("(f) needs 2..devices edges, got " + std::to_string(c.edges));
  for (auto [name, v] : {std::pair<const char*, int64_t>{"channels", c.channels},
                         {"size", c.size},
                         {"classes", c.classes},
                         {"device_filters", c.device_filters},
                         {"device_blocks", c.device_blocks},
                         {"edge_filters", c.edge_filters},
                         {"edge_blocks", c.edge_blocks},
                         {"cloud_filters", c.cloud_filters},
                         {"cloud_blocks", c.cloud_blocks}})
    if (v < 1 || v > 4096) return bad(std::string(name) + " must be in 1..4096");
  if (c.classes < 2) return bad("at least two classes");
  if (c.channels > 16 || c.size > 1024) return bad("views up to 16 x 1024 x 1024");
  if (c.device_blocks > 8 || c.edge_blocks > 8 || c.cloud_blocks > 8)
    return bad("at most 8 ConvP blocks per section");
  return Status::ok();
}

nlohmann::json to_json(const DdnnConfig& c) {
  return {{"letter", std::string(1, c.letter)},
          {"views", c.views},
          {"edges", c.edges},
          {"channels", c.channels},
          {"size", c.size},
          {"classes", c.classes},
          {"device_filters", c.device_filters},
          {"device_blocks", c.device_blocks},
          {"edge_filters", c.edge_filters},
          {"edge_blocks", c.edge_blocks},
          {"cloud_filters", c.cloud_filters},
          {"cloud_blocks", c.cloud_blocks},
          {"local", aggregation_name(c.local)},
          {"edge", aggregation_name(c.edge)},
          {"cloud", aggregation_name(c.cloud)},
          {"mask_absent", c.mask_absent}};
}

Result<DdnnConfig> ddnn_config_from_json(const nlohmann::json& j) {
  DdnnConfig c;
  try {
    if (!j.is_object()) return Status::invalid_argument("ddnn config: an object expected");
    const auto letter = j.at("letter").get<std::string>();
    if (letter.size() != 1) return Status::invalid_argument("ddnn config: letter a-f expected");
    c.letter = letter[0];
    c.views = j.at("views").get<std::vector<int64_t>>();
    for (auto [key, field] : {std::pair<const char*, int64_t*>{"edges", &c.edges},
                              {"channels", &c.channels},
                              {"size", &c.size},
                              {"classes", &c.classes},
                              {"device_filters", &c.device_filters},
                              {"device_blocks", &c.device_blocks},
                              {"edge_filters", &c.edge_filters},
                              {"edge_blocks", &c.edge_blocks},
                              {"cloud_filters", &c.cloud_filters},
                              {"cloud_blocks", &c.cloud_blocks}})
      *field = j.at(key).get<int64_t>();
    for (auto [key, field] : {std::pair<const char*, Aggregation*>{"local", &c.local},
                              {"edge", &c.edge},
                              {"cloud", &c.cloud}}) {
      auto a = parse_aggregation(j.at(key).get<std::string>());
      if (!a.ok()) return a.status().with_context(std::string("ddnn config: ") + key);
      *field = *a;
    }
    c.mask_absent = j.at("mask_absent").get<bool>();
  } catch (const nlohmann::json::exception& e) {
    return Status::invalid_argument(std::string("ddnn config: ") + e.what());
  }
  if (Status s = validate(c); !s.is_ok()) return s;
  return c;
}

Shape device_feature_shape(const DdnnConfig& c) {
  const int64_t s = pooled(c.size, c.device_blocks);
  return {c.device_filters, s, s};
}

}  // namespace idn::ondevice
