#include "node/node.h"

#include <pthread.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <csignal>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <unistd.h>

#include "identity/keystore.h"
#include "node/challenger.h"
#include "node/gateway.h"
#include "node/web_page.h"
#include "routing/dht_routing.h"
#include "serve/infer_server.h"
#include "store/bitswap.h"
#include "store/blockstore.h"

namespace idn::node {

namespace asio = boost::asio;
using p2p::awaitable;

p2p::HostConfig host_config(const LimitsConfig& limits) {
  p2p::HostConfig hc;
  if (limits.max_connections) hc.max_connections = *limits.max_connections;
  if (limits.max_streams_per_connection) hc.yamux.max_streams = *limits.max_streams_per_connection;
  if (limits.handshake_timeout) hc.handshake_timeout = *limits.handshake_timeout;
  auto& hs = hc.inbound_handshakes;
  if (limits.max_pending_handshakes) hs.max_pending = *limits.max_pending_handshakes;
  if (limits.max_pending_handshakes_per_address)
    hs.max_pending_per_address = *limits.max_pending_handshakes_per_address;
  if (limits.handshake_evictable_after) hs.evictable_after = *limits.handshake_evictable_after;
  if (limits.handshake_silent_evictable_after)
    hs.silent_evictable_after = *limits.handshake_silent_evictable_after;
  if (limits.idle_timeout) hc.idle_timeout = *limits.idle_timeout;
  if (limits.dial_timeout) hc.dial_timeout = *limits.dial_timeout;
  return hc;
}

namespace {

rpc::IoLimits limited(rpc::IoLimits l, const LimitsConfig& limits) {
  if (limits.max_message_bytes) {
    l.max_message_bytes = std::min(l.max_message_bytes, *limits.max_message_bytes);
  }
  return l;
}

// The addresses worth publishing in the DHT: a wildcard listen address (0.0.0.0) stands for
// every IPv4 interface, so it is replaced by their addresses (loopback last).
std::vector<core::Multiaddr> publishable(const std::vector<core::Multiaddr>& addrs) {
  std::vector<core::Multiaddr> out;
  std::vector<std::string> ips;
  for (const auto& a : addrs) {
    auto ip = a.ip();
    if (!ip || *ip != "0.0.0.0") {
      out.push_back(a);
      continue;
    }
    if (ips.empty()) {
      ifaddrs* list = nullptr;
      if (getifaddrs(&list) == 0) {
        std::string loopback;
        for (ifaddrs* i = list; i; i = i->ifa_next) {
          if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
          char buf[INET_ADDRSTRLEN];
          auto* sin = reinterpret_cast<sockaddr_in*>(i->ifa_addr);
          if (!inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf)) continue;
          if (std::string_view(buf).starts_with("127.")) {
            loopback = buf;
          } else {
            ips.emplace_back(buf);
          }
        }
        if (!loopback.empty()) ips.push_back(loopback);
        freeifaddrs(list);
      }
    }
    std::string text = a.to_string();
    for (const auto& i : ips) {
      auto m =
          core::Multiaddr::parse("/ip4/" + i + text.substr(std::string("/ip4/0.0.0.0").size()));
      if (m.ok()) out.push_back(*m);
    }
  }
  return out;
}

rpc::IoLimits infer_limits(const LimitsConfig& limits) {
  rpc::IoLimits l = rpc::infer_io_limits();
  // The configured maximum applies to tensors, which may also be raised above the default.
  if (limits.max_message_bytes) l.max_message_bytes = *limits.max_message_bytes;
  return l;
}

// What ise::derive_k works with when [ise] k = 0.
ise::Capacity ise_capacity(const Config& c) {
  ise::Capacity cap;
  cap.cores = std::max<size_t>(1, std::thread::hardware_concurrency());
  cap.workers = std::max<size_t>(1, c.serve.workers);
  if (c.ise.memory_budget_mb > 0) {
    cap.memory_bytes = c.ise.memory_budget_mb * 1024 * 1024;
  } else {
    long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
    double physical = pages > 0 && page > 0 ? static_cast<double>(pages) * page : 0;
    cap.memory_bytes = static_cast<uint64_t>(physical * kDefaultMemoryShare);
  }
  return cap;
}

}  // namespace

Node::Node(Config config, identity::KeyPair key, bool ephemeral)
    : config_(std::move(config)),
      ephemeral_(ephemeral),
      host_(std::make_unique<p2p::Host>(io_.get_executor(), std::move(key),
                                        host_config(config_.limits))),
      dispatcher_(std::make_unique<rpc::Dispatcher>(io_.get_executor(),
                                                    limited(rpc::swap_io_limits(), config_.limits),
                                                    infer_limits(config_.limits))),
      wake_(std::make_unique<p2p::Signal>(io_.get_executor())),
      signals_(io_),
      started_(std::chrono::steady_clock::now()) {}

Node::~Node() {
  // Handlers and loops hold pointers into this object: stop them before members go away.
  if (!stopping_) do_shutdown();
  io_.restart();
  io_.poll();
  if (routing_) routing_->shutdown(false);
  kad_.reset();
  relay_.reset();
  ise_.reset();
  models_.reset();
  executor_.reset();
  service_routing_.reset();
  if (server_) server_->stop();
  bitswap_.reset();
  server_.reset();
  swap_.reset();
  store_.reset();
  if (temp_data_dir_) {
    std::error_code ec;
    std::filesystem::remove_all(data_dir_, ec);
  }
}

