#include "routing/dht_routing.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include <opendht.h>
#include <opendht/network_utils.h>

#include "core/multihash.h"
#include "core/varint.h"
#include "routing/rate_limiter.h"

namespace idn::routing {
namespace {

using Ms = std::chrono::milliseconds;

struct AtomicCounters {
  std::atomic<uint64_t> valid{0}, malformed{0}, forged{0}, replayed{0}, expired{0}, withdrawn{0},
      rate_limited{0}, rejected{0}, published{0}, refreshed{0}, lookups{0}, relayed_refused{0};
};

// Multiaddrs in a record value: count, then each length-prefixed.
Bytes encode_addrs(const std::vector<core::Multiaddr>& addrs) {
  Bytes out;
  core::append_uvarint(addrs.size(), out);
  for (const auto& a : addrs) core::append_length_prefixed(a.to_bytes(), out);
  return out;
}

Result<std::vector<core::Multiaddr>> decode_addrs(ByteView in) {
  IDN_ASSIGN_OR_RETURN(auto n, core::decode_uvarint(in));
  if (n.value > defaults::kMaxAddresses)
    return Status::corruption("record lists " + std::to_string(n.value) + " addresses, limit " +
                              std::to_string(defaults::kMaxAddresses));
  size_t pos = n.size;
  std::vector<core::Multiaddr> out;
  for (uint64_t i = 0; i < n.value; ++i) {
    size_t used = 0;
    IDN_ASSIGN_OR_RETURN(Bytes b, core::decode_length_prefixed(in.subspan(pos), 1024, &used));
    pos += used;
    IDN_ASSIGN_OR_RETURN(auto a, core::Multiaddr::from_bytes(b));
    out.push_back(std::move(a));
  }
  if (pos != in.size()) return Status::corruption("trailing bytes after address list");
  return out;
}

Result<dht::SockAddr> parse_host_port(const std::string& hp, uint16_t* port_out = nullptr) {
  auto colon = hp.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == hp.size())
    return Status::invalid_argument("bootstrap address '" + hp + "' is not host:port");
  std::string host = hp.substr(0, colon), port = hp.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 ||
      std::stoul(port) > 65535)
    return Status::invalid_argument("bootstrap address '" + hp + "': bad port '" + port + "'");
  std::vector<dht::SockAddr> addrs;
  try {
    addrs = dht::SockAddr::resolve(host, port);
  } catch (const std::exception& e) {
    return Status::invalid_argument("bootstrap address '" + hp + "': " + e.what());
  }
  if (addrs.empty())
    return Status::invalid_argument("bootstrap address '" + hp + "': host does not resolve");
  if (port_out) *port_out = static_cast<uint16_t>(std::stoul(port));
  return addrs.front();
}

// Records whose value is this node's own addresses, rebuilt on every (re)publication.
bool carries_own_addrs(RecordKind k) {
  return k == RecordKind::kPeer || k == RecordKind::kProvider;
}

// Relayed-provider records live under the provider key, so one lookup reads both kinds (their
// value ids differ, so a relay's own provider record and its relayed one coexist).
RecordKind storage_kind(RecordKind k) {
  return k == RecordKind::kRelayed ? RecordKind::kProvider : k;
}

std::string key_string(RecordKind kind, ByteView key) {
  std::string s(1, static_cast<char>(kind));
  s.append(reinterpret_cast<const char*>(key.data()), key.size());
  return s;
}

}  // namespace

std::vector<std::pair<std::string, uint64_t>> RoutingCounters::named() const {
  return {{"records_valid", records_valid},
          {"records_malformed", records_malformed},
          {"records_forged", records_forged},
          {"records_replayed", records_replayed},
          {"records_expired", records_expired},
          {"records_withdrawn", records_withdrawn},
          {"puts_rate_limited", puts_rate_limited},
          {"puts_rejected", puts_rejected},
          {"records_published", records_published},
          {"records_refreshed", records_refreshed},
          {"lookups", lookups},
          {"relayed_refused", relayed_refused}};
}

