#include "p2p/transport.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace idn::p2p {

namespace {

constexpr auto kUse = asio::use_awaitable;

class TcpConnection final : public RawConnection {
 public:
  TcpConnection(asio::ip::tcp::socket sock, core::Multiaddr local, core::Multiaddr remote,
                asio::ip::address remote_ip)
      : RawConnection(std::move(local), std::move(remote), remote_ip), tcp_(std::move(sock)) {}
  awaitable<Status> write(ByteView data) override { return tcp_.write(data); }
  awaitable<Status> close_write() override { return tcp_.close_write(); }
  void reset() override { tcp_.reset(); }

 protected:
  awaitable<Result<size_t>> do_read_some(std::span<uint8_t> buf) override {
    return tcp_.read_some(buf);
  }

 private:
  TcpStream tcp_;
};

// Accepts TCP connections and hands each to the transport's wrap (see tcp_listen).
class TcpAcceptListener final : public TransportListener {
 public:
  TcpAcceptListener(asio::ip::tcp::acceptor acceptor, core::Multiaddr addr, WrapAcceptedTcp wrap)
      : acceptor_(std::move(acceptor)), addr_(std::move(addr)), wrap_(std::move(wrap)) {}
  const core::Multiaddr& addr() const override { return addr_; }
  void close() override {
    boost::system::error_code ec;
    acceptor_.close(ec);
  }
  bool closed() const override { return !acceptor_.is_open(); }

  awaitable<Result<std::unique_ptr<RawConnection>>> accept() override {
    auto a = co_await tcp_accept(acceptor_, addr_);
    if (!a.ok()) co_return a.status();
    co_return wrap_(std::move(*a));
  }

 private:
  asio::ip::tcp::acceptor acceptor_;
  core::Multiaddr addr_;
  WrapAcceptedTcp wrap_;
};

class TcpTransport final : public Transport {
 public:
  std::string_view name() const override { return "tcp"; }
  bool handles(const core::Multiaddr& addr) const override {
    auto p = tcp_addr_parts(addr);
    return p && p->tail.empty();
  }
  Result<std::unique_ptr<TransportListener>> listen(asio::any_io_executor ex,
                                                    const core::Multiaddr& addr) override {
    if (!handles(addr))
      return Status::invalid_argument("tcp: cannot listen on " + addr.to_string());
    return tcp_listen(
        ex, addr, [](core::Multiaddr bound) { return bound; },
        [](AcceptedTcp a) -> std::unique_ptr<RawConnection> {
          return std::make_unique<TcpConnection>(std::move(a.socket), std::move(a.local),
                                                 std::move(a.remote), a.remote_ip);
        });
  }
  awaitable<Result<std::unique_ptr<RawConnection>>> dial(asio::any_io_executor ex,
                                                         const core::Multiaddr& addr,
                                                         DialOptions options) override {
    auto parts = tcp_addr_parts(addr);
    if (!parts || !parts->tail.empty())
      co_return Status::invalid_argument("tcp: cannot dial " + addr.to_string());
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
    co_return std::unique_ptr<RawConnection>(std::make_unique<TcpConnection>(
        std::move(*sock), std::move(*l), std::move(*r), remote.address()));
  }
};

}  // namespace

std::optional<TcpAddrParts> tcp_addr_parts(const core::Multiaddr& addr) {
  const auto& c = addr.components();
  if (c.size() < 2 || c[1].protocol != core::Protocol::kTcp) return std::nullopt;
  TcpAddrParts out;
  switch (c[0].protocol) {
    case core::Protocol::kIp4:
    case core::Protocol::kIp6:
      out.is_ip = true;
      break;
    case core::Protocol::kDns:
    case core::Protocol::kDns4:
    case core::Protocol::kDns6:
      break;
    default:
      return std::nullopt;
  }
  out.host = c[0].value_string();
  auto port = addr.tcp_port();
  if (!port) return std::nullopt;
  out.port = *port;
  for (size_t i = 2; i < c.size(); ++i) {
    if (!c[i].value.empty()) return std::nullopt;
    out.tail.push_back(c[i].protocol);
  }
  return out;
}