std::shared_ptr<client::Session> Node::session(const core::Multihash& service,
                                               client::SessionOptions opts) {
  if (!opts.output_shape) {
    if (auto d = models_->local_descriptor(service); d.ok() && !d->outputs.empty())
      opts.output_shape = d->outputs.front().shape;
  }
  if (ise_) ise_->used(service);
  auto cache = provider_cache(service);
  client::ProviderSource source = [this, cache](const core::Multihash& s, size_t n,
                                                const std::vector<identity::PeerId>& exclude) {
    return cached_providers(cache, s, n, exclude);
  };
  std::shared_ptr<Challenger> challenger;
  if (swap_) {
    if (!opts.selector) opts.selector = swap_;
    if (!opts.observer) opts.observer = swap_;
    // Challenges (§7.5.3.3) need the verdicts to reach ComputeSwap: only with its observer.
    const swap::Config& sc = swap_->swap().config();
    if (opts.observer == swap_ && !opts.on_complete &&
        (sc.challenge_rate > 0 || sc.probation_challenges > 0)) {
      auto rng = std::make_shared<std::mt19937_64>(std::random_device{}());
      challenger = std::make_shared<Challenger>(
          swap_,
          [this, service, rule = opts.exit_rule] { return local_answer(*this, service, rule); },
          [rng] { return std::uniform_real_distribution<double>(0.0, 1.0)(*rng); });
      // The session holds the challenger, the challenger only a weak reference back.
      opts.on_complete = [challenger](const core::Tensor& input, const client::Summary& s) {
        challenger->on_complete(input, s);
      };
    }
  }
  auto session = std::make_shared<client::Session>(io_.get_executor(), *host_, std::move(source),
                                                   service, std::move(opts), in_flight_);
  if (challenger) challenger->bind(session);
  return session;
}

std::shared_ptr<client::EnsembleSession> Node::ensemble(std::vector<core::Multihash> members,
                                                        client::SessionOptions member,
                                                        client::EnsembleOptions options,
                                                        client::EnsembleExit exit) {
  member.fanout = 1;  // each model once (Fig. 5.5); a failed provider is replaced in its member
  std::vector<std::shared_ptr<client::Session>> sessions;
  for (const auto& m : members) sessions.push_back(session(m, member));
  return std::make_shared<client::EnsembleSession>(io_.get_executor(), std::move(sessions), options,
                                                   exit);
}

awaitable<Result<InitOutcome>> Node::init_model(core::Multihash service, InitOptions options) {
  if (!ise_) co_return Status::unavailable("initModel on peers needs ComputeSwap ([swap] enabled)");
  if (options.npeers == 0) co_return Status::invalid_argument("npeers must be at least 1");
  co_return co_await ise_->init_peers(std::move(service), options.npeers, options.deadline,
                                      std::move(options.descriptor));
}

std::shared_ptr<Node::ProviderCache> Node::provider_cache(const core::Multihash& service) {
  auto& c = provider_caches_[service];
  if (!c) c = std::make_shared<ProviderCache>(io_.get_executor());
  return c;
}

awaitable<Result<std::vector<identity::PeerId>>> Node::cached_providers(
    std::shared_ptr<ProviderCache> cache, core::Multihash service, size_t n,
    std::vector<identity::PeerId> exclude) {
  auto excluded = [&](const identity::PeerId& p) {
    return std::find(exclude.begin(), exclude.end(), p) != exclude.end();
  };
  if (ise_) ise_->used(service);  // each request keeps the service on our need list
  std::vector<identity::PeerId> out;
  auto add = [&](const identity::PeerId& p) {
    if (out.size() < n && !excluded(p) && std::find(out.begin(), out.end(), p) == out.end())
      out.push_back(p);
  };
  auto add_usable = [&] {
    for (const auto& p : cache->peers)
      if (host_->is_connected(p)) add(p);
  };
  auto now = std::chrono::steady_clock::now();
  const bool fresh = now < cache->expires;
  if (fresh) add_usable();
  if (out.size() >= n) co_return out;
  // Connected peers whose have list names the service need no DHT lookup (a lookup costs
  // more than the inference, and a DHT still settling after a peer restarted can take longer
  // than a request's deadline).
  if (swap_) {
    for (const auto& p : swap_->peers_hosting(service)) add(p);
  }
  // Peers that announced the service through our relay are connected to us already.
  for (const auto& [peer, services] : relayed_services_)
    if (std::find(services.begin(), services.end(), service) != services.end() &&
        host_->is_connected(peer))
      add(peer);
  if (!out.empty()) {
    // The cache is refreshed beside this request, which need not wait for the DHT.
    if (!fresh && !cache->looking_up) {
      asio::co_spawn(
          io_,
          [this, cache, service]() -> awaitable<void> {
            (void)co_await look_up_providers(cache, service, kProvidersCached);
          },
          asio::detached);
    }
    co_return out;
  }
  if (fresh) {
    // Every fresh cached provider was already tried by this request: the DHT would name the
    // same peers again, so say there is nobody new.
    bool untried = std::any_of(cache->peers.begin(), cache->peers.end(),
                               [&](const auto& p) { return !excluded(p); });
    if (!untried)
      co_return Status::not_found("no other provider of " + ise::service_id_text(service) +
                                  " is known");
  }
  if (cache->looking_up) {
    // Another request's lookup is under way: take its answer instead of asking again.
    while (cache->looking_up) co_await cache->looked_up.wait();
    if (!cache->error.is_ok()) co_return cache->error;
  } else {
    // Ask for more than this request needs, so later requests and reroutes hit the cache.
    auto found = co_await look_up_providers(cache, service, std::max(n, kProvidersCached));
    if (!found.ok()) co_return found.status();
  }
  add_usable();
  if (out.empty())
    co_return Status::not_found("no provider of " + ise::service_id_text(service) +
                                " is left to try");
  co_return out;
}

awaitable<Result<std::vector<identity::PeerId>>> Node::look_up_providers(
    std::shared_ptr<ProviderCache> cache, core::Multihash service, size_t n) {
  auto started = std::chrono::steady_clock::now();
  cache->looking_up = true;
  auto found = co_await models_->providers(service, n, {});
  auto took = std::chrono::steady_clock::now() - started;
  if (took > kSlowProviderLookup) {
    spdlog::warn("finding providers of {} took {} ms ({})", ise::service_id_text(service),
                 std::chrono::duration_cast<std::chrono::milliseconds>(took).count(),
                 found.ok() ? fmt::format("{} found", found->size()) : found.status().to_string());
  }
  if (found.ok()) {
    cache->peers = *found;
    cache->expires = started + kProviderCacheTtl;
  }
  // The requests waiting for this lookup read the cache (or its error) when they wake.
  cache->error = found.ok() ? Status::ok() : found.status();
  cache->looking_up = false;
  cache->looked_up.notify_all();
  co_return found;
}

