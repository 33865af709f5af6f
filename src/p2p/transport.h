// Transports: how a Host gets byte streams to and from other hosts, behind one interface. A
// transport listens on a multiaddr and accepts raw connections, dials a multiaddr, and says
// which multiaddrs it handles; the Host runs the same upgrade (multistream "/noise" -> Noise XX
// -> "/yamux/1.0.0") over whatever byte stream it returns. Three implementations:
//   TCP        /ip4|ip6|dns*/<host>/tcp/<port>
//   WebSocket  /ip4|ip6|dns*/<host>/tcp/<port>/ws   (websocket_transport.h; what browsers dial)
//   memory     virtual /ip4|ip6/<addr>/tcp/<port> inside a MemoryNetwork (memory_transport.h)
// Threading: listeners and connections live on the executor they were made for (the Host's);
// call them from its thread. A Transport object itself holds no per-connection state and may
// be shared by hosts on different executors.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/multiaddr.h"
#include "p2p/stream.h"

namespace idn::p2p {

// A connection a transport dialled or accepted, before security: a byte stream plus where it
// leads. Addresses are the transport's form (/ip4/1.2.3.4/tcp/5/ws for a WebSocket).
class RawConnection : public ByteStream {
 public:
  RawConnection(core::Multiaddr local, core::Multiaddr remote, asio::ip::address remote_ip)
      : local_(std::move(local)), remote_(std::move(remote)), remote_ip_(remote_ip) {}

  const core::Multiaddr& local_addr() const { return local_; }
  const core::Multiaddr& remote_addr() const { return remote_; }
  // The remote's IP address, which per-address inbound limits count against.
  const asio::ip::address& remote_ip() const { return remote_ip_; }

  // The transport's own opening exchange (a WebSocket's HTTP upgrade), which the Host runs
  // inside the handshake deadline and budget, like the security handshake; reset() aborts it.
  // Nothing to do for TCP and memory. Errors: PeerMisbehaved (a bad upgrade), IOError.
  virtual awaitable<Status> open() { co_return Status::ok(); }

 private:
  core::Multiaddr local_, remote_;
  asio::ip::address remote_ip_;
};

class TransportListener {
 public:
  virtual ~TransportListener() = default;
  // The bound address (a real port for /tcp/0), without /p2p.
  virtual const core::Multiaddr& addr() const = 0;
  // The next inbound connection, not yet opened. Cancelled once close() was called; other
  // errors (out of file descriptors) are transient.
  virtual awaitable<Result<std::unique_ptr<RawConnection>>> accept() = 0;
  virtual void close() = 0;
  virtual bool closed() const = 0;
};

struct DialOptions {
  std::chrono::milliseconds timeout{10000};  // to connect (the upgrade has its own deadline)
  std::optional<asio::ip::address> from;     // local address to dial from (HostConfig::dial_from)
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual std::string_view name() const = 0;
  // Whether this transport listens on and dials `addr` (given without a trailing /p2p).
  virtual bool handles(const core::Multiaddr& addr) const = 0;
  // Binds `addr` (port 0: any). Errors: InvalidArgument (not handled), IOError.
  virtual Result<std::unique_ptr<TransportListener>> listen(asio::any_io_executor ex,
                                                            const core::Multiaddr& addr) = 0;
  // Connects to `addr`; the connection is not yet opened. Errors: IOError, Timeout.
  virtual awaitable<Result<std::unique_ptr<RawConnection>>> dial(asio::any_io_executor ex,
                                                                 const core::Multiaddr& addr,
                                                                 DialOptions options) = 0;
};

// /ip4|ip6|dns*/<host>/tcp/<port>, nothing after the port.
std::shared_ptr<Transport> make_tcp_transport();

// The parts of a TCP-based multiaddr: host (IP or DNS name), port, and what follows the port.
struct TcpAddrParts {
  std::string host;
  uint16_t port = 0;
  bool is_ip = false;                // host is an ip4/ip6 address (else a DNS name)
  std::vector<core::Protocol> tail;  // protocols after /tcp/<port> (e.g. kWs)
};
// nullopt unless `addr` is <ip4|ip6|dns|dns4|dns6>/<host>/tcp/<port> followed by zero or more
// value-less components.
std::optional<TcpAddrParts> tcp_addr_parts(const core::Multiaddr& addr);

// Resolves and connects a TCP socket within options.timeout (from options.from when set), with
// Nagle off. Shared by the TCP and WebSocket transports. Errors: IOError, Timeout.
awaitable<Result<asio::ip::tcp::socket>> tcp_connect(asio::any_io_executor ex,
                                                     const core::Multiaddr& addr,
                                                     const TcpAddrParts& parts,
                                                     const DialOptions& options);

// A TCP acceptor bound to `addr`'s IP and port, listening. Errors: InvalidArgument, IOError.
Result<asio::ip::tcp::acceptor> tcp_bind(asio::any_io_executor ex, const core::Multiaddr& addr);

struct AcceptedTcp {
  asio::ip::tcp::socket socket;
  core::Multiaddr local, remote;  // /ip4|ip6/<addr>/tcp/<port>
  asio::ip::address remote_ip;
};
// The next connection on `acceptor` (`addr`: its bound address, for errors), Nagle off;
// connections already gone are skipped. Cancelled once the acceptor is closed.
awaitable<Result<AcceptedTcp>> tcp_accept(asio::ip::tcp::acceptor& acceptor,
                                          const core::Multiaddr& addr);

// A listener on `addr`'s IP and port for a transport over TCP: it binds, reports the bound
// address passed through `advertise` (the WebSocket transport appends /ws), and hands each
// accepted connection to `wrap` (TCP as is; WebSocket with its upgrade to come). Shared by the
// TCP and WebSocket transports. Errors: InvalidArgument, IOError.
using WrapAcceptedTcp = std::function<std::unique_ptr<RawConnection>(AcceptedTcp)>;
Result<std::unique_ptr<TransportListener>> tcp_listen(
    asio::any_io_executor ex, const core::Multiaddr& addr,
    std::function<core::Multiaddr(core::Multiaddr)> advertise, WrapAcceptedTcp wrap);

}  // namespace idn::p2p
