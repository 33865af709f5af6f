#include "node/http.h"

#include <fmt/format.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
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

Result<asio::ip::address> to_ip(const HttpAddress& addr) {
  error_code ec;
  auto ip = asio::ip::make_address(addr.host, ec);
  if (ec) return Status::invalid_argument(fmt::format("'{}' is not an IP address", addr.host));
  return ip;
}

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<Impl> {
  explicit Impl(asio::any_io_executor e) : ex(std::move(e)), acceptor(ex) {}

  asio::any_io_executor ex;
  tcp::acceptor acceptor;
  std::map<std::string, HttpHandler, std::less<>> routes;
  std::map<uint64_t, std::weak_ptr<beast::tcp_stream>> sessions;
  uint64_t next_session = 0;
  uint64_t requests = 0;
  bool stopped = false;

  http::response<http::string_body> respond(const http::request<http::string_body>& req) {
    HttpResponse r;
    bool head = req.method() == http::verb::head;
    if (req.method() != http::verb::get && !head) {
      r.status = 405;
      r.body = "method not allowed: only GET and HEAD\n";
    } else {
      std::string_view path =
          strip_query(std::string_view(req.target().data(), req.target().size()));
      auto it = routes.find(path);
      if (it == routes.end()) {
        r.status = 404;
        r.body = fmt::format("no such path {}; try /metrics or /status\n", path);
      } else {
        r = it->second();
      }
    }
    http::response<http::string_body> res{static_cast<http::status>(r.status), req.version()};
    res.set(http::field::server, kServerName);
    res.set(http::field::content_type, r.content_type);
    res.set(http::field::cache_control, "no-store");
    if (r.status == 405) res.set(http::field::allow, "GET, HEAD");
    res.keep_alive(req.keep_alive());
    res.content_length(r.body.size());
    if (!head) res.body() = std::move(r.body);
    return res;
  }

  asio::awaitable<void> session(tcp::socket socket) {
    auto self = shared_from_this();
    auto stream = std::make_shared<beast::tcp_stream>(std::move(socket));
    uint64_t id = next_session++;
    sessions[id] = stream;
    beast::flat_buffer buf;
    error_code ec;
    while (!stopped) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(kMaxRequestBody);
      parser.header_limit(16 * 1024);
      stream->expires_after(kRequestTimeout);
      co_await http::async_read(*stream, buf, parser,
                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec == http::error::body_limit) {
        http::response<http::string_body> res{http::status::payload_too_large, 11};
        res.set(http::field::server, kServerName);
        res.body() = "request body too large\n";
        res.prepare_payload();
        res.keep_alive(false);
        co_await http::async_write(*stream, res, asio::redirect_error(asio::use_awaitable, ec));
        break;
      }
      if (ec) break;  // end of stream, timeout, malformed request, or stop()
      auto res = respond(parser.get());
      ++requests;
      co_await http::async_write(*stream, res, asio::redirect_error(asio::use_awaitable, ec));
      if (ec || !res.keep_alive()) break;
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
      asio::co_spawn(ex, session(std::move(sock)), asio::detached);
    }
  }
};

HttpServer::HttpServer(asio::any_io_executor ex) : impl_(std::make_shared<Impl>(std::move(ex))) {}

HttpServer::~HttpServer() {
  stop();
}

void HttpServer::route(std::string path, HttpHandler handler) {
  impl_->routes[std::move(path)] = std::move(handler);
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
