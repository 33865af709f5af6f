// Bridges callback APIs that complete on another thread (routing/'s DHT thread) into
// coroutines on the node's io thread: `co_await on_io<T>(io, [&](auto done) { api(..., done); })`.
#pragma once

#include <utility>  // Boost 1.74 awaitable.hpp uses std::exchange without including it

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <functional>
#include <memory>

#include "p2p/stream.h"

namespace idn::node {

// Starts the operation with a callback that may run on any thread, once; resumes the awaiting
// coroutine on `io` with the value passed to it.
template <class T, class Start>
p2p::awaitable<T> on_io(boost::asio::any_io_executor io, Start start) {
  return boost::asio::async_initiate<decltype(boost::asio::use_awaitable), void(T)>(
      [io, start = std::move(start)](auto handler) mutable {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        start(std::function<void(T)>([io, h](T value) {
          boost::asio::post(io, [h, v = std::move(value)]() mutable { (*h)(std::move(v)); });
        }));
      },
      boost::asio::use_awaitable);
}

}  // namespace idn::node
