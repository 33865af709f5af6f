#include "routing/routing.h"

#include <future>
#include <memory>

namespace idn::routing {
namespace {

template <class T, class Start>
Result<T> wait_for(Start start, std::chrono::milliseconds timeout, const char* what) {
  auto p = std::make_shared<std::promise<Result<T>>>();
  auto once = std::make_shared<std::once_flag>();
  auto fut = p->get_future();
  start([p, once](Result<T> r) { std::call_once(*once, [&] { p->set_value(std::move(r)); }); });
  if (fut.wait_for(timeout) != std::future_status::ready)
    return Status::timeout(std::string(what) + " did not complete within " +
                           std::to_string(timeout.count()) + " ms");
  return fut.get();
}

Status wait_status(std::function<void(Routing::DoneCallback)> start,
                   std::chrono::milliseconds timeout, const char* what) {
  auto r = wait_for<bool>(
      [&](std::function<void(Result<bool>)> cb) {
        start([cb](Status s) {
          if (s.is_ok())
            cb(true);
          else
            cb(std::move(s));
        });
      },
      timeout, what);
  return r.status();
}

}  // namespace

Result<PeerInfo> find_peer_sync(Routing& r, const identity::PeerId& id,
                                std::chrono::milliseconds timeout) {
  return wait_for<PeerInfo>([&](auto cb) { r.find_peer(id, cb); }, timeout, "findPeer");
}

Status provide_sync(Routing& r, const core::Multihash& key, std::chrono::milliseconds timeout) {
  return wait_status([&](auto cb) { r.provide(key, cb); }, timeout, "provide");
}

Result<std::vector<PeerInfo>> find_providers_sync(Routing& r, const core::Multihash& key, size_t n,
                                                  std::chrono::milliseconds timeout) {
  return wait_for<std::vector<PeerInfo>>([&](auto cb) { r.find_providers(key, n, cb); }, timeout,
                                         "findProviders");
}

Result<Bytes> get_value_sync(Routing& r, const core::Multihash& key,
                             std::chrono::milliseconds timeout) {
  return wait_for<Bytes>([&](auto cb) { r.get_value(key, cb); }, timeout, "getValue");
}

Status set_value_sync(Routing& r, const core::Multihash& key, ByteView value,
                      std::chrono::milliseconds timeout) {
  Bytes v(value.begin(), value.end());
  return wait_status([&](auto cb) { r.set_value(key, v, cb); }, timeout, "setValue");
}

}  // namespace idn::routing