awaitable<Result<asio::ip::tcp::socket>> tcp_connect(asio::any_io_executor ex,
                                                     const core::Multiaddr& addr,
                                                     const TcpAddrParts& parts,
                                                     const DialOptions& options) {
  boost::system::error_code ec;
  asio::ip::tcp::resolver resolver(ex);
  auto endpoints = co_await resolver.async_resolve(parts.host, std::to_string(parts.port),
                                                   asio::redirect_error(kUse, ec));
  if (ec) co_return Status::io_error("dial " + addr.to_string() + ": resolve: " + ec.message());
  asio::ip::tcp::socket sock(ex);
  // The timer closes the socket, which aborts the connect; `armed` keeps a timer whose
  // expiry is already queued from touching the socket after we have moved on.
  struct Deadline {
    bool armed = true, fired = false;
  };
  auto dl = std::make_shared<Deadline>();
  asio::steady_timer timer(ex);
  timer.expires_after(options.timeout);
  timer.async_wait([dl, s = &sock](boost::system::error_code e) {
    if (e || !dl->armed) return;
    dl->fired = true;
    boost::system::error_code ignored;
    s->close(ignored);
  });
  if (options.from) {
    ec = asio::error::host_unreachable;
    const auto want = asio::ip::tcp::endpoint(*options.from, 0).protocol();
    for (const auto& e : endpoints) {
      if (e.endpoint().protocol() != want) continue;
      sock.close(ec);
      sock.open(e.endpoint().protocol(), ec);
      if (!ec) sock.bind(asio::ip::tcp::endpoint(*options.from, 0), ec);
      if (!ec) co_await sock.async_connect(e.endpoint(), asio::redirect_error(kUse, ec));
      if (!ec || dl->fired) break;
    }
  } else {
    co_await asio::async_connect(sock, endpoints, asio::redirect_error(kUse, ec));
  }
  dl->armed = false;
  timer.cancel();
  if (dl->fired) co_return Status::timeout("dial " + addr.to_string() + ": connect timed out");
  if (ec) co_return Status::io_error("dial " + addr.to_string() + ": " + ec.message());
  sock.set_option(asio::ip::tcp::no_delay(true), ec);
  co_return std::move(sock);
}

Result<asio::ip::tcp::acceptor> tcp_bind(asio::any_io_executor ex, const core::Multiaddr& addr) {
  auto ip = addr.ip();
  auto port = addr.tcp_port();
  if (!ip || !port) {
    return Status::invalid_argument("listen needs /ip4|ip6/<addr>/tcp/<port>, got " +
                                    addr.to_string());
  }
  boost::system::error_code ec;
  auto address = asio::ip::make_address(*ip, ec);
  if (ec) return Status::invalid_argument("listen: bad IP address " + *ip);
  asio::ip::tcp::acceptor acceptor(ex);
  asio::ip::tcp::endpoint ep(address, *port);
  acceptor.open(ep.protocol(), ec);
  if (!ec) acceptor.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(ep, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status::io_error("listen on " + addr.to_string() + ": " + ec.message());
  return acceptor;
}

awaitable<Result<AcceptedTcp>> tcp_accept(asio::ip::tcp::acceptor& acceptor,
                                          const core::Multiaddr& addr) {
  while (true) {
    boost::system::error_code ec;
    auto sock = co_await acceptor.async_accept(asio::redirect_error(kUse, ec));
    if (ec == asio::error::operation_aborted || !acceptor.is_open())
      co_return Status::cancelled("listener on " + addr.to_string() + " closed");
    if (ec) co_return Status::io_error("accept on " + addr.to_string() + ": " + ec.message());
    auto remote = sock.remote_endpoint(ec);
    if (ec) continue;  // gone already
    auto local = sock.local_endpoint(ec);
    if (ec) continue;
    // Without it Nagle holds back a small reply (a yamux frame written while an earlier one
    // is unacknowledged) until the peer's delayed ACK.
    sock.set_option(asio::ip::tcp::no_delay(true), ec);
    auto l = core::Multiaddr::from_tcp(local.address().to_string(), local.port());
    auto r = core::Multiaddr::from_tcp(remote.address().to_string(), remote.port());
    if (!l.ok() || !r.ok()) continue;
    co_return AcceptedTcp{std::move(sock), std::move(*l), std::move(*r), remote.address()};
  }
}

Result<std::unique_ptr<TransportListener>> tcp_listen(
    asio::any_io_executor ex, const core::Multiaddr& addr,
    std::function<core::Multiaddr(core::Multiaddr)> advertise, WrapAcceptedTcp wrap) {
  IDN_ASSIGN_OR_RETURN(auto acceptor, tcp_bind(ex, addr));
  boost::system::error_code ec;
  auto bound = acceptor.local_endpoint(ec);
  if (ec) return Status::io_error("listen: local_endpoint: " + ec.message());
  IDN_ASSIGN_OR_RETURN(auto ma,
                       core::Multiaddr::from_tcp(bound.address().to_string(), bound.port()));
  return std::unique_ptr<TransportListener>(std::make_unique<TcpAcceptListener>(
      std::move(acceptor), advertise(std::move(ma)), std::move(wrap)));
}

std::shared_ptr<Transport> make_tcp_transport() {
  return std::make_shared<TcpTransport>();
}

}  // namespace idn::p2p