std::string Node::dht_endpoint() const {
  return routing_ ? routing_->endpoint() : std::string();
}

Result<std::unique_ptr<Node>> Node::create(Config config, std::optional<identity::KeyPair> key) {
  bool ephemeral = false;
  if (!key) {
    if (config.identity_file) {
      auto pass = identity::resolve_passphrase(config.passphrase_file.value_or(""), true);
      if (!pass.ok()) return pass.status().with_context("identity passphrase");
      std::optional<std::string_view> pv;
      if (*pass) pv = **pass;
      auto k = identity::load_key(*config.identity_file, pv);
      if (!k.ok()) return k.status().with_context("node identity");
      key = std::move(*k);
    } else {
      auto k = identity::KeyPair::generate();
      if (!k.ok()) return k.status().with_context("ephemeral identity");
      key = std::move(*k);
      ephemeral = true;
    }
  }
  std::unique_ptr<Node> node(new Node(std::move(config), std::move(*key), ephemeral));
  IDN_RETURN_IF_ERROR(node->start_listening());
  IDN_RETURN_IF_ERROR(node->start_services());
  node->register_metrics();
  return node;
}

Status Node::start_listening() {
  dispatcher_->attach(*host_);
  for (const auto& addr : config_.listen) {
    auto bound = host_->listen(addr);
    if (!bound.ok()) return bound.status().with_context(fmt::format("listen {}", addr.to_string()));
  }
  listen_addrs_ = host_->listen_addrs();
  if (config_.http) {
    http_ = std::make_unique<HttpServer>(io_.get_executor());
    IDN_RETURN_IF_ERROR(http_->listen(*config_.http));
    http_address_ = http_->local_address();
    http_->route("/metrics", [this] {
      return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", metrics_text()};
    });
    http_->route("/status", [this] {
      return HttpResponse{200, "application/json", status_json()};
    });
    // The page for people; the plain index stays at /idn/v1/ for scripts.
    http_->route("/", [] {
      return HttpResponse{200, "text/html; charset=utf-8", std::string(node_page_html())};
    });
    http_->route("/idn/v1/", [this] {
      return HttpResponse{200, "text/plain; charset=utf-8",
                          fmt::format("idn node {}\n/status  JSON: peer id, addresses, peers\n"
                                      "/metrics Prometheus metrics\n"
                                      "/idn/v1/ the inference gateway (/idn/v1/openapi.json)\n",
                                      id().to_string())};
    });
    add_gateway_routes(*http_, *this);
  }
  host_->set_connection_observer(
      [this](const identity::PeerId& peer, bool connected, const Status& reason) {
        if (connected) {
          spdlog::info("connected to {}", peer.to_string());
          if (!stopping_) asio::co_spawn(io_, ping_peer(peer), asio::detached);
        } else {
          spdlog::info("disconnected from {}: {}", peer.to_string(),
                       reason.is_ok() ? "closed" : reason.to_string());
        }
        if (swap_) swap_->on_connection(peer, connected);
        if (relay_ && !connected) relay_->on_disconnected(peer);
      });
  dispatcher_->on_error([](const identity::PeerId& peer, std::string_view proto, const Status& st) {
    // What the peer did wrong is worth a warning; a stream cut by a closing connection or by
    // our own shutdown is not.
    const Code c = st.code();
    const bool peer_fault = c == Code::kPeerMisbehaved || c == Code::kLimitExceeded ||
                            c == Code::kCorruption || c == Code::kInvalidArgument;
    if (peer_fault) {
      spdlog::warn("{} from {}: {}", proto, peer.to_string(), st.to_string());
    } else {
      spdlog::debug("{} from {}: {}", proto, peer.to_string(), st.to_string());
    }
  });
  return Status::ok();
}

