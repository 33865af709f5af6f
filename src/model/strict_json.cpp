#include "model/strict_json.h"

#include <set>
#include <string>
#include <vector>

namespace idn::model {

using nlohmann::json;

Result<json> parse_json_strict(std::string_view text, int max_depth) {
  // One entry per open container: the keys seen so far (arrays keep theirs empty).
  std::vector<std::set<std::string>> open;
  std::vector<bool> is_object;
  std::string duplicate;
  size_t deepest = 0;
  auto cb = [&](int /*depth*/, json::parse_event_t ev, json& parsed) {
    switch (ev) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        open.emplace_back();
        is_object.push_back(ev == json::parse_event_t::object_start);
        deepest = std::max(deepest, open.size());
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!open.empty()) {
          open.pop_back();
          is_object.pop_back();
        }
        break;
      case json::parse_event_t::key:
        if (!open.empty() && is_object.back() && parsed.is_string() &&
            !open.back().insert(parsed.get<std::string>()).second && duplicate.empty())
          duplicate = parsed.get<std::string>();
        break;
      case json::parse_event_t::value:
        break;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text.begin(), text.end(), cb);
  } catch (const json::exception& e) {
    return Status::corruption(std::string("not valid JSON: ") + e.what());
  }
  if (deepest > static_cast<size_t>(max_depth))
    return Status::corruption("JSON nests " + std::to_string(deepest) +
                              " levels deep, more than the limit of " + std::to_string(max_depth));
  if (!duplicate.empty())
    return Status::corruption("key \"" + duplicate + "\" appears more than once in one object");
  return j;
}

}  // namespace idn::model
