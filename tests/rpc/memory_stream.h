// An in-memory, connected pair of p2p::ByteStreams on one executor, for protocol tests that
// need no sockets. write() appends to the peer's read buffer; close_write() gives it EOF.
#pragma once

#include <memory>
#include <utility>

#include "p2p/stream.h"

namespace idn::rpc::testing {

class MemoryStream : public p2p::ByteStream {
 public:
  struct Pipe {
    explicit Pipe(p2p::asio::any_io_executor ex) : signal(std::move(ex)) {}
    Bytes data;
    bool eof = false;
    bool reset = false;
    p2p::Signal signal;
  };

  MemoryStream(std::shared_ptr<Pipe> in, std::shared_ptr<Pipe> out)
      : in_(std::move(in)), out_(std::move(out)) {}

  p2p::awaitable<Status> write(ByteView data) override {
    if (out_->reset || in_->reset) co_return Status::io_error("stream reset");
    if (out_->eof) co_return Status::io_error("write after close_write");
    out_->data.insert(out_->data.end(), data.begin(), data.end());
    out_->signal.notify_all();
    co_return Status::ok();
  }
  p2p::awaitable<Status> close_write() override {
    out_->eof = true;
    out_->signal.notify_all();
    co_return Status::ok();
  }
  void reset() override {
    in_->reset = out_->reset = true;
    in_->signal.notify_all();
    out_->signal.notify_all();
  }

 protected:
  p2p::awaitable<Result<size_t>> do_read_some(std::span<uint8_t> buf) override {
    while (in_->data.empty() && !in_->eof && !in_->reset) co_await in_->signal.wait();
    if (in_->reset) co_return Status::io_error("stream reset");
    if (in_->data.empty()) co_return size_t{0};
    size_t n = std::min(buf.size(), in_->data.size());
    std::copy_n(in_->data.begin(), n, buf.begin());
    in_->data.erase(in_->data.begin(), in_->data.begin() + n);
    co_return n;
  }

 private:
  std::shared_ptr<Pipe> in_, out_;
};

inline std::pair<std::shared_ptr<MemoryStream>, std::shared_ptr<MemoryStream>> memory_stream_pair(
    p2p::asio::any_io_executor ex) {
  auto ab = std::make_shared<MemoryStream::Pipe>(ex);
  auto ba = std::make_shared<MemoryStream::Pipe>(ex);
  return {std::make_shared<MemoryStream>(ba, ab), std::make_shared<MemoryStream>(ab, ba)};
}

}  // namespace idn::rpc::testing
