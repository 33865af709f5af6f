#include "node/http.h"

#include <fmt/format.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <limits>
#include <optional>

namespace idn::node {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr char kServerName[] = "idn";

std::string_view strip_query(std::string_view target) {
  size_t q = target.find_first_of("?#");
  return q == std::string_view::npos ? target : target.substr(0, q);
}

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    out.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

Result<asio::ip::address> to_ip(const HttpAddress& addr) {
  error_code ec;
  auto ip = asio::ip::make_address(addr.host, ec);
  if (ec) return Status::invalid_argument(fmt::format("'{}' is not an IP address", addr.host));
  return ip;
}

struct AsyncRoute {
  std::string method;
  std::vector<std::string> segments;  // "{name}" matches any one non-empty segment
  AsyncHttpHandler handler;
  size_t max_body = HttpServer::kMaxRequestBody;

  bool match(const std::vector<std::string_view>& path,
             std::map<std::string, std::string, std::less<>>* params) const {
    if (path.size() != segments.size()) return false;
    for (size_t i = 0; i < path.size(); ++i) {
      const std::string& s = segments[i];
      if (s.size() > 2 && s.front() == '{' && s.back() == '}') {
        if (path[i].empty()) return false;
        if (params) (*params)[s.substr(1, s.size() - 2)] = std::string(path[i]);
      } else if (s != path[i]) {
        return false;
      }
    }
    return true;
  }
};

using Stream = beast::tcp_stream;

// The state an asynchronous handler's exchange shares with the connection's close watcher.
struct ExchangeState {
  bool finished = false;  // the handler returned: the watcher's wake-up means nothing
  bool closed = false;
  std::function<void()> on_close;
  void close() {
    if (closed) return;
    closed = true;
    if (auto f = std::move(on_close)) f();
  }
};

class Exchange final : public HttpExchange {
 public:
  Exchange(std::shared_ptr<Stream> stream, std::shared_ptr<ExchangeState> state, unsigned version,
           bool head, bool keep_alive)
      : stream_(std::move(stream)),
        state_(std::move(state)),
        version_(version),
        head_(head),
        keep_alive_(keep_alive) {}

  asio::awaitable<Status> respond(const HttpResponse& r) override {
    if (answered_) co_return Status::internal("response already sent");
    answered_ = true;
    http::response<http::string_body> res{static_cast<http::status>(r.status), version_};
    res.set(http::field::server, kServerName);
    res.set(http::field::content_type, r.content_type);
    res.set(http::field::cache_control, "no-store");
    res.keep_alive(keep_alive_);
    res.content_length(r.body.size());
    if (!head_) res.body() = r.body;
    error_code ec;
    stream_->expires_after(HttpServer::kRequestTimeout);
    co_await http::async_write(*stream_, res, asio::redirect_error(asio::use_awaitable, ec));
    stream_->expires_never();
    if (ec) {
      keep_alive_ = false;
      co_return Status::io_error("HTTP client gone: " + ec.message());
    }
    co_return Status::ok();
  }

  asio::awaitable<Status> start_events() override {
    if (answered_) co_return Status::internal("response already sent");
    answered_ = true;
    events_ = true;
    keep_alive_ = false;
    const std::string head = fmt::format(
        "HTTP/1.{} 200 OK\r\nServer: {}\r\nContent-Type: text/event-stream\r\n"
        "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        version_ % 10, kServerName);
    co_return co_await write(head);
  }

  asio::awaitable<Status> send_event(std::string_view event, std::string_view data) override {
    if (!events_) co_return Status::internal("send_event before start_events");
    if (data.find_first_of("\r\n") != std::string_view::npos ||
        event.find_first_of("\r\n") != std::string_view::npos)
      co_return Status::invalid_argument("an event's name and data must be one line each");
    const std::string bytes = fmt::format("event: {}\ndata: {}\n\n", event, data);
    co_return co_await write(bytes);
  }

  bool closed() const override { return state_->closed; }
  void on_close(std::function<void()> f) override {
    if (state_->closed) {
      if (f) f();
      return;
    }
    state_->on_close = std::move(f);
  }

  bool answered() const { return answered_; }
  bool keep_alive() const { return keep_alive_; }

 private:
  asio::awaitable<Status> write(const std::string& bytes) {
    if (state_->closed) co_return Status::io_error("HTTP client gone");
    error_code ec;
    stream_->expires_after(HttpServer::kRequestTimeout);
    co_await asio::async_write(*stream_, asio::buffer(bytes),
                               asio::redirect_error(asio::use_awaitable, ec));
    stream_->expires_never();
    if (ec) {
      state_->close();
      co_return Status::io_error("HTTP client gone: " + ec.message());
    }
    co_return Status::ok();
  }

  std::shared_ptr<Stream> stream_;
  std::shared_ptr<ExchangeState> state_;
  unsigned version_;
  bool head_;
  bool keep_alive_;
  bool answered_ = false;
  bool events_ = false;
};

}  // namespace

std::string_view HttpRequest::header(std::string_view name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string_view{} : std::string_view(it->second);
}

std::string HttpRequest::media_type() const {
  std::string_view v = header("content-type");
  v = v.substr(0, v.find(';'));
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  return lower(v);
}

bool HttpRequest::accepts_event_stream() const {
  return lower(header("accept")).find("text/event-stream") != std::string::npos;
}

struct HttpServer::Impl : std::enable_shared_from_this<Impl> {
  explicit Impl(asio::any_io_executor e) : ex(std::move(e)), acceptor(ex) {}

