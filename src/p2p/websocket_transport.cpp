#include "p2p/websocket_transport.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

namespace idn::p2p {

namespace {

constexpr auto kUse = asio::use_awaitable;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;

const core::Multiaddr& ws_component() {
  static const core::Multiaddr kWs = *core::Multiaddr::parse("/ws");
  return kWs;
}

class WsConnection final : public RawConnection {
 public:
  // `host_header`: for a dialled connection, the Host header of the upgrade request; empty
  // for an accepted one.
  WsConnection(asio::ip::tcp::socket sock, core::Multiaddr local, core::Multiaddr remote,
               asio::ip::address remote_ip, std::string host_header, WsLimits limits)
      : RawConnection(std::move(local), std::move(remote), remote_ip),
        ws_(std::move(sock)),
        host_header_(std::move(host_header)),
        limits_(limits) {}

  awaitable<Status> open() override {
    ws_.binary(true);
    // One message per write, however large: the secure channel already frames its output.
    ws_.auto_fragment(false);
    ws_.read_message_max(limits_.max_message);
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "idn"); }));
    boost::system::error_code ec;
    if (!host_header_.empty()) {
      co_await ws_.async_handshake(host_header_, "/", asio::redirect_error(kUse, ec));
      if (ec) co_return Status::io_error("WebSocket upgrade refused: " + ec.message());
      co_return Status::ok();
    }
    co_return co_await accept_upgrade();
  }

  // One message per write, split at kWsWriteMessage: the secure channel may hand over many
  // Noise frames at once (a bulk write), more than a peer accepts in one message.
  awaitable<Status> write(ByteView data) override {
    while (!data.empty()) {
      size_t n = std::min(data.size(), defaults::kWsWriteMessage);
      boost::system::error_code ec;
      co_await ws_.async_write(asio::buffer(data.data(), n), asio::redirect_error(kUse, ec));
      if (ec) co_return Status::io_error("WebSocket write: " + ec.message());
      data = data.subspan(n);
    }
    co_return Status::ok();
  }

  // WebSocket has no half-close: a close frame ends the connection both ways. We send ours
  // and wait for the peer's (data arriving meanwhile is dropped).
  awaitable<Status> close_write() override {
    boost::system::error_code ec;
    co_await ws_.async_close(websocket::close_code::normal, asio::redirect_error(kUse, ec));
    if (ec && ec != websocket::error::closed && ec != asio::error::eof)
      co_return Status::io_error("WebSocket close: " + ec.message());
    co_return Status::ok();
  }

  void reset() override {
    boost::system::error_code ec;
    beast::get_lowest_layer(ws_).close(ec);
  }

 protected:
  awaitable<Result<size_t>> do_read_some(std::span<uint8_t> buf) override {
    while (true) {
      boost::system::error_code ec;
      size_t n = co_await ws_.async_read_some(asio::buffer(buf.data(), buf.size()),
                                              asio::redirect_error(kUse, ec));
      if (n > 0) co_return n;  // a message's end and an error may come together; data first
      if (ec == websocket::error::closed || ec == asio::error::eof) co_return size_t{0};
      if (ec == websocket::error::message_too_big) {
        co_return Status::limit_exceeded("WebSocket message larger than " +
                                         std::to_string(limits_.max_message) + " bytes");
      }
      if (ec == asio::error::operation_aborted)
        co_return Status::cancelled("WebSocket read cancelled");
      if (ec) co_return Status::io_error("WebSocket read: " + ec.message());
      // An empty message (or a control frame): nothing to hand over yet.
    }
  }

 private:
  // Reads the HTTP request ourselves (bounded) so that anything but a WebSocket upgrade gets
  // an answer a person can act on; Beast then validates the upgrade and answers 101 or 400.
  awaitable<Status> accept_upgrade() {
    auto& sock = ws_.next_layer();
    beast::flat_buffer buf(limits_.max_upgrade_request);
    http::request_parser<http::empty_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(limits_.max_upgrade_request));
    parser.body_limit(0);
    boost::system::error_code ec;
    co_await http::async_read(sock, buf, parser, asio::redirect_error(kUse, ec));
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      co_await refuse(
          http::status::request_header_fields_too_large,
          "upgrade request larger than " + std::to_string(limits_.max_upgrade_request) + " bytes");
      co_return Status::peer_misbehaved("WebSocket upgrade request larger than " +
                                        std::to_string(limits_.max_upgrade_request) + " bytes");
    }
    if (ec == http::error::body_limit || ec == http::error::unexpected_body) {
      co_await refuse(http::status::bad_request, "an upgrade request has no body");
      co_return Status::peer_misbehaved("WebSocket upgrade request with a body");
    }
    if (ec == http::error::end_of_stream || ec == asio::error::eof)
      co_return Status::io_error("connection closed before its WebSocket upgrade request");
    if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor)
      co_return Status::cancelled("WebSocket upgrade aborted");
    if (ec && ec.category() == http::make_error_code(http::error::bad_method).category()) {
      co_await refuse(http::status::bad_request, "malformed HTTP request: " + ec.message());
      co_return Status::peer_misbehaved("malformed WebSocket upgrade request: " + ec.message());
    }
    if (ec) co_return Status::io_error("WebSocket upgrade request: " + ec.message());
    const auto& req = parser.get();
    if (!websocket::is_upgrade(req)) {
      co_await refuse(http::status::bad_request,
                      "this is a libp2p WebSocket endpoint: send a WebSocket upgrade "
                      "(GET with Connection: Upgrade and Upgrade: websocket)");
      co_return Status::peer_misbehaved("HTTP request without a WebSocket upgrade (" +
                                        std::string(req.method_string()) + " " +
                                        std::string(req.target().substr(0, 64)) + ")");
    }
    if (buf.size() != 0) {
      co_await refuse(http::status::bad_request, "data sent before the upgrade was answered");
      co_return Status::peer_misbehaved("WebSocket data sent before the upgrade was answered");
    }
    co_await ws_.async_accept(req, asio::redirect_error(kUse, ec));  // answers 400 on failure
    if (ec) co_return Status::peer_misbehaved("bad WebSocket upgrade: " + ec.message());
    co_return Status::ok();
  }

  awaitable<void> refuse(http::status status, std::string why) {
    http::response<http::string_body> res(status, 11);
    res.set(http::field::server, "idn");
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.set(http::field::connection, "close");
    res.body() = std::move(why) + "\n";
    res.prepare_payload();
    boost::system::error_code ec;
    co_await http::async_write(ws_.next_layer(), res, asio::redirect_error(kUse, ec));
    ws_.next_layer().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  }

  websocket::stream<asio::ip::tcp::socket> ws_;
  std::string host_header_;
  WsLimits limits_;
};

