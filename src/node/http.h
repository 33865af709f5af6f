// The node's HTTP/1.1 endpoint (Boost.Beast on the node's io_context): routes by method and path
// pattern ("/idn/v1/services/{id}"), fixed GET routes such as /metrics and /status, asynchronous
// handlers that answer once or stream Server-Sent Events and hear when the client goes away,
// request bodies bounded per route; plus a blocking client for `idn peers` and tests.
// The server is not thread-safe: create, start and stop it on the io_context's thread (or
// before the context runs); handlers run on that thread.
#pragma once

#include <utility>  // Boost 1.74 awaitable.hpp uses std::exchange without including it

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "node/config.h"

namespace idn::node {

struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

using HttpHandler = std::function<HttpResponse()>;

// One request as an asynchronous handler sees it (the body complete, within its route's limit).
struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as sent, with the query
  std::string path;    // without the query
  // The {name} segments of the route pattern, by name.
  std::map<std::string, std::string, std::less<>> params;
  // Header fields, names lower-cased (the last one wins when repeated).
  std::map<std::string, std::string, std::less<>> headers;
  std::string body;

  // The header's value, or "" when absent. `name` in lower case.
  std::string_view header(std::string_view name) const;
  // The media type of Content-Type, lower-cased, without parameters ("image/png").
  std::string media_type() const;
  // True when Accept names text/event-stream.
  bool accepts_event_stream() const;
};

// The answering side of one request. A handler either respond()s once, or start_events()s and
// then sends events; after a stream of events the connection closes. Not answering at all is
// answered 500. Every call must be made on the io thread while the handler runs.
class HttpExchange {
 public:
  virtual ~HttpExchange() = default;
  // The whole response. Errors: IOError (the client is gone), Internal (answered already).
  virtual boost::asio::awaitable<Status> respond(const HttpResponse& r) = 0;
  // 200 with Content-Type text/event-stream; the body ends when the connection closes.
  virtual boost::asio::awaitable<Status> start_events() = 0;
  // "event: <event>\ndata: <data>\n\n". `data` must be one line (JSON without newlines).
  virtual boost::asio::awaitable<Status> send_event(std::string_view event,
                                                    std::string_view data) = 0;
  // True once the client has closed its side (or the server stops).
  virtual bool closed() const = 0;
  // `f` runs (once, on the io thread) when the client closes the connection while the handler
  // runs: the way to cancel work nobody waits for any more.
  virtual void on_close(std::function<void()> f) = 0;
};

// The request stays alive until the handler's coroutine ends. (Callers of these coroutines: pass
// named objects, not temporaries, to a co_await: GCC 12 miscompiles some of those.)
using AsyncHttpHandler =
    std::function<boost::asio::awaitable<void>(const HttpRequest&, HttpExchange&)>;

class HttpServer {
 public:
  // Slow or idle clients are disconnected after this long without a complete request, and a
  // response (or one event) not taken by the client within it ends the connection.
  static constexpr std::chrono::seconds kRequestTimeout{15};
  // The body limit of routes that name none (GET requests carry no body); more is 413.
  static constexpr size_t kMaxRequestBody = 1024;
  static constexpr size_t kMaxHeaderBytes = 16 * 1024;
  // Open connections at most (an event stream holds one for as long as its inference runs); a
  // connection over it gets a 503 saying so and is closed.
  static constexpr size_t kMaxConnections = 256;

  explicit HttpServer(boost::asio::any_io_executor ex);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Serves GET and HEAD of exactly `path` (the query string is ignored).
  void route(std::string path, HttpHandler handler);
  // Serves `method` ("GET" also answers HEAD, without the body) of paths matching `pattern`:
  // literal segments, and {name} for any one non-empty segment (HttpRequest::params).
  // Bodies over `max_body` bytes are answered 413 before the handler runs.
  void route(std::string method, std::string pattern, AsyncHttpHandler handler,
             size_t max_body = kMaxRequestBody);
  // Binds and listens (port 0 picks one). Errors: IOError naming the address.
  Status listen(const HttpAddress& addr);
  // The bound address (the real port when 0 was asked for).
  HttpAddress local_address() const;
  // Starts accepting. Requires listen().
  void start();
  // Stops accepting and closes every open connection (handlers hear on_close). Idempotent.
  void stop();

  uint64_t requests_served() const;
  // Replaces kMaxConnections (tests; a node with other needs). Call before start().
  void set_max_connections(size_t n);
  uint64_t connections_refused() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// GET http://addr/target. Blocking (runs its own io_context); fails after `timeout`.
// Errors: IOError (connect/read), Timeout.
Result<HttpResponse> http_get(const HttpAddress& addr, std::string_view target,
                              std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace idn::node