Status Node::start_services() {
  namespace fs = std::filesystem;
  if (config_.data_dir) {
    data_dir_ = *config_.data_dir;
    std::error_code ec;
    fs::create_directories(data_dir_, ec);
    if (ec)
      return Status::io_error(fmt::format("data_dir {}: {}", data_dir_.string(), ec.message()));
  } else {
    std::string tmpl = (fs::temp_directory_path() / "idn-node-XXXXXX").string();
    if (!mkdtemp(tmpl.data()))
      return Status::io_error("cannot create a temporary data directory in " +
                              fs::temp_directory_path().string());
    data_dir_ = tmpl;
    temp_data_dir_ = true;
  }
  store::BlockstoreOptions so;
  so.max_bytes = config_.store_max_bytes;
  auto bs = store::Blockstore::open(data_dir_ / "store", so);
  if (!bs.ok()) return bs.status().with_context("blockstore");
  store_ = std::move(*bs);
  bitswap_ = std::make_unique<store::bitswap::Bitswap>(io_.get_executor(), *host_, *store_);
  bitswap_->start();
  if (config_.swap.enabled) {
    auto agent = SwapAgent::open(io_.get_executor(), *host_, config_.swap.params,
                                 data_dir_ / "swap" / "ledgers.sqlite");
    if (!agent.ok()) return agent.status().with_context("[swap]");
    swap_ = std::move(*agent);
  }
  serve::ServerConfig sc;
  if (swap_) {
    sc.admission = swap_;
    sc.work_sink = swap_;
    sc.receipt_sink = swap_;
  }
  sc.workers = config_.serve.workers;
  sc.max_queue = config_.serve.max_queue;
  sc.max_batch = config_.serve.max_batch;
  sc.inline_below = config_.serve.inline_below;
  sc.before_stage = config_.serve.before_stage;
  sc.engine_backend = *engine::parse_backend(config_.engine.backend);  // checked by the parser
  server_ = std::make_unique<serve::InferServer>(io_.get_executor(), sc);
  server_->attach(*dispatcher_);
  if (swap_) swap_->start(*dispatcher_);

  if (config_.dht.enabled) {
    routing::RoutingConfig rc;
    uint16_t port = config_.dht.port;
    std::string bind = "0.0.0.0";
    if (!listen_addrs_.empty()) {
      if (port == 0) port = listen_addrs_.front().tcp_port().value_or(0);
      if (auto ip = listen_addrs_.front().ip(); ip && ip->find(':') == std::string::npos)
        bind = *ip;
    }
    rc.listen_address = bind;
    rc.port = port;
    rc.lan_discovery = config_.dht.lan;
    rc.record_ttl = config_.dht.record_ttl;
    rc.bootstrap = config_.dht.bootstrap;
    if (rc.bootstrap.empty()) {
      for (const auto& b : config_.bootstrap) {
        auto ip = b.ip();
        auto tcp = b.tcp_port();
        if (ip && tcp) rc.bootstrap.push_back(fmt::format("{}:{}", *ip, *tcp));
      }
    }
    rc.addresses = publishable(listen_addrs_);
    rc.rtt_lookup = [this](const identity::PeerId& p) -> std::optional<std::chrono::microseconds> {
      std::lock_guard lock(rtt_mu_);
      auto it = rtts_.find(p);
      if (it == rtts_.end()) return std::nullopt;
      return it->second;
    };
    auto r = routing::DhtRouting::start(host_->key(), rc);
    if (!r.ok()) return r.status().with_context(fmt::format("DHT on UDP {}:{}", bind, port));
    routing_ = std::move(*r);
  }
  if (routing_)
    service_routing_ = std::make_unique<DhtServiceRouting>(io_.get_executor(), *routing_);
  executor_ = std::make_unique<ServerExecutor>(*server_);
  ModelHost::Parts parts{io_.get_executor(), *host_,   service_routing_.get(), *store_, *bitswap_,
                         *executor_,         data_dir_};
  // Peers learn what we host from our have list (§7.5.3): they need no DHT lookup for it.
  if (swap_) {
    parts.on_hosted_changed = [this] {
      std::vector<core::Multihash> ids;
      for (const auto& h : models_->hosted()) ids.push_back(h.service_id);
      swap_->set_have_list(ids);
    };
  }
  models_ = std::make_unique<ModelHost>(std::move(parts));
  if (swap_) {
    auto ise =
        IseAgent::create(io_.get_executor(), config_.ise, ise_capacity(config_), *models_, *swap_);
    if (!ise.ok()) return ise.status();
    ise_ = std::move(*ise);
    swap_->set_init_handlers(
        [ise = ise_.get()](identity::PeerId peer, protocol::SwapInitRequest r) {
          return ise->on_init_request(std::move(peer), std::move(r));
        },
        [ise = ise_.get()](const identity::PeerId& peer, const protocol::SwapInitResult& r) {
          ise->on_init_result(peer, r);
        });
    swap_->set_request_seen(
        [ise = ise_.get()](const identity::PeerId& peer, const core::Multihash& service) {
          ise->requested(peer, service);
        });
  } else if (config_.ise.auto_host) {
    return Status::invalid_argument(
        "[ise] auto_host needs ComputeSwap ([swap] enabled): demand comes from its peers");
  }
  kad_ = std::make_unique<routing::KadBridge>(
      *host_, [this](core::Multihash key, size_t n) { return kad_providers(std::move(key), n); },
      routing::KadBridgeConfig{},
      [this](const identity::PeerId& from, const core::Multihash& key) {
        return add_relayed_provider(from, key);
      });
  kad_->attach();
  if (config_.relay.enabled) {
    p2p::relay::RelayConfig rc;
    rc.max_reservations = config_.relay.max_reservations;
    rc.max_circuits = config_.relay.max_circuits;
    rc.max_circuits_per_peer = config_.relay.max_circuits_per_peer;
    rc.reservation_ttl = config_.relay.reservation_ttl;
    rc.circuit_duration = config_.relay.circuit_duration;
    rc.circuit_data = config_.relay.circuit_data;
    relay_ = std::make_unique<p2p::relay::RelayService>(
        *host_, rc, [this] { return publishable(listen_addrs_); });
    relay_->set_reservation_observer([this](const identity::PeerId& peer, bool reserved) {
      if (reserved) return;
      // Its announcements go with its slot, here and in the DHT.
      auto it = relayed_services_.find(peer);
      if (it == relayed_services_.end()) return;
      auto services = std::move(it->second);
      relayed_services_.erase(it);
      for (const auto& key : services) publish_relayed(key);
    });
    relay_->attach();
  }
  return Status::ok();
}

bool Node::add_relayed_provider(const identity::PeerId& from, const core::Multihash& key) {
  // Bounds what one reserved peer can make this node answer for.
  constexpr size_t kMaxRelayedServicesPerPeer = 64;
  if (!relay_ || !relay_->has_reservation(from)) return false;
  auto& services = relayed_services_[from];
  if (std::find(services.begin(), services.end(), key) != services.end()) return true;
  if (services.size() >= kMaxRelayedServicesPerPeer) return false;
  services.push_back(key);
  spdlog::info("relay: {} provides {} through this node", from.to_string(), key.to_base58());
  publish_relayed(key);
  return true;
}

void Node::publish_relayed(const core::Multihash& key) {
  if (!routing_ || !relay_) return;
  std::vector<routing::RelayedPeer> peers;
  for (const auto& [peer, services] : relayed_services_) {
    if (std::find(services.begin(), services.end(), key) == services.end()) continue;
    if (peers.size() == routing::defaults::kMaxRelayedPeers) {
      spdlog::warn(
          "relay: over {} peers provide {} through this node; the DHT names the first "
          "{}, this node's kad front all",
          peers.size(), key.to_base58(), peers.size());
      break;
    }
    auto addrs = relay_->circuit_addrs(peer);
    if (addrs.size() > routing::defaults::kMaxRelayedAddrs)
      addrs.resize(routing::defaults::kMaxRelayedAddrs);
    if (!addrs.empty()) peers.push_back({peer, std::move(addrs)});
  }
  // An empty list withdraws the record (the last relayed peer for the key is gone).
  // A failed put (typically: no other DHT node yet) is retried by the routing layer.
  routing_->provide_relayed(key, std::move(peers), [key](Status s) {
    if (!s.is_ok())
      spdlog::info("relay: publishing the relayed providers of {}: {}", key.to_base58(),
                   s.to_string());
  });
}