Bytes DhtRouting::dht_key(RecordKind kind, ByteView key) {
  std::string s = "idn/" + key_string(kind, key);
  auto h = dht::InfoHash::get(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  return Bytes(h.begin(), h.end());
}

uint64_t DhtRouting::value_id(RecordKind kind, ByteView signer) {
  Bytes b(signer.begin(), signer.end());
  b.push_back(static_cast<uint8_t>(kind));
  auto d = core::sha256(b);
  uint64_t id = 0;
  for (int i = 0; i < 8; ++i) id = (id << 8) | d[i];
  return id == 0 ? 1 : id;  // 0 is OpenDHT's "unset" id
}

struct DhtRouting::Impl {
  identity::KeyPair key;
  identity::PeerId self;
  RoutingConfig cfg;
  dht::DhtRunner runner;
  AtomicCounters c;
  RateLimiter limiter;

  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  bool stopped = false;
  bool connected = false;
  uint64_t last_seq = 0;
  RttLookup rtt;
  // Replay detection: highest sequence seen per (kind||key, signer).
  std::map<std::pair<std::string, Bytes>, uint64_t> seen;
  struct Publication {
    RecordKind kind;
    Bytes key;
    Bytes value;  // for provider/peer records, rebuilt from addresses on refresh
    std::chrono::steady_clock::time_point next_refresh;
  };
  std::map<std::string, Publication> pubs;  // by key_string
  std::thread refresher;

  Impl(identity::KeyPair k, RoutingConfig c_)
      : key(std::move(k)),
        self(identity::PeerId::from_public_key(key.public_key())),
        cfg(std::move(c_)),
        limiter(cfg.put_rate_per_second, cfg.put_burst, defaults::kRateLimiterMaxPeers) {
    rtt = cfg.rtt_lookup;
  }

  Clock::time_point now() const { return cfg.clock ? cfg.clock() : Clock::now(); }

  std::chrono::steady_clock::duration refresh_interval() const {
    auto d = std::chrono::duration_cast<std::chrono::steady_clock::duration>(cfg.record_ttl *
                                                                             cfg.refresh_fraction);
    return std::max<std::chrono::steady_clock::duration>(d, Ms(100));
  }

  // Strictly increasing per node and, being wall-clock milliseconds, across restarts.
  uint64_t next_seq() {
    auto ms = std::chrono::duration_cast<Ms>(now().time_since_epoch()).count();
    last_seq = std::max<uint64_t>(last_seq + 1, static_cast<uint64_t>(std::max<int64_t>(ms, 0)));
    return last_seq;
  }

  // Signs and puts one record; cb gets the DHT's verdict on the put.
  void put_record(RecordKind kind, const Bytes& rkey, const Bytes& value, bool withdrawn,
                  uint64_t seq, DoneCallback cb) {
    auto rec = sign_record(key, kind, rkey, value, seq, now() + cfg.record_ttl, withdrawn);
    if (!rec.ok()) {
      if (cb) cb(rec.status());
      return;
    }
    Bytes enc = encode_record(*rec);
    Bytes dk = dht_key(storage_kind(kind), rkey);
    auto v = std::make_shared<dht::Value>(defaults::kValueTypeId, enc.data(), enc.size(),
                                          value_id(kind, self.bytes()));
    c.published++;
    runner.put(dht::InfoHash(dk.data(), dk.size()), v,
               [cb, kind](bool ok, const std::vector<std::shared_ptr<dht::Node>>&) {
                 if (!cb) return;
                 if (ok)
                   cb(Status::ok());
                 else
                   cb(Status::unavailable(std::string("no DHT node stored the ") +
                                          std::string(record_kind_name(kind)) +
                                          " record (not connected to the DHT?)"));
               });
  }

  Bytes self_addrs() {
    std::lock_guard lk(mu);
    return encode_addrs(cfg.addresses);
  }

  // Wraps a put callback so a failed put of a live publication is retried soon.
  DoneCallback retry_on_failure(RecordKind kind, const Bytes& rkey, DoneCallback cb) {
    return [this, ks = key_string(kind, rkey), cb = std::move(cb)](Status s) {
      if (!s.is_ok()) {
        {
          std::lock_guard lk(mu);
          auto it = pubs.find(ks);
          if (it != pubs.end())
            it->second.next_refresh = std::min(
                it->second.next_refresh, std::chrono::steady_clock::now() + defaults::kPutRetry);
        }
        cv.notify_all();
      }
      if (cb) cb(std::move(s));
    };
  }

  // Registers a publication (refreshed by the refresher thread) and puts it now.
  void publish(RecordKind kind, const Bytes& rkey, Bytes value, DoneCallback cb) {
    uint64_t seq;
    {
      std::lock_guard lk(mu);
      if (stopping) {
        if (cb) cb(Status::cancelled("routing is shutting down"));
        return;
      }
      pubs[key_string(kind, rkey)] =
          Publication{kind, rkey, value, std::chrono::steady_clock::now() + refresh_interval()};
      seq = next_seq();
      if (carries_own_addrs(kind)) value = encode_addrs(cfg.addresses);
    }
    cv.notify_all();
    put_record(kind, rkey, value, false, seq, retry_on_failure(kind, rkey, std::move(cb)));
  }

  void unpublish(RecordKind kind, const Bytes& rkey, DoneCallback cb) {
    uint64_t seq;
    Bytes value;
    {
      std::lock_guard lk(mu);
      auto it = pubs.find(key_string(kind, rkey));
      if (it == pubs.end()) {
        if (cb)
          cb(Status::not_found("this node does not publish that " +
                               std::string(record_kind_name(kind)) + " record"));
        return;
      }
      pubs.erase(it);
      seq = next_seq();
    }
    put_record(kind, rkey, value, true, seq, std::move(cb));
  }

  void refresh_loop() {
    std::unique_lock lk(mu);
    while (!stopping) {
      auto next = std::chrono::steady_clock::time_point::max();
      for (auto& [_, p] : pubs) next = std::min(next, p.next_refresh);
      if (next == std::chrono::steady_clock::time_point::max()) {
        cv.wait(lk, [&] { return stopping || !pubs.empty(); });
        continue;
      }
      if (cv.wait_until(lk, next, [&] { return stopping; })) break;
      auto t = std::chrono::steady_clock::now();
      std::vector<std::tuple<RecordKind, Bytes, Bytes, uint64_t>> due;
      for (auto& [_, p] : pubs) {
        if (p.next_refresh > t) continue;
        p.next_refresh = t + refresh_interval();
        Bytes value = carries_own_addrs(p.kind) ? encode_addrs(cfg.addresses) : p.value;
        due.emplace_back(p.kind, p.key, std::move(value), next_seq());
      }
      lk.unlock();
      for (auto& [kind, k, v, seq] : due) {
        c.refreshed++;
        put_record(kind, k, v, false, seq, retry_on_failure(kind, k, {}));
      }
      lk.lock();
    }
  }

  // Verifies records fetched for (one of `kinds`, key), updates replay state and counters, and
  // returns the newest valid record per signer and kind (tombstones dropped).
  std::vector<Record> accept(const std::vector<RecordKind>& kinds, const Bytes& rkey,
                             const std::vector<std::shared_ptr<dht::Value>>& values) {
    Clock::time_point t = now();
    std::set<Bytes> distinct;
    std::vector<Record> valid;
    for (const auto& v : values) {
      if (!v || v->type != defaults::kValueTypeId) continue;
      if (!distinct.insert(v->data).second) continue;  // same bytes from several storers
      auto rec = decode_record(v->data);
      if (!rec.ok()) {
        c.malformed++;
        continue;
      }
      Verdict verdict = verify_record(*rec, t, cfg.record_ttl + cfg.max_clock_skew);
      if (verdict == Verdict::kValid &&
          (std::find(kinds.begin(), kinds.end(), rec->kind) == kinds.end() || rec->key != rkey))
        verdict = Verdict::kForged;  // a genuine record replanted under another key
      if (verdict == Verdict::kForged) {
        c.forged++;
        continue;
      }
      if (verdict == Verdict::kExpired) {
        c.expired++;
        continue;
      }
      valid.push_back(std::move(*rec));
    }
    // Replay: anything older than the newest sequence seen (now or before) for its signer.
    std::lock_guard lk(mu);
    for (const auto& r : valid) {
      auto& s = seen[{key_string(r.kind, rkey), r.peer_id}];
      s = std::max(s, r.seq);
    }
    if (seen.size() > defaults::kMaxSeenSequences) seen.clear();  // bound memory; lose history
    std::map<std::pair<Bytes, RecordKind>, Record> newest;
    for (auto& r : valid) {
      if (r.seq < seen[{key_string(r.kind, rkey), r.peer_id}]) {
        c.replayed++;
        continue;
      }
      std::pair<Bytes, RecordKind> who{r.peer_id, r.kind};
      auto it = newest.find(who);
      if (it == newest.end() || it->second.seq < r.seq) newest[who] = std::move(r);
    }
    std::vector<Record> out;
    for (auto& [_, r] : newest) {
      if (r.withdrawn) {
        c.withdrawn++;
        continue;
      }
      c.valid++;
      out.push_back(std::move(r));
    }
    return out;
  }

  void lookup(std::vector<RecordKind> kinds, const Bytes& rkey,
              std::function<void(Status, std::vector<Record>)> done) {
    struct State {
      std::mutex mu;
      std::vector<std::shared_ptr<dht::Value>> values;
    };
    auto st = std::make_shared<State>();
    Bytes dk = dht_key(storage_kind(kinds.front()), rkey);
    c.lookups++;
    runner.get(
        dht::InfoHash(dk.data(), dk.size()),
        [st](const std::vector<std::shared_ptr<dht::Value>>& vals) {
          std::lock_guard lk(st->mu);
          for (const auto& v : vals) {
            if (st->values.size() >= 4096) return false;  // a flood: stop the lookup
            st->values.push_back(v);
          }
          return true;
        },
        [this, st, kinds, rkey, done](bool ok, const std::vector<std::shared_ptr<dht::Node>>&) {
          std::vector<std::shared_ptr<dht::Value>> vals;
          {
            std::lock_guard lk(st->mu);
            vals.swap(st->values);
          }
          auto recs = accept(kinds, rkey, vals);
          if (!ok && recs.empty())
            done(Status::unavailable("DHT lookup failed (not connected to the DHT?)"), {});
          else
            done(Status::ok(), std::move(recs));
        },
        dht::Value::TypeFilter(defaults::kValueTypeId));
  }

  std::optional<std::chrono::microseconds> rtt_of(const identity::PeerId& id) {
    RttLookup l;
    {
      std::lock_guard lk(mu);
      l = rtt;
    }
    return l ? l(id) : std::nullopt;
  }

  PeerInfo info_of(const Record& r) {
    auto id = identity::PeerId::from_bytes(r.peer_id);  // verified already
    PeerInfo p{*id, {}, std::nullopt};
    if (auto a = decode_addrs(r.value); a.ok()) p.addrs = std::move(*a);
    p.rtt = rtt_of(p.id);
    return p;
  }

  // The peers a verified kRelayed record names (not this node), each at its circuit
  // addresses. A record whose value does not parse, or that claims a peer it cannot relay for
  // (an address not through its signer, or the signer itself), is refused whole and counted.
  std::vector<PeerInfo> relayed_of(const Record& r) {
    auto relay = identity::PeerId::from_bytes(r.peer_id);  // verified already
    auto peers = decode_relayed(r.value);
    Status ok = peers.ok() ? check_relayed(*relay, *peers) : peers.status();
    if (!ok.is_ok()) {
      c.relayed_refused++;
      return {};
    }
    std::vector<PeerInfo> out;
    for (auto& p : *peers)
      if (p.id != self) out.push_back({p.id, std::move(p.addrs), rtt_of(p.id)});
    return out;
  }
};

DhtRouting::DhtRouting(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

DhtRouting::~DhtRouting() {
  shutdown(true);
}

Result<std::unique_ptr<DhtRouting>> DhtRouting::start(identity::KeyPair key, RoutingConfig config) {
  if (config.record_ttl < std::chrono::seconds(1))
    return Status::invalid_argument("routing record_ttl must be at least 1 s");
  if (!(config.refresh_fraction > 0.0 && config.refresh_fraction < 1.0))
    return Status::invalid_argument("routing refresh_fraction must be in (0, 1)");
  if (!(config.put_rate_per_second > 0.0) || config.put_burst < 1.0)
    return Status::invalid_argument("routing put rate must be > 0 and burst >= 1");
  if (config.addresses.size() > defaults::kMaxAddresses)
    return Status::invalid_argument("at most " + std::to_string(defaults::kMaxAddresses) +
                                    " addresses can be published");
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(config.port);
  if (inet_pton(AF_INET, config.listen_address.c_str(), &sin.sin_addr) != 1)
    return Status::invalid_argument("routing listen_address '" + config.listen_address +
                                    "' is not an IPv4 address");
  std::vector<dht::SockAddr> boot;
  for (const auto& b : config.bootstrap) {
    IDN_ASSIGN_OR_RETURN(auto a, parse_host_port(b));
    boot.push_back(a);
  }

  auto impl = std::make_unique<Impl>(std::move(key), std::move(config));
  Impl* p = impl.get();
  // OpenDHT re-announces a value some seconds before its type's expiration and fails puts of
  // types that expire sooner than that margin, so its storage lifetime has a floor; readers
  // enforce the (possibly shorter) expiry signed into each record.
  const auto ttl = std::max<std::chrono::steady_clock::duration>(
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(p->cfg.record_ttl),
      std::chrono::minutes(2));
  // Storage-side checks (cheap: no signature verification, readers do that): per-peer rate
  // limit, size and parse; a stored record is only replaced by the same signer's newer one.
  dht::ValueType type(
      defaults::kValueTypeId, "idn-record", std::chrono::duration_cast<dht::duration>(ttl),
      [p](dht::InfoHash, std::shared_ptr<dht::Value>& v, const dht::InfoHash&,
          const dht::SockAddr& from) {
        if (from && !p->limiter.allow(from.toString())) {
          p->c.rate_limited++;
          return false;
        }
        if (!v || v->data.size() > defaults::kMaxRecordSize || !decode_record(v->data).ok()) {
          p->c.rejected++;
          return false;
        }
        return true;
      },
      [p](dht::InfoHash, const std::shared_ptr<dht::Value>& old_v,
          std::shared_ptr<dht::Value>& new_v, const dht::InfoHash&, const dht::SockAddr& from) {
        if (from && !p->limiter.allow(from.toString())) {
          p->c.rate_limited++;
          return false;
        }
        if (!new_v || !old_v) return false;
        auto o = decode_record(old_v->data);
        auto n = decode_record(new_v->data);
        if (!n.ok() || (o.ok() && (o->peer_id != n->peer_id || n->seq <= o->seq))) {
          p->c.rejected++;
          return false;
        }
        return true;
      });

  dht::DhtRunner::Config rc;
  rc.dht_config.node_config.network = p->cfg.network_id;
  rc.dht_config.node_config.maintain_storage = false;
  rc.threaded = true;
  rc.peer_discovery = p->cfg.lan_discovery;
  rc.peer_publish = p->cfg.lan_discovery;
  dht::DhtRunner::Context ctx;
  ctx.statusChangedCallback = [p](dht::NodeStatus v4, dht::NodeStatus v6) {
    {
      std::lock_guard lk(p->mu);
      p->connected = v4 == dht::NodeStatus::Connected || v6 == dht::NodeStatus::Connected;
    }
    p->cv.notify_all();
  };
  try {
    ctx.sock = std::make_unique<dht::net::UdpSocket>(
        dht::SockAddr(reinterpret_cast<const sockaddr*>(&sin), sizeof sin), dht::SockAddr{});
    p->runner.run(rc, std::move(ctx));
  } catch (const std::exception& e) {
    return Status::io_error("cannot start the DHT on " + p->cfg.listen_address + ":" +
                            std::to_string(p->cfg.port) + ": " + e.what());
  }
  p->runner.registerType(type);
  for (auto& b : boot) p->runner.bootstrap(b);
  p->refresher = std::thread([p] { p->refresh_loop(); });
  // The peer record: a put before the DHT is connected is retried by the refresher.
  if (!p->cfg.addresses.empty()) p->publish(RecordKind::kPeer, p->self.bytes(), {}, {});
  return std::unique_ptr<DhtRouting>(new DhtRouting(std::move(impl)));
}

void DhtRouting::shutdown(bool withdraw) {
  Impl& m = *impl_;
  std::vector<std::pair<RecordKind, Bytes>> mine;
  {
    std::lock_guard lk(m.mu);
    if (m.stopped) return;
    m.stopped = true;
    m.stopping = true;
    for (auto& [_, pub] : m.pubs) mine.emplace_back(pub.kind, pub.key);
  }
  m.cv.notify_all();
  if (m.refresher.joinable()) m.refresher.join();
  if (withdraw && !mine.empty()) {
    struct Wait {
      std::mutex mu;
      std::condition_variable cv;
      size_t left;
    };
    auto w = std::make_shared<Wait>();
    w->left = mine.size();
    for (auto& [kind, k] : mine) {
      uint64_t seq;
      {
        std::lock_guard lk(m.mu);
        seq = m.next_seq();
      }
      m.put_record(kind, k, {}, true, seq, [w](Status) {
        std::lock_guard lk(w->mu);
        if (--w->left == 0) w->cv.notify_all();
      });
    }
    std::unique_lock lk(w->mu);
    w->cv.wait_for(lk, std::chrono::seconds(5), [&] { return w->left == 0; });
  }
  m.runner.shutdown({}, true);
  m.runner.join();
}

void DhtRouting::find_peer(const identity::PeerId& id, Callback<PeerInfo> cb) {
  impl_->lookup({RecordKind::kPeer}, id.bytes(), [this, id, cb](Status s, std::vector<Record> rs) {
    if (!s.is_ok()) return cb(s);
    for (const auto& r : rs)
      if (r.peer_id == id.bytes()) return cb(impl_->info_of(r));
    cb(Status::not_found("no valid address record for peer " + id.to_base58() + " in the DHT"));
  });
}

void DhtRouting::provide(const core::Multihash& key, DoneCallback cb) {
  impl_->publish(RecordKind::kProvider, key.bytes(), {}, std::move(cb));
}

void DhtRouting::find_providers(const core::Multihash& key, size_t n,
                                Callback<std::vector<PeerInfo>> cb) {
  impl_->lookup({RecordKind::kProvider, RecordKind::kRelayed}, key.bytes(),
                [this, n, cb](Status s, std::vector<Record> rs) {
                  if (!s.is_ok()) return cb(s);
                  std::vector<PeerInfo> out;
                  // A peer named by itself and by relays (or by several relays) comes once, its own
                  // addresses first.
                  auto add = [&](PeerInfo p) {
                    for (auto& q : out) {
                      if (q.id != p.id) continue;
                      for (auto& a : p.addrs)
                        if (std::find(q.addrs.begin(), q.addrs.end(), a) == q.addrs.end())
                          q.addrs.push_back(std::move(a));
                      return;
                    }
                    out.push_back(std::move(p));
                  };
                  for (const auto& r : rs)
                    if (r.kind == RecordKind::kProvider) add(impl_->info_of(r));
                  for (const auto& r : rs)
                    if (r.kind == RecordKind::kRelayed)
                      for (auto& p : impl_->relayed_of(r)) add(std::move(p));
                  std::stable_sort(out.begin(), out.end(),
                                   [](const PeerInfo& a, const PeerInfo& b) {
                                     if (a.rtt.has_value() != b.rtt.has_value())
                                       return a.rtt.has_value();
                                     if (a.rtt && *a.rtt != *b.rtt) return *a.rtt < *b.rtt;
                                     return a.id < b.id;
                                   });
                  if (out.size() > n)
                    out.erase(out.begin() + static_cast<std::ptrdiff_t>(n), out.end());
                  cb(std::move(out));
                });
}

void DhtRouting::get_value(const core::Multihash& key, Callback<Bytes> cb) {
  impl_->lookup({RecordKind::kValue}, key.bytes(), [key, cb](Status s, std::vector<Record> rs) {
    if (!s.is_ok()) return cb(s);
    const Record* best = nullptr;
    for (const auto& r : rs)
      if (!best || r.seq > best->seq) best = &r;
    if (!best) return cb(Status::not_found("no valid value at " + key.to_base58() + " in the DHT"));
    cb(best->value);
  });
}

void DhtRouting::set_value(const core::Multihash& key, ByteView value, DoneCallback cb) {
  if (value.size() > defaults::kMaxValueSize) {
    if (cb)
      cb(Status::invalid_argument("value of " + std::to_string(value.size()) +
                                  " bytes exceeds the DHT value limit of " +
                                  std::to_string(defaults::kMaxValueSize)));
    return;
  }
  impl_->publish(RecordKind::kValue, key.bytes(), Bytes(value.begin(), value.end()), std::move(cb));
}

void DhtRouting::withdraw(const core::Multihash& key, DoneCallback cb) {
  impl_->unpublish(RecordKind::kProvider, key.bytes(), std::move(cb));
}

void DhtRouting::provide_relayed(const core::Multihash& key, std::vector<RelayedPeer> peers,
                                 DoneCallback cb) {
  if (peers.empty()) {
    impl_->unpublish(RecordKind::kRelayed, key.bytes(), [cb](Status s) {
      if (cb) cb(s.code() == Code::kNotFound ? Status::ok() : s);
    });
    return;
  }
  Status ok = check_relayed(impl_->self, peers);
  if (!ok.is_ok()) {
    if (cb) cb(Status::invalid_argument(ok.message()));
    return;
  }
  auto value = encode_relayed(peers);
  if (!value.ok()) {
    if (cb) cb(value.status());
    return;
  }
  impl_->publish(RecordKind::kRelayed, key.bytes(), std::move(*value), std::move(cb));
}

void DhtRouting::set_addresses(std::vector<core::Multiaddr> addrs, DoneCallback cb) {
  if (addrs.size() > defaults::kMaxAddresses) {
    if (cb) cb(Status::invalid_argument("too many addresses to publish"));
    return;
  }
  {
    std::lock_guard lk(impl_->mu);
    impl_->cfg.addresses = std::move(addrs);
    // Provider records carry the addresses too: refresh them at once.
    for (auto& [_, p] : impl_->pubs)
      if (p.kind == RecordKind::kProvider) p.next_refresh = std::chrono::steady_clock::now();
  }
  impl_->cv.notify_all();
  impl_->publish(RecordKind::kPeer, impl_->self.bytes(), {}, std::move(cb));
}

void DhtRouting::set_rtt_lookup(RttLookup lookup) {
  std::lock_guard lk(impl_->mu);
  impl_->rtt = std::move(lookup);
}

Status DhtRouting::bootstrap(const std::string& host_port) {
  IDN_ASSIGN_OR_RETURN(auto a, parse_host_port(host_port));
  impl_->runner.bootstrap(a);
  return Status::ok();
}

Status DhtRouting::wait_connected(std::chrono::milliseconds timeout) {
  std::unique_lock lk(impl_->mu);
  if (impl_->cv.wait_for(lk, timeout, [&] { return impl_->connected; })) return Status::ok();
  return Status::timeout("DHT not connected after " + std::to_string(timeout.count()) +
                         " ms: check the bootstrap addresses and that UDP reaches them");
}

const identity::PeerId& DhtRouting::peer_id() const {
  return impl_->self;
}

uint16_t DhtRouting::port() const {
  return impl_->runner.getBoundPort(AF_INET);
}

std::string DhtRouting::endpoint() const {
  std::string host =
      impl_->cfg.listen_address == "0.0.0.0" ? "127.0.0.1" : impl_->cfg.listen_address;
  return host + ":" + std::to_string(port());
}

size_t DhtRouting::good_nodes() const {
  return impl_->runner.getNodesStats(AF_INET).good_nodes;
}

RoutingCounters DhtRouting::counters() const {
  const auto& c = impl_->c;
  RoutingCounters r;
  r.records_valid = c.valid;
  r.records_malformed = c.malformed;
  r.records_forged = c.forged;
  r.records_replayed = c.replayed;
  r.records_expired = c.expired;
  r.records_withdrawn = c.withdrawn;
  r.puts_rate_limited = c.rate_limited;
  r.puts_rejected = c.rejected;
  r.records_published = c.published;
  r.records_refreshed = c.refreshed;
  r.lookups = c.lookups;
  r.relayed_refused = c.relayed_refused;
  return r;
}

}  // namespace idn::routing
