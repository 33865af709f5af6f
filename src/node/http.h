// The node's small HTTP/1.1 endpoint (Boost.Beast on the node's io_context): fixed GET routes
// such as /metrics and /status, plus a blocking GET client for `idn peers` and tests.
// The server is not thread-safe: create, start and stop it on the io_context's thread (or
// before the context runs); handlers run on that thread.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/status.h"
#include "node/config.h"

namespace idn::node {

struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

using HttpHandler = std::function<HttpResponse()>;

class HttpServer {
 public:
  // Slow or idle clients are disconnected after this long without a complete request.
  static constexpr std::chrono::seconds kRequestTimeout{15};
  // GET requests carry no body; anything bigger is refused (413).
  static constexpr size_t kMaxRequestBody = 1024;

  explicit HttpServer(boost::asio::any_io_executor ex);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Serves GET and HEAD of exactly `path` (the query string is ignored).
  void route(std::string path, HttpHandler handler);
  // Binds and listens (port 0 picks one). Errors: IOError naming the address.
  Status listen(const HttpAddress& addr);
  // The bound address (the real port when 0 was asked for).
  HttpAddress local_address() const;
  // Starts accepting. Requires listen().
  void start();
  // Stops accepting and closes every open connection. Idempotent.
  void stop();

  uint64_t requests_served() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// GET http://addr/target. Blocking (runs its own io_context); fails after `timeout`.
// Errors: IOError (connect/read), Timeout.
Result<HttpResponse> http_get(const HttpAddress& addr, std::string_view target,
                              std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace idn::node