awaitable<std::vector<routing::PeerInfo>> Node::kad_providers(core::Multihash key, size_t n) {
  std::vector<routing::PeerInfo> out;
  auto add = [&](routing::PeerInfo p) {
    if (out.size() >= n) return;
    for (const auto& q : out)
      if (q.id == p.id) return;
    out.push_back(std::move(p));
  };
  auto add_connected = [&](const identity::PeerId& p) {
    auto info = host_->peer_info(p);
    if (info && info->identify) add({p, info->identify->listen_addrs, info->rtt});
  };
  if (models_) {
    for (const auto& h : models_->hosted())
      if (h.service_id == key) add({host_->id(), publishable(listen_addrs_), std::nullopt});
  }
  if (swap_) {
    for (const auto& p : swap_->peers_hosting(key)) add_connected(p);
  }
  for (const auto& [peer, services] : relayed_services_) {
    if (relay_ && std::find(services.begin(), services.end(), key) != services.end())
      add({peer, relay_->circuit_addrs(peer), std::nullopt});
  }
  if (auto c = provider_caches_.find(key); c != provider_caches_.end()) {
    for (const auto& p : c->second->peers) add_connected(p);
  }
  if (out.size() >= n || !routing_) co_return out;
  if (!out.empty()) {
    // Answer with what we know now; a DHT lookup beside it fills the provider cache (its
    // providers dialled, so named above) for the next client that asks.
    auto cache = provider_cache(key);
    if (std::chrono::steady_clock::now() >= cache->expires && !cache->looking_up) {
      asio::co_spawn(
          io_,
          [this, cache, key]() -> awaitable<void> {
            (void)co_await look_up_providers(cache, key, kProvidersCached);
          },
          asio::detached);
    }
    co_return out;
  }
  // Nobody known: ask the DHT, bounded well inside a kad client's 10 s read timeout (an
  // OpenDHT lookup may take 20 s).
  struct Lookup {
    explicit Lookup(asio::any_io_executor ex) : done(std::move(ex)) {}
    std::optional<Result<std::vector<routing::PeerInfo>>> result;
    p2p::Signal done;
  };
  auto lookup = std::make_shared<Lookup>(io_.get_executor());
  routing_->find_providers(key, n, [lookup, ex = io_.get_executor()](auto r) {
    asio::post(ex, [lookup, r = std::move(r)]() mutable {
      lookup->result = std::move(r);
      lookup->done.notify_all();
    });
  });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!lookup->result && co_await lookup->done.wait(deadline)) {
  }
  if (lookup->result && lookup->result->ok())
    for (auto& p : **lookup->result) add(std::move(p));
  co_return out;
}

awaitable<void> Node::host_configured_services() {
  Status restored = co_await models_->restore();
  if (!restored.is_ok()) spdlog::warn("re-hosting services: {}", restored.to_string());
  for (const auto& text : config_.host) {
    if (stopping_) co_return;
    auto id = ise::parse_service_id(text);
    if (!id.ok()) {
      spdlog::error("host {}: {}", text, id.status().to_string());
      continue;
    }
    // The DHT may still be joining: retry a few times before giving up on a service.
    for (int attempt = 1; attempt <= 5 && !stopping_; ++attempt) {
      Status s = co_await models_->init_model(*id);
      if (s.is_ok()) break;
      spdlog::warn("host {} (attempt {}): {}", text, attempt, s.to_string());
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2 * attempt);
      while (!stopping_ && std::chrono::steady_clock::now() < deadline)
        co_await wake_->wait(deadline);
    }
  }
}

