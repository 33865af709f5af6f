#include "node/model_host.h"

#include "node/on_io.h"
#include "routing/dht_routing.h"
#include "serve/infer_server.h"

namespace idn::node {

using p2p::awaitable;

DhtServiceRouting::DhtServiceRouting(p2p::asio::any_io_executor io, routing::DhtRouting& dht)
    : io_(std::move(io)), dht_(dht) {}

awaitable<Status> DhtServiceRouting::provide(core::Multihash key) {
  co_return co_await on_io<Status>(
      io_, [&](std::function<void(Status)> done) { dht_.provide(key, std::move(done)); });
}

awaitable<Status> DhtServiceRouting::withdraw(core::Multihash key) {
  co_return co_await on_io<Status>(
      io_, [&](std::function<void(Status)> done) { dht_.withdraw(key, std::move(done)); });
}

awaitable<Result<std::vector<routing::PeerInfo>>> DhtServiceRouting::find_providers(
    core::Multihash key, size_t n) {
  using Found = Result<std::vector<routing::PeerInfo>>;
  co_return co_await on_io<Found>(
      io_, [&](std::function<void(Found)> done) { dht_.find_providers(key, n, std::move(done)); });
}

bool ServerExecutor::loaded(const core::Multihash& id) const {
  return server_.hosts(id);
}

Status ServerExecutor::load(const core::Multihash& id, const ise::ServiceDescriptor& d,
                            const std::filesystem::path& dir) {
  return server_.add_service(id, d, dir);
}

void ServerExecutor::unload(const core::Multihash& id) {
  server_.remove_service(id);
}

}  // namespace idn::node
