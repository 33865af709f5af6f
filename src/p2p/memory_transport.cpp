#include "p2p/memory_transport.h"

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstring>
#include <deque>

namespace idn::p2p {

namespace {

constexpr auto kUse = asio::use_awaitable;
// Connections dialled but not yet accepted, per listener (a kernel's listen backlog).
constexpr size_t kMaxBacklog = 1024;

// One coroutine waiting, on its own executor, for another thread to change some state guarded
// by the owner's mutex.
struct Waiter {
  asio::steady_timer* timer = nullptr;
  asio::any_io_executor ex;
};

// Wakes the owner's waiter, if any. Call with owner->mu held; `owner` stays alive until the
// wake-up has run on the waiter's executor. A wake-up that finds another wait in place only
// makes that waiter re-check its state.
template <class Owner>
void wake(const std::shared_ptr<Owner>& owner) {
  asio::steady_timer* t = owner->waiter.timer;
  if (!t) return;
  asio::post(owner->waiter.ex, [owner, t] {
    std::lock_guard lk(owner->mu);
    if (owner->waiter.timer == t) t->cancel();
  });
}

// Waits until woken. `arm` ran with the lock held and registered `timer`.
template <class Owner>
awaitable<void> wait_woken(const std::shared_ptr<Owner>& owner, asio::steady_timer& timer) {
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(kUse, ec));
  std::lock_guard lk(owner->mu);
  if (owner->waiter.timer == &timer) owner->waiter.timer = nullptr;
}

// One direction of a connection.
struct Pipe {
  std::mutex mu;
  Bytes data;
  size_t pos = 0;
  bool closed = false;  // the writer ended its side
  bool broken = false;  // either end reset the connection
  Waiter waiter;        // the reader
};

class MemoryConnection final : public RawConnection {
 public:
  MemoryConnection(std::shared_ptr<Pipe> in, std::shared_ptr<Pipe> out, core::Multiaddr local,
                   core::Multiaddr remote, asio::ip::address remote_ip)
      : RawConnection(std::move(local), std::move(remote), remote_ip),
        in_(std::move(in)),
        out_(std::move(out)) {}
  ~MemoryConnection() override { reset(); }

  awaitable<Status> write(ByteView data) override {
    std::lock_guard lk(out_->mu);
    if (out_->broken) co_return Status::io_error("memory connection reset");
    if (out_->closed) co_return Status::io_error("memory connection: write after close_write");
    if (out_->pos > 0 && out_->pos * 2 >= out_->data.size()) {
      out_->data.erase(out_->data.begin(), out_->data.begin() + std::ptrdiff_t(out_->pos));
      out_->pos = 0;
    }
    out_->data.insert(out_->data.end(), data.begin(), data.end());
    wake(out_);
    co_return Status::ok();
  }

  awaitable<Status> close_write() override {
    std::lock_guard lk(out_->mu);
    if (out_->broken) co_return Status::io_error("memory connection reset");
    out_->closed = true;
    wake(out_);
    co_return Status::ok();
  }

  void reset() override {
    for (const auto& p : {in_, out_}) {
      std::lock_guard lk(p->mu);
      p->broken = true;
      wake(p);
    }
  }

 protected:
  awaitable<Result<size_t>> do_read_some(std::span<uint8_t> buf) override {
    asio::steady_timer timer(co_await asio::this_coro::executor, SteadyTime::max());
    while (true) {
      {
        std::lock_guard lk(in_->mu);
        if (in_->pos < in_->data.size()) {
          size_t n = std::min(buf.size(), in_->data.size() - in_->pos);
          std::memcpy(buf.data(), in_->data.data() + in_->pos, n);
          in_->pos += n;
          if (in_->pos == in_->data.size()) {
            in_->data.clear();
            in_->pos = 0;
          }
          co_return n;
        }
        if (in_->broken) co_return Status::io_error("memory connection reset");
        if (in_->closed) co_return size_t{0};
        in_->waiter = {&timer, timer.get_executor()};
      }
      co_await wait_woken(in_, timer);
      timer.expires_at(SteadyTime::max());
    }
  }

 private:
  std::shared_ptr<Pipe> in_, out_;
};

}  // namespace

struct MemoryNetwork::ListenerState {
  std::mutex mu;
  core::Multiaddr addr;
  MemoryNetwork::Key key;  // where the network's map has it
  std::deque<std::unique_ptr<RawConnection>> backlog;
  bool closed = false;
  Waiter waiter;  // accept()
};

size_t MemoryNetwork::num_listeners() const {
  std::lock_guard lk(mu_);
  size_t n = 0;
  for (const auto& [k, l] : listeners_) n += !l.expired();
  return n;
}

class MemoryListener final : public TransportListener {
 public:
  MemoryListener(std::shared_ptr<MemoryNetwork> net,
                 std::shared_ptr<MemoryNetwork::ListenerState> state)
      : net_(std::move(net)), state_(std::move(state)) {}
  ~MemoryListener() override { close(); }
  const core::Multiaddr& addr() const override { return state_->addr; }
  bool closed() const override {
    std::lock_guard lk(state_->mu);
    return state_->closed;
  }
  void close() override {
    std::deque<std::unique_ptr<RawConnection>> dropped;  // their dialers read a reset
    {
      std::lock_guard lk(state_->mu);
      state_->closed = true;
      dropped.swap(state_->backlog);
      wake(state_);
    }
    std::lock_guard lk(net_->mu_);
    auto it = net_->listeners_.find(state_->key);
    if (it != net_->listeners_.end() && it->second.lock() == state_) net_->listeners_.erase(it);
  }
  awaitable<Result<std::unique_ptr<RawConnection>>> accept() override {
    asio::steady_timer timer(co_await asio::this_coro::executor, SteadyTime::max());
    while (true) {
      {
        std::lock_guard lk(state_->mu);
        if (state_->closed)
          co_return Status::cancelled("listener on " + state_->addr.to_string() + " closed");
        if (!state_->backlog.empty()) {
          auto c = std::move(state_->backlog.front());
          state_->backlog.pop_front();
          co_return std::move(c);
        }
        state_->waiter = {&timer, timer.get_executor()};
      }
      co_await wait_woken(state_, timer);
      timer.expires_at(SteadyTime::max());
    }
  }