void Node::register_metrics() {
  p2p::Host* h = host_.get();
  auto stat = [h](uint64_t p2p::HostStats::*field) {
    return [h, field] { return static_cast<double>(h->stats().*field); };
  };
  metrics_.gauge_fn("idn_connections", "Open, upgraded peer connections.", {},
                    stat(&p2p::HostStats::connections_active));
  metrics_.gauge_fn("idn_streams", "Open yamux streams over all connections.", {},
                    stat(&p2p::HostStats::streams_active));
  metrics_.counter_fn("idn_bytes_received_total", "Payload bytes received from peers.", {},
                      stat(&p2p::HostStats::bytes_in));
  metrics_.counter_fn("idn_bytes_sent_total", "Payload bytes sent to peers.", {},
                      stat(&p2p::HostStats::bytes_out));
  metrics_.counter_fn(
      "idn_socket_writes_total",
      "Encrypted writes to peer connections (small messages of one turn share one).", {},
      stat(&p2p::HostStats::writes));
  metrics_.counter_fn("idn_handshakes_total", "Connection upgrades (Noise + yamux) by result.",
                      {{"result", "ok"}}, stat(&p2p::HostStats::handshakes_ok));
  metrics_.counter_fn("idn_handshakes_total", "Connection upgrades (Noise + yamux) by result.",
                      {{"result", "failed"}}, stat(&p2p::HostStats::handshakes_failed));
  metrics_.counter_fn("idn_connections_opened_total", "Connections established, by direction.",
                      {{"direction", "inbound"}}, stat(&p2p::HostStats::inbound_connections));
  metrics_.counter_fn("idn_connections_opened_total", "Connections established, by direction.",
                      {{"direction", "outbound"}}, stat(&p2p::HostStats::outbound_connections));
  metrics_.gauge_fn("idn_handshakes_pending", "Inbound connections whose handshake is in progress.",
                    {}, stat(&p2p::HostStats::handshakes_pending));
  metrics_.counter_fn("idn_handshakes_evicted_total",
                      "Inbound handshakes ended early to admit a newer connection (budget full).",
                      {}, stat(&p2p::HostStats::handshakes_evicted));
  constexpr char kRefusedHelp[] = "Inbound connections closed at once, by the limit reached.";
  metrics_.counter_fn("idn_inbound_refused_total", kRefusedHelp, {{"limit", "per_address"}},
                      stat(&p2p::HostStats::inbound_refused_per_address));
  metrics_.counter_fn("idn_inbound_refused_total", kRefusedHelp, {{"limit", "pending"}},
                      stat(&p2p::HostStats::inbound_refused_pending));
  metrics_.counter_fn("idn_inbound_refused_total", kRefusedHelp, {{"limit", "connections"}},
                      stat(&p2p::HostStats::inbound_refused_connections));
  metrics_.counter_fn("idn_connections_closed_total", "Connections closed.", {},
                      stat(&p2p::HostStats::connections_closed));
  metrics_.counter_fn("idn_streams_opened_total", "Streams opened (both directions).", {},
                      stat(&p2p::HostStats::streams_opened));
  metrics_.counter_fn("idn_streams_refused_total",
                      "Inbound streams refused: no handler for the protocol.", {},
                      stat(&p2p::HostStats::streams_refused));
  rpc::Dispatcher* d = dispatcher_.get();
  auto dstat = [d](uint64_t rpc::DispatcherStats::*field) {
    return [d, field] { return static_cast<double>(d->stats().*field); };
  };
  constexpr char kMsgHelp[] = "IDN protocol messages received, by type.";
  metrics_.counter_fn("idn_protocol_messages_total", kMsgHelp, {{"type", "swap"}},
                      dstat(&rpc::DispatcherStats::swap_messages));
  metrics_.counter_fn("idn_protocol_messages_total", kMsgHelp, {{"type", "infer_request"}},
                      dstat(&rpc::DispatcherStats::infer_requests));
  metrics_.counter_fn("idn_protocol_messages_total", kMsgHelp, {{"type", "cancel"}},
                      dstat(&rpc::DispatcherStats::cancels));
  metrics_.counter_fn("idn_protocol_messages_total", kMsgHelp, {{"type", "receipt"}},
                      dstat(&rpc::DispatcherStats::receipts));
  metrics_.counter_fn("idn_protocol_stream_errors_total",
                      "IDN protocol streams reset for malformed or oversized messages.", {},
                      dstat(&rpc::DispatcherStats::stream_errors));
  if (swap_) register_swap_metrics(metrics_, *swap_);
  if (routing_) {
    routing::DhtRouting* r = routing_.get();
    for (const auto& [name, v] : r->counters().named()) {
      (void)v;
      metrics_.counter_fn("idn_routing_records_total",
                          "DHT record events: reads by validity, our puts, refused puts.",
                          {{"event", name}}, [r, name = name] {
                            for (const auto& [n, x] : r->counters().named())
                              if (n == name) return static_cast<double>(x);
                            return 0.0;
                          });
    }
    metrics_.gauge_fn("idn_dht_nodes", "Good nodes in the DHT routing table.", {},
                      [r] { return static_cast<double>(r->good_nodes()); });
  }
  if (kad_) {
    routing::KadBridge* k = kad_.get();
    constexpr char kKadHelp[] =
        "kad-dht requests from clients (/ipfs/kad/1.0.0), by type; busy: GET_PROVIDERS answered "
        "empty at the lookup limit; malformed: streams reset.";
    for (auto [type, field] : {std::pair{"get_providers", &routing::KadBridgeStats::get_providers},
                               {"find_node", &routing::KadBridgeStats::find_node},
                               {"get_value", &routing::KadBridgeStats::get_value},
                               {"ping", &routing::KadBridgeStats::ping},
                               {"add_provider", &routing::KadBridgeStats::add_provider},
                               {"refused", &routing::KadBridgeStats::refused},
                               {"busy", &routing::KadBridgeStats::busy},
                               {"malformed", &routing::KadBridgeStats::malformed}}) {
      metrics_.counter_fn("idn_kad_requests_total", kKadHelp, {{"type", type}},
                          [k, field] { return static_cast<double>(k->stats().*field); });
    }
  }
  if (relay_) {
    p2p::relay::RelayService* rs = relay_.get();
    using RS = p2p::relay::RelayStats;
    auto rstat = [rs](uint64_t RS::*field) {
      return [rs, field] { return static_cast<double>(rs->stats().*field); };
    };
    metrics_.gauge_fn("idn_relay_reservations",
                      "Peers holding a circuit relay v2 reservation on this node.", {},
                      rstat(&RS::reservations_active));
    metrics_.gauge_fn("idn_relay_circuits", "Circuits this node splices now.", {},
                      rstat(&RS::circuits_active));
    metrics_.counter_fn("idn_relay_bytes_total", "Bytes spliced through circuits, both ways.", {},
                        rstat(&RS::bytes_relayed));
    constexpr char kConnectHelp[] =
        "Circuit relay CONNECTs, by outcome: ok, refused (no reservation, limits), failed (the "
        "target did not take the circuit).";
    metrics_.counter_fn("idn_relay_connects_total", kConnectHelp, {{"outcome", "ok"}},
                        rstat(&RS::connects_ok));
    metrics_.counter_fn("idn_relay_connects_total", kConnectHelp, {{"outcome", "refused"}},
                        rstat(&RS::connects_refused));
    metrics_.counter_fn("idn_relay_connects_total", kConnectHelp, {{"outcome", "failed"}},
                        rstat(&RS::connects_failed));
  }
  store::bitswap::Bitswap* bsw = bitswap_.get();
  auto bstat = [bsw](uint64_t store::bitswap::BitswapStats::*field) {
    return [bsw, field] { return static_cast<double>(bsw->stats().*field); };
  };
  using BS = store::bitswap::BitswapStats;
  metrics_.counter_fn("idn_bitswap_blocks_total", "Bitswap blocks, by direction.",
                      {{"direction", "sent"}}, bstat(&BS::blocks_sent));
  metrics_.counter_fn("idn_bitswap_blocks_total", "Bitswap blocks, by direction.",
                      {{"direction", "received"}}, bstat(&BS::blocks_received));
  metrics_.counter_fn("idn_bitswap_bytes_total", "Bitswap block bytes, by direction.",
                      {{"direction", "sent"}}, bstat(&BS::bytes_sent));
  metrics_.counter_fn("idn_bitswap_bytes_total", "Bitswap block bytes, by direction.",
                      {{"direction", "received"}}, bstat(&BS::bytes_received));
  metrics_.counter_fn("idn_bitswap_bad_blocks_total",
                      "Blocks that failed verification against their CID (sender marked faulty).",
                      {}, bstat(&BS::bad_blocks));
  metrics_.counter_fn("idn_bitswap_duplicate_blocks_total", "Blocks received twice.", {},
                      bstat(&BS::duplicate_blocks));
  metrics_.counter_fn("idn_bitswap_want_timeouts_total", "Wants that timed out.", {},
                      bstat(&BS::want_timeouts));
  store::Blockstore* st = store_.get();
  metrics_.gauge_fn("idn_store_blocks", "Blocks in the blockstore.", {},
                    [st] { return static_cast<double>(st->stats().blocks); });
  metrics_.gauge_fn("idn_store_bytes", "Bytes of block data in the blockstore.", {},
                    [st] { return static_cast<double>(st->stats().bytes); });
  metrics_.gauge_fn("idn_store_pins", "Recursively pinned roots.", {},
                    [st] { return static_cast<double>(st->stats().pinned_roots); });
  metrics_.counter_fn("idn_store_evicted_total", "Unpinned blocks evicted (LRU).", {},
                      [st] { return static_cast<double>(st->stats().evicted); });
  serve::InferServer* srv = server_.get();
  auto sstat = [srv](uint64_t serve::ServerStats::*field) {
    return [srv, field] { return static_cast<double>(srv->stats().*field); };
  };
  using SS = serve::ServerStats;
  constexpr char kInferHelp[] = "Inference requests served, by how they ended.";
  for (auto [result, field] : {std::pair{"completed", &SS::completed},
                               {"cancelled", &SS::cancelled},
                               {"busy", &SS::busy},
                               {"invalid", &SS::invalid},
                               {"unknown_service", &SS::unknown_service},
                               {"deadline_exceeded", &SS::deadline_exceeded},
                               {"failed", &SS::failed}}) {
    metrics_.counter_fn("idn_infer_requests_total", kInferHelp, {{"result", result}}, sstat(field));
  }
  metrics_.gauge_fn("idn_infer_queued", "Inference requests waiting for a worker.", {},
                    sstat(&SS::queued));
  metrics_.gauge_fn("idn_infer_running", "Inference requests executing now.", {},
                    sstat(&SS::running));
  metrics_.counter_fn("idn_infer_inline_total",
                      "Requests for a cheap model run on the io thread (no worker hand-off).", {},
                      sstat(&SS::inlined));
  metrics_.counter_fn("idn_infer_batches_total",
                      "Engine runs that served several queued requests at once.", {},
                      sstat(&SS::batches));
  metrics_.gauge_fn("idn_services_hosted", "Inference services this node hosts.", {},
                    [srv] { return static_cast<double>(srv->services().size()); });
  // 100 us .. ~1.6 s: loopback pings land in the first buckets, WAN ones in the last.
  rtt_ = &metrics_.histogram("idn_ping_rtt_seconds", "Round-trip time of /ipfs/ping/1.0.0.",
                             exponential_buckets(0.0001, 2, 15));
  ping_failures_ = &metrics_.counter("idn_ping_failures_total", "Pings that failed or timed out.");
  HttpServer* http = http_.get();
  if (http) {
    metrics_.counter_fn("idn_http_requests_total", "HTTP requests served.", {},
                        [http] { return static_cast<double>(http->requests_served()); });
  }
  metrics_.gauge_fn("idn_uptime_seconds", "Seconds since the node started.", {}, [this] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  });
  metrics_
      .gauge("idn_build_info", "Build information (value is always 1).",
             {{"version", host_->config().agent_version}, {"compiler", __VERSION__}})
      .set(1);
}