  asio::any_io_executor ex;
  tcp::acceptor acceptor;
  std::map<std::string, HttpHandler, std::less<>> routes;
  std::vector<AsyncRoute> async_routes;
  std::map<uint64_t, std::weak_ptr<Stream>> sessions;
  uint64_t next_session = 0;
  uint64_t requests = 0;
  size_t max_connections = HttpServer::kMaxConnections;
  uint64_t refused = 0;
  bool stopped = false;

  http::response<http::string_body> plain(const http::request_header<>& req, unsigned status,
                                          std::string body, bool keep_alive) {
    http::response<http::string_body> res{static_cast<http::status>(status), req.version()};
    res.set(http::field::server, kServerName);
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.set(http::field::cache_control, "no-store");
    res.keep_alive(keep_alive);
    res.content_length(body.size());
    if (req.method() != http::verb::head) res.body() = std::move(body);
    return res;
  }

  // The fixed GET routes (and the 404 / 405 answers of every request no route takes).
  http::response<http::string_body> respond(const http::request<http::string_body>& req) {
    HttpResponse r;
    bool head = req.method() == http::verb::head;
    std::string_view path = strip_query(std::string_view(req.target().data(), req.target().size()));
    std::string allow = "GET, HEAD";
    auto it = routes.find(path);
    if (it == routes.end()) {
      allow.clear();
      auto segs = split_path(path);
      for (const auto& a : async_routes) {
        if (!a.match(segs, nullptr)) continue;
        if (!allow.empty()) allow += ", ";
        allow += a.method == "GET" ? "GET, HEAD" : a.method;
      }
    }
    if (allow.empty()) {
      r.status = 404;
      r.body = fmt::format("no such path {}; try /metrics or /status\n", path);
    } else if (it == routes.end() || (req.method() != http::verb::get && !head)) {
      r.status = 405;
      r.body = fmt::format("method not allowed: only {}\n", allow);
    } else {
      r = it->second();
    }
    http::response<http::string_body> res{static_cast<http::status>(r.status), req.version()};
    res.set(http::field::server, kServerName);
    res.set(http::field::content_type, r.content_type);
    res.set(http::field::cache_control, "no-store");
    if (r.status == 405) res.set(http::field::allow, allow);
    res.keep_alive(req.keep_alive());
    res.content_length(r.body.size());
    if (!head) res.body() = std::move(r.body);
    return res;
  }

  const AsyncRoute* find_async(const http::request_header<>& req, HttpRequest* out) {
    std::string_view target(req.target().data(), req.target().size());
    auto segs = split_path(strip_query(target));
    std::string_view method(req.method_string().data(), req.method_string().size());
    if (req.method() == http::verb::head) method = "GET";
    for (const auto& a : async_routes) {
      if (a.method == method && a.match(segs, out ? &out->params : nullptr)) return &a;
    }
    return nullptr;
  }

  // Watches the connection while an asynchronous handler runs: a readable socket with nothing
  // to read is a closed one. (Bytes of a pipelined next request end the watch: the client is
  // still there.)
  static asio::awaitable<void> watch(std::shared_ptr<Stream> stream,
                                     std::shared_ptr<ExchangeState> state) {
    error_code ec;
    co_await stream->socket().async_wait(tcp::socket::wait_read,
                                         asio::redirect_error(asio::use_awaitable, ec));
    if (state->finished) co_return;
    if (!ec) {
      error_code aec;
      size_t n = stream->socket().available(aec);
      if (!aec && n > 0) co_return;
    }
    state->close();
  }