class WsTransport final : public Transport {
 public:
  explicit WsTransport(WsLimits limits) : limits_(limits) {}
  std::string_view name() const override { return "ws"; }
  bool handles(const core::Multiaddr& addr) const override {
    auto p = tcp_addr_parts(addr);
    return p && p->tail.size() == 1 && p->tail[0] == core::Protocol::kWs;
  }
  Result<std::unique_ptr<TransportListener>> listen(asio::any_io_executor ex,
                                                    const core::Multiaddr& addr) override {
    if (!handles(addr)) return Status::invalid_argument("ws: cannot listen on " + addr.to_string());
    return tcp_listen(
        ex, addr, [](core::Multiaddr bound) { return bound.encapsulate(ws_component()); },
        [limits = limits_](AcceptedTcp a) -> std::unique_ptr<RawConnection> {
          return std::make_unique<WsConnection>(
              std::move(a.socket), a.local.encapsulate(ws_component()),
              a.remote.encapsulate(ws_component()), a.remote_ip, std::string(), limits);
        });
  }
  awaitable<Result<std::unique_ptr<RawConnection>>> dial(asio::any_io_executor ex,
                                                         const core::Multiaddr& addr,
                                                         DialOptions options) override {
    auto parts = tcp_addr_parts(addr);
    if (!parts || !handles(addr))
      co_return Status::invalid_argument("ws: cannot dial " + addr.to_string());
    auto sock = co_await tcp_connect(ex, addr, *parts, options);
    if (!sock.ok()) co_return sock.status();
    boost::system::error_code ec1, ec2;
    auto local = sock->local_endpoint(ec1);
    auto remote = sock->remote_endpoint(ec2);
    if (ec1 || ec2) co_return Status::io_error("dial " + addr.to_string() + ": connection dropped");
    auto l = core::Multiaddr::from_tcp(local.address().to_string(), local.port());
    auto r = core::Multiaddr::from_tcp(remote.address().to_string(), remote.port());
    if (!l.ok()) co_return l.status();
    if (!r.ok()) co_return r.status();
    bool v6 = parts->is_ip && parts->host.find(':') != std::string::npos;
    std::string host =
        (v6 ? "[" + parts->host + "]" : parts->host) + ":" + std::to_string(parts->port);
    co_return std::unique_ptr<RawConnection>(std::make_unique<WsConnection>(
        std::move(*sock), l->encapsulate(ws_component()), r->encapsulate(ws_component()),
        remote.address(), std::move(host), limits_));
  }

 private:
  WsLimits limits_;
};

}  // namespace

std::shared_ptr<Transport> make_ws_transport(WsLimits limits) {
  return std::make_shared<WsTransport>(limits);
}

}  // namespace idn::p2p