std::string Node::status_json() const {
  using nlohmann::json;
  json j;
  j["peer_id"] = id().to_string();
  j["agent"] = host_->config().agent_version;
  j["ephemeral_identity"] = ephemeral_;
  j["uptime_s"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  j["listen_addrs"] = json::array();
  for (const auto& a : listen_addrs_) j["listen_addrs"].push_back(a.to_string());
  if (http_address_) j["http"] = http_address_->to_string();
  j["protocols"] = host_->protocols();
  j["data_dir"] = data_dir_.string();
  if (routing_) j["dht"] = routing_->endpoint();
  json services = json::array();
  for (const auto& h : models_->hosted()) {
    json e = {{"service_id", ise::service_id_text(h.service_id)},
              {"name", h.descriptor.name},
              {"model_cid", h.descriptor.model_cid}};
    // Which engine backend runs it (issue 21) and why; absent for handler services (DDNN).
    if (auto b = server_ ? server_->backend(h.service_id) : std::nullopt)
      e["backend"] = {{"name", std::string(engine::backend_name(b->backend))},
                      {"reason", b->reason}};
    services.push_back(std::move(e));
  }
  j["services"] = std::move(services);
  json peers = json::array();
  for (const auto& p : host_->connected_peers()) {
    auto info = host_->peer_info(p);
    if (!info) continue;
    json e;
    e["peer_id"] = p.to_string();
    e["addr"] = info->remote_addr.to_string();
    e["direction"] = info->outbound ? "outbound" : "inbound";
    e["rtt_ms"] = info->rtt ? json(info->rtt->count() / 1000.0) : json(nullptr);
    if (info->identify) {
      e["agent"] = info->identify->agent_version;
      e["protocols"] = info->identify->protocols;
    } else {
      e["agent"] = nullptr;
      e["protocols"] = json::array();
    }
    peers.push_back(std::move(e));
  }
  j["peers"] = std::move(peers);
  if (swap_) j["swap"] = swap_status_json(*swap_);
  if (ise_) j["ise"] = ise_->status_json();
  return j.dump(2) + "\n";
}

awaitable<void> Node::ping_peer(identity::PeerId peer) {
  auto rtt = co_await host_->ping(peer);
  if (rtt.ok()) {
    rtt_->observe(std::chrono::duration<double>(*rtt).count());
    std::lock_guard lock(rtt_mu_);
    rtts_[peer] = std::chrono::duration_cast<std::chrono::microseconds>(*rtt);
  } else if (!stopping_) {
    ping_failures_->inc();
    spdlog::debug("ping {} failed: {}", peer.to_string(), rtt.status().to_string());
  }
}

awaitable<void> Node::ping_loop() {
  while (!stopping_) {
    auto deadline = std::chrono::steady_clock::now() + kPingInterval;
    while (!stopping_ && std::chrono::steady_clock::now() < deadline) {
      co_await wake_->wait(deadline);
    }
    if (stopping_) break;
    for (const auto& p : host_->connected_peers()) {
      asio::co_spawn(io_, ping_peer(p), asio::detached);
    }
  }
}

awaitable<void> Node::bootstrap_loop() {
  while (!stopping_ && !config_.bootstrap.empty()) {
    for (const auto& addr : config_.bootstrap) {
      if (stopping_) break;
      auto mh = addr.peer_multihash();
      if (mh) {
        auto pid = identity::PeerId::from_multihash(*mh);
        if (pid.ok() && host_->is_connected(*pid)) continue;
      }
      auto r = co_await host_->dial(addr);
      if (r.ok()) {
        spdlog::info("bootstrap peer {} connected", addr.to_string());
      } else if (!stopping_) {
        spdlog::warn("bootstrap {}: {} (retrying in {} s)", addr.to_string(),
                     r.status().to_string(), kBootstrapRetry.count());
      }
    }
    auto deadline = std::chrono::steady_clock::now() + kBootstrapRetry;
    while (!stopping_ && std::chrono::steady_clock::now() < deadline) {
      co_await wake_->wait(deadline);
    }
  }
}

awaitable<void> Node::ise_loop() {
  while (!stopping_) {
    auto deadline = std::chrono::steady_clock::now() + kIseTick;
    while (!stopping_ && std::chrono::steady_clock::now() < deadline)
      co_await wake_->wait(deadline);
    if (stopping_) break;
    co_await ise_->step();
  }
}

Status Node::run(bool handle_signals) {
  if (stopping_) return Status::unavailable("node was shut down; create a new one");
  if (handle_signals) {
    signals_.add(SIGINT);
    signals_.add(SIGTERM);
    signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      spdlog::info("received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
      do_shutdown();
    });
  }
  if (http_) http_->start();
  pthread_setname_np(pthread_self(), "idn-io");  // names the thread in top -H, perf, gdb
  asio::co_spawn(io_, bootstrap_loop(), asio::detached);
  asio::co_spawn(io_, ping_loop(), asio::detached);
  asio::co_spawn(io_, host_configured_services(), asio::detached);
  if (ise_) asio::co_spawn(io_, ise_loop(), asio::detached);
  const auto spin = config_.busy_poll;
  const auto spin_waiting = config_.poll_while_waiting;
  if (spin.count() <= 0 && spin_waiting.count() <= 0) {
    io_.run();
    return Status::ok();
  }
  // Polling: after any work, keep polling for `spin` (or, while our own requests await
  // answers, `spin_waiting`) before sleeping in epoll. A sleeping thread on an idle vCPU takes
  // 50-100 us to wake on a small VM, more than a loopback round trip; polling trades that for
  // CPU. Each idle poll yields, so threads that share this CPU (a provider's model on a small
  // machine) still run.
  auto active = std::chrono::steady_clock::now();
  while (!io_.stopped()) {
    if (io_.poll() > 0) {
      active = std::chrono::steady_clock::now();
      continue;
    }
    const auto idle = std::chrono::steady_clock::now() - active;
    if (idle < spin || (idle < spin_waiting && in_flight_->load(std::memory_order_relaxed) > 0)) {
      std::this_thread::yield();
      continue;
    }
    if (io_.run_one() == 0) break;
    active = std::chrono::steady_clock::now();
  }
  return Status::ok();
}