  asio::awaitable<bool> run_async(const std::shared_ptr<Stream>& stream, const AsyncRoute& route,
                                  const HttpRequest& req, unsigned version, bool head,
                                  bool keep_alive) {
    auto state = std::make_shared<ExchangeState>();
    Exchange exchange(stream, state, version, head, keep_alive);
    asio::co_spawn(ex, watch(stream, state), asio::detached);
    AsyncHttpHandler handler = route.handler;  // the route table may change while it runs
    co_await handler(req, exchange);
    state->finished = true;
    state->on_close = nullptr;
    error_code ec;
    if (!state->closed) stream->socket().cancel(ec);  // ends the watch
    if (!exchange.answered() && !state->closed) {
      const HttpResponse none{500, "text/plain; charset=utf-8", "the handler gave no answer\n"};
      co_await exchange.respond(none);
    }
    co_return exchange.keep_alive() && !state->closed;
  }

  // After a refusal: half-close, then discard what the client still sends, for at most
  // kDrainFor or kDrainBytes, so that our answer is not lost to a reset.
  static constexpr std::chrono::seconds kDrainFor{1};
  static constexpr size_t kDrainBytes = 16 * 1024 * 1024;
  static asio::awaitable<void> drain(Stream& stream) {
    error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream.expires_after(kDrainFor);
    std::vector<char> sink(64 * 1024);
    size_t total = 0;
    while (!ec && total < kDrainBytes) {
      total += co_await stream.async_read_some(asio::buffer(sink),
                                               asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  asio::awaitable<void> session(tcp::socket socket) {
    auto self = shared_from_this();
    auto stream = std::make_shared<Stream>(std::move(socket));
    uint64_t id = next_session++;
    sessions[id] = stream;
    beast::flat_buffer buf;
    error_code ec;
    while (!stopped) {
      http::request_parser<http::string_body> parser;
      // The route's limit is applied once the headers say which route it is (below); until
      // then a declared length must not end the read before we can answer 413.
      parser.body_limit(std::numeric_limits<std::uint64_t>::max());
      parser.header_limit(kMaxHeaderBytes);
      stream->expires_after(kRequestTimeout);
      co_await http::async_read_header(*stream, buf, parser,
                                       asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;  // end of stream, timeout, malformed request, or stop()
      const auto& hdr = parser.get().base();
      const AsyncRoute* route = find_async(hdr, nullptr);
      size_t limit = route ? route->max_body : kMaxRequestBody;
      auto length = parser.content_length();
      if (length && *length > limit) ec = http::error::body_limit;
      if (!ec) {
        parser.body_limit(limit);
        if (beast::iequals(hdr[http::field::expect], "100-continue") && !parser.is_done()) {
          static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
          co_await asio::async_write(*stream, asio::buffer(kContinue),
                                     asio::redirect_error(asio::use_awaitable, ec));
          if (ec) break;
        }
        co_await http::async_read(*stream, buf, parser,
                                  asio::redirect_error(asio::use_awaitable, ec));
      }
      if (ec == http::error::body_limit) {
        ++requests;
        auto res = plain(
            hdr, 413, fmt::format("request body too large: the limit is {} bytes\n", limit), false);
        stream->expires_after(kRequestTimeout);
        co_await http::async_write(*stream, res, asio::redirect_error(asio::use_awaitable, ec));
        // Closing a socket with unread bytes resets the connection, and the client may lose
        // the 413 with it: say we are done, then read and drop what is still coming, briefly.
        if (!ec) co_await drain(*stream);
        break;
      }
      if (ec) break;
      ++requests;
      auto& req = parser.get();
      if (!route) {
        auto res = respond(req);
        stream->expires_after(kRequestTimeout);
        co_await http::async_write(*stream, res, asio::redirect_error(asio::use_awaitable, ec));
        if (ec || !req.keep_alive()) break;
        continue;
      }
      HttpRequest r;
      find_async(req.base(), &r);
      r.method = std::string(req.method_string());
      r.target = std::string(req.target());
      r.path = std::string(strip_query(r.target));
      for (const auto& f : req.base())
        r.headers[lower({f.name_string().data(), f.name_string().size()})] = std::string(f.value());
      r.body = std::move(req.body());
      stream->expires_never();
      const unsigned version = req.version();
      const bool head = req.method() == http::verb::head, keep_alive = req.keep_alive();
      bool keep = co_await run_async(stream, *route, r, version, head, keep_alive);
      if (!keep) break;
    }
    stream->socket().shutdown(tcp::socket::shutdown_send, ec);
    stream->socket().close(ec);
    sessions.erase(id);
  }

  asio::awaitable<void> accept_loop() {
    auto self = shared_from_this();
    asio::steady_timer backoff(ex);
    while (!stopped) {
      error_code ec;
      tcp::socket sock =
          co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (stopped || ec == asio::error::operation_aborted) break;
      if (ec) {
        // Out of descriptors or similar: retry shortly instead of spinning.
        backoff.expires_after(std::chrono::milliseconds(100));
        co_await backoff.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      if (sessions.size() >= max_connections) {
        asio::co_spawn(ex, refuse(std::move(sock)), asio::detached);
        continue;
      }
      asio::co_spawn(ex, session(std::move(sock)), asio::detached);
    }
  }

  // Over max_connections: one 503 naming the limit, then the connection is closed (the
  // request, if any, is not read: the answer goes out at once).
  asio::awaitable<void> refuse(tcp::socket sock) {
    auto self = shared_from_this();
    refused++;
    const std::string body = "too many open HTTP connections (" + std::to_string(max_connections) +
                             "); try again later\n";
    const std::string res =
        "HTTP/1.1 503 Service Unavailable\r\nServer: " + std::string(kServerName) +
        "\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\nConnection: "
        "close\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body;
    beast::tcp_stream stream(std::move(sock));
    stream.expires_after(std::chrono::seconds(5));
    error_code ec;
    co_await asio::async_write(stream, asio::buffer(res),
                               asio::redirect_error(asio::use_awaitable, ec));
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream.socket().close(ec);
  }
};

HttpServer::HttpServer(asio::any_io_executor ex) : impl_(std::make_shared<Impl>(std::move(ex))) {}

HttpServer::~HttpServer() {
  stop();
}

void HttpServer::route(std::string path, HttpHandler handler) {
  impl_->routes[std::move(path)] = std::move(handler);
}

void HttpServer::route(std::string method, std::string pattern, AsyncHttpHandler handler,
                       size_t max_body) {
  AsyncRoute r;
  r.method = std::move(method);
  for (auto seg : split_path(pattern)) r.segments.emplace_back(seg);
  r.handler = std::move(handler);
  r.max_body = max_body;
  impl_->async_routes.push_back(std::move(r));
}

Status HttpServer::listen(const HttpAddress& addr) {
  IDN_ASSIGN_OR_RETURN(auto ip, to_ip(addr));
  tcp::endpoint ep(ip, addr.port);
  error_code ec;
  auto& a = impl_->acceptor;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    error_code ignored;
    a.close(ignored);
    return Status::io_error(
        fmt::format("cannot listen for HTTP on {}: {}", addr.to_string(), ec.message()));
  }
  return Status::ok();
}

HttpAddress HttpServer::local_address() const {
  error_code ec;
  auto ep = impl_->acceptor.local_endpoint(ec);
  if (ec) return {};
  return {ep.address().to_string(), ep.port()};
}

void HttpServer::start() {
  asio::co_spawn(impl_->ex, impl_->accept_loop(), asio::detached);
}

void HttpServer::stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  error_code ec;
  impl_->acceptor.close(ec);
  for (auto& [id, weak] : impl_->sessions) {
    if (auto s = weak.lock()) s->socket().close(ec);
  }
}

void HttpServer::set_max_connections(size_t n) {
  impl_->max_connections = n;
}

uint64_t HttpServer::connections_refused() const {
  return impl_->refused;
}

uint64_t HttpServer::requests_served() const {
  return impl_->requests;
}

Result<HttpResponse> http_get(const HttpAddress& addr, std::string_view target,
                              std::chrono::milliseconds timeout) {
  IDN_ASSIGN_OR_RETURN(auto ip, to_ip(addr));
  asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  std::optional<Result<HttpResponse>> result;
  auto fetch = [&]() -> asio::awaitable<void> {
    error_code ec;
    stream.expires_after(timeout);
    co_await stream.async_connect(tcp::endpoint(ip, addr.port),
                                  asio::redirect_error(asio::use_awaitable, ec));
    auto fail = [&](std::string_view step) {
      if (ec == beast::error::timeout) {
        return Status::timeout(fmt::format("GET http://{}{}: no answer within {} ms",
                                           addr.to_string(), target, timeout.count()));
      }
      return Status::io_error(
          fmt::format("GET http://{}{}: {}: {}", addr.to_string(), target, step, ec.message()));
    };
    if (ec) {
      result = fail("connect");
      co_return;
    }
    http::request<http::empty_body> req{http::verb::get, std::string(target), 11};
    req.set(http::field::host, addr.to_string());
    req.set(http::field::user_agent, kServerName);
    req.keep_alive(false);
    co_await http::async_write(stream, req, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      result = fail("write");
      co_return;
    }
    beast::flat_buffer buf;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    co_await http::async_read(stream, buf, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      result = fail("read");
      co_return;
    }
    auto& res = parser.get();
    HttpResponse out;
    out.status = res.result_int();
    out.content_type = std::string(res[http::field::content_type]);
    out.body = std::move(res.body());
    result = std::move(out);
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  };
  asio::co_spawn(ioc, fetch(), asio::detached);
  ioc.run();
  if (!result) return Status::internal("http_get finished without a result");
  return std::move(*result);
}

}  // namespace idn::node