 private:
  std::shared_ptr<MemoryNetwork> net_;  // keeps the network's map alive as long as we are in it
  std::shared_ptr<MemoryNetwork::ListenerState> state_;
};

namespace {

Result<std::pair<asio::ip::address, uint16_t>> memory_endpoint(const core::Multiaddr& addr) {
  auto parts = tcp_addr_parts(addr);
  if (!parts || !parts->is_ip || !parts->tail.empty())
    return Status::invalid_argument("memory transport: not /ip4|ip6/<addr>/tcp/<port>: " +
                                    addr.to_string());
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(parts->host, ec);
  if (ec) return Status::invalid_argument("memory transport: bad IP address " + parts->host);
  return std::make_pair(ip, parts->port);
}

}  // namespace

class MemoryTransport final : public Transport {
 public:
  explicit MemoryTransport(std::shared_ptr<MemoryNetwork> net) : net_(std::move(net)) {}
  std::string_view name() const override { return "memory"; }
  bool handles(const core::Multiaddr& addr) const override { return memory_endpoint(addr).ok(); }

  Result<std::unique_ptr<TransportListener>> listen(asio::any_io_executor,
                                                    const core::Multiaddr& addr) override {
    IDN_ASSIGN_OR_RETURN(auto ep, memory_endpoint(addr));
    auto state = std::make_shared<MemoryNetwork::ListenerState>();
    std::lock_guard lk(net_->mu_);
    uint16_t port = ep.second;
    auto taken = [&](uint16_t p) {
      auto it = net_->listeners_.find({ep.first.to_string(), p});
      return it != net_->listeners_.end() && !it->second.expired();
    };
    if (port == 0) {
      for (size_t tries = 0; tries < 65536 && (port == 0 || taken(port)); ++tries) {
        port = net_->next_port_++;
        if (net_->next_port_ == 0) net_->next_port_ = 1024;
      }
    }
    if (port == 0 || taken(port))
      return Status::io_error("listen on " + addr.to_string() + ": address in use");
    IDN_ASSIGN_OR_RETURN(state->addr, core::Multiaddr::from_tcp(ep.first.to_string(), port));
    state->key = {ep.first.to_string(), port};
    net_->listeners_[state->key] = state;
    return std::unique_ptr<TransportListener>(std::make_unique<MemoryListener>(net_, state));
  }

  awaitable<Result<std::unique_ptr<RawConnection>>> dial(asio::any_io_executor,
                                                         const core::Multiaddr& addr,
                                                         DialOptions options) override {
    auto ep = memory_endpoint(addr);
    if (!ep.ok()) co_return ep.status();
    const auto& [ip, port] = *ep;
    std::shared_ptr<MemoryNetwork::ListenerState> l;
    asio::ip::address from = options.from ? *options.from
                             : ip.is_v6() ? asio::ip::address(asio::ip::address_v6::loopback())
                                          : asio::ip::address(asio::ip::address_v4::loopback());
    uint16_t from_port;
    {
      std::lock_guard lk(net_->mu_);
      for (const auto& host : {ip.to_string(), std::string(ip.is_v6() ? "::" : "0.0.0.0")}) {
        auto it = net_->listeners_.find({host, port});
        if (it != net_->listeners_.end() && (l = it->second.lock())) break;
      }
      from_port = net_->next_port_++;
      if (net_->next_port_ == 0) net_->next_port_ = 1024;
    }
    if (!l) co_return Status::io_error("dial " + addr.to_string() + ": connection refused");
    auto there = core::Multiaddr::from_tcp(ip.to_string(), port);
    auto here = core::Multiaddr::from_tcp(from.to_string(), from_port);
    if (!there.ok()) co_return there.status();
    if (!here.ok()) co_return here.status();
    auto up = std::make_shared<Pipe>(), down = std::make_shared<Pipe>();
    auto theirs = std::make_unique<MemoryConnection>(up, down, *there, *here, from);
    {
      std::lock_guard lk(l->mu);
      if (l->closed)
        co_return Status::io_error("dial " + addr.to_string() + ": connection refused");
      if (l->backlog.size() >= kMaxBacklog)
        co_return Status::io_error("dial " + addr.to_string() + ": listen backlog full");
      l->backlog.push_back(std::move(theirs));
      wake(l);
    }
    co_return std::unique_ptr<RawConnection>(
        std::make_unique<MemoryConnection>(down, up, std::move(*here), std::move(*there), ip));
  }

 private:
  std::shared_ptr<MemoryNetwork> net_;
};

std::shared_ptr<Transport> make_memory_transport(std::shared_ptr<MemoryNetwork> net) {
  return std::make_shared<MemoryTransport>(std::move(net));
}

}  // namespace idn::p2p