void Node::shutdown() {
  asio::post(io_, [this] {
    if (!stopping_) do_shutdown();
  });
}

void Node::do_shutdown() {
  stopping_ = true;
  boost::system::error_code ec;
  signals_.cancel(ec);
  signals_.clear(ec);
  if (http_) http_->stop();
  // Requests in flight are answered "cancelled" at once (clients reroute), connections close;
  // drain_and_stop then withdraws our DHT records.
  if (server_) server_->stop();
  if (swap_) swap_->stop();
  if (bitswap_) bitswap_->stop();
  host_->stop();
  wake_->notify_all();
  // Connections close asynchronously; once they are gone, stop the loop rather than wait for
  // the host's periodic timers to notice (the Host allows stopping its io_context).
  asio::co_spawn(io_, drain_and_stop(), asio::detached);
}

awaitable<void> Node::drain_and_stop() {
  asio::steady_timer t(io_);
  auto deadline = std::chrono::steady_clock::now() + kShutdownGrace;
  while (!host_->connected_peers().empty() && std::chrono::steady_clock::now() < deadline) {
    t.expires_after(std::chrono::milliseconds(5));
    boost::system::error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  // Tombstones for our provider records, so peers stop being sent here (blocks a few seconds
  // at most; nothing else runs on this thread any more).
  if (routing_) routing_->shutdown(config_.dht.withdraw_on_stop);
  io_.stop();
}

}  // namespace idn::node
