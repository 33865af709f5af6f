// Test harness for p2p: one io_context on a background thread, and run() to execute a
// coroutine on it and wait (with a deadline, never a sleep) for its result.
#pragma once

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <future>
#include <thread>

#include "p2p/host.h"

namespace idn::p2p::testing {

class Loop {
 public:
  Loop() : work_(asio::make_work_guard(ioc_)), thread_([this] { ioc_.run(); }) {}
  ~Loop() {
    work_.reset();
    ioc_.stop();
    thread_.join();
  }
  asio::io_context& ioc() { return ioc_; }
  asio::any_io_executor ex() { return ioc_.get_executor(); }

  // Runs `make()` (returning an awaitable<T>) on the loop and waits up to `timeout`.
  template <class F>
  auto run(F make, std::chrono::seconds timeout = std::chrono::seconds(20)) {
    using T = typename decltype(make())::value_type;
    auto prom = std::make_shared<std::promise<T>>();
    auto fut = prom->get_future();
    asio::co_spawn(
        ioc_,
        [make, prom]() mutable -> awaitable<void> {
          try {
            if constexpr (std::is_void_v<T>) {
              co_await make();
              prom->set_value();
            } else {
              prom->set_value(co_await make());
            }
          } catch (...) {
            prom->set_exception(std::current_exception());
          }
        },
        asio::detached);
    if (fut.wait_for(timeout) != std::future_status::ready) {
      ADD_FAILURE() << "coroutine did not finish within " << timeout.count() << " s";
      std::abort();  // the coroutine still references test state; cannot continue safely
    }
    return fut.get();
  }
  // Runs a plain function on the loop thread.
  template <class F>
  auto call(F f) {
    return run([f]() -> awaitable<decltype(f())> { co_return f(); });
  }

 private:
  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
};

inline identity::KeyPair new_key() {
  return *identity::KeyPair::generate();
}

// Hosts must be created and destroyed on the loop thread.
struct HostDeleter {
  Loop* loop;
  void operator()(Host* h) const {
    loop->call([h] {
      delete h;
      return 0;
    });
  }
};
using HostPtr = std::unique_ptr<Host, HostDeleter>;

inline HostPtr make_host(Loop& loop, HostConfig config = {},
                         std::optional<identity::KeyPair> key = std::nullopt) {
  identity::KeyPair k = key ? *key : new_key();
  Host* h = loop.call([&] { return new Host(loop.ex(), k, config); });
  return HostPtr(h, HostDeleter{&loop});
}

inline core::Multiaddr loopback() {
  return *core::Multiaddr::parse("/ip4/127.0.0.1/tcp/0");
}

}  // namespace idn::p2p::testing
