// Client sessions for application threads: the io_context runs on another thread (a Node's),
// and these calls post the work onto it and wait for the result. Never call them on the io
// thread itself: they would wait for work that thread can no longer run.
//
//   client::BlockingStream s = client::infer_stream_blocking(session, input);
//   for (const client::Event& e : s) show(e.predicted, e.confidence, e.peer);
//   if (!s.summary().status.is_ok()) ...
#pragma once

#include <iterator>
#include <memory>
#include <optional>

#include "client/session.h"

namespace idn::client {

namespace detail {
struct BlockingChannel;
}

class BlockingStream {
 public:
  ~BlockingStream();
  BlockingStream(BlockingStream&&) noexcept;
  BlockingStream& operator=(BlockingStream&&) = delete;

  // The next improving answer, or nullopt when the request is complete. Bounded by the
  // request's deadline; if the io thread does not respond well past it, returns nullopt and
  // summary().status says so.
  std::optional<Event> next();
  // Stops the request (Cancel goes out on the io thread); next() returns nullopt from now on.
  void finish();
  // Waits until the request is complete and returns its summary.
  Summary summary() const;

  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Event;
    using difference_type = std::ptrdiff_t;
    using pointer = const Event*;
    using reference = const Event&;
    iterator() = default;
    explicit iterator(BlockingStream* s) : s_(s) { ++*this; }
    reference operator*() const { return *current_; }
    pointer operator->() const { return &*current_; }
    iterator& operator++() {
      current_ = s_->next();
      if (!current_) s_ = nullptr;
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& a, const iterator& b) { return a.s_ == b.s_; }

   private:
    BlockingStream* s_ = nullptr;
    std::optional<Event> current_;
  };
  iterator begin() { return iterator(this); }
  iterator end() { return iterator(); }

 private:
  friend BlockingStream infer_stream_blocking(Session& session, core::Tensor input);
  BlockingStream(boost::asio::any_io_executor io, std::shared_ptr<detail::BlockingChannel> ch,
                 std::chrono::milliseconds wait_limit);
  boost::asio::any_io_executor io_;
  // Answers cross from the io thread to this one through the channel: one wake-up per
  // answer (and one for completion), instead of a round trip to the io thread per call.
  std::shared_ptr<detail::BlockingChannel> ch_;
  std::chrono::milliseconds wait_limit_;
};

// Starts a request from an application thread.
BlockingStream infer_stream_blocking(Session& session, core::Tensor input);
// Runs a request to completion from an application thread; as Session::infer_once.
Result<Event> infer_blocking(Session& session, core::Tensor input);

}  // namespace idn::client
