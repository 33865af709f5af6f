// Serves the files of one directory read-only under a URL prefix on the node's HTTP server
// (`idn demo --serve --web-dir js/dist`: the browser bundle and onnxruntime-web's WASM files
// for the page's "serve from this tab" button). Only plain file names directly in the directory;
// no listing. Call on the io thread, as HttpServer::route.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "node/http.h"

namespace idn::node {

// GET prefix/{file} answers the file with its media type (.js/.mjs text/javascript, .wasm
// application/wasm, .json, .html, .css, .png, .map; others application/octet-stream), 404 for
// a name that is not a regular file there, 400 for a name with a path separator or a leading dot.
void add_static_routes(HttpServer& http, std::filesystem::path dir,
                       std::string prefix = "/idn/web");

// The media type served for a file name (by its extension).
std::string_view media_type_of(std::string_view name);

}  // namespace idn::node
