#include "node/static_files.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>
#include <system_error>

namespace idn::node {

namespace fs = std::filesystem;

std::string_view media_type_of(std::string_view name) {
  auto ends = [&](std::string_view ext) {
    return name.size() >= ext.size() && name.substr(name.size() - ext.size()) == ext;
  };
  if (ends(".js") || ends(".mjs")) return "text/javascript; charset=utf-8";
  if (ends(".wasm")) return "application/wasm";
  if (ends(".json") || ends(".map")) return "application/json";
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".png")) return "image/png";
  return "application/octet-stream";
}

namespace {

bool plain_name(std::string_view name) {
  if (name.empty() || name.front() == '.') return false;
  for (char c : name)
    if (c == '/' || c == '\\' || c == '\0') return false;
  return true;
}

HttpResponse serve_file(const fs::path& dir, const std::string& name) {
  if (!plain_name(name)) return {400, "text/plain; charset=utf-8", "bad file name\n"};
  const fs::path file = dir / name;
  std::error_code ec;
  if (!fs::is_regular_file(file, ec))
    return {404, "text/plain; charset=utf-8", fmt::format("no file {} here\n", name)};
  std::ifstream in(file, std::ios::binary);
  std::ostringstream body;
  body << in.rdbuf();
  if (!in.good() && !in.eof())
    return {500, "text/plain; charset=utf-8", fmt::format("cannot read {}\n", name)};
  return {200, std::string(media_type_of(name)), std::move(body).str()};
}

}  // namespace

void add_static_routes(HttpServer& http, fs::path dir, std::string prefix) {
  http.route("GET", prefix + "/{file}",
             [dir = std::move(dir)](const HttpRequest& req,
                                    HttpExchange& ex) -> boost::asio::awaitable<void> {
               const HttpResponse r = serve_file(dir, req.params.find("file")->second);
               co_await ex.respond(r);
             });
}

}  // namespace idn::node
