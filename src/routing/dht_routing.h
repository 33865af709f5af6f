// Routing (§7.3) on OpenDHT's Kademlia DhtRunner, with IDN's Ed25519-signed record envelopes
// checked on every read: forged, tampered, replayed and expired records are ignored and
// counted. Provider / value / peer records are refreshed before they expire and withdrawn with
// a tombstone on clean shutdown. OpenDHT stays behind a pimpl so callers need not include it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/multiaddr.h"
#include "identity/keys.h"
#include "identity/peer_id.h"
#include "routing/defaults.h"
#include "routing/record.h"
#include "routing/routing.h"

namespace idn::routing {

using RttLookup = std::function<std::optional<std::chrono::microseconds>(const identity::PeerId&)>;

struct RoutingConfig {
  // UDP address the DHT binds; tests use 127.0.0.1 and port 0 (ephemeral).
  std::string listen_address = "0.0.0.0";
  uint16_t port = 0;
  // "host:port" of DHT nodes to join through.
  std::vector<std::string> bootstrap;
  // OpenDHT's local-network peer discovery (multicast): finds nearby nodes with no
  // configuration. Off unless asked for: it announces this node on the LAN.
  bool lan_discovery = false;
  Clock::duration record_ttl = defaults::kRecordTtl;
  double refresh_fraction = defaults::kRefreshFraction;
  Clock::duration max_clock_skew = defaults::kMaxClockSkew;
  double put_rate_per_second = defaults::kPutRatePerSecond;
  double put_burst = defaults::kPutBurst;
  std::chrono::milliseconds lookup_timeout =
      std::chrono::duration_cast<std::chrono::milliseconds>(defaults::kLookupTimeout);
  uint32_t network_id = defaults::kNetworkId;
  // This node's libp2p addresses, published in its peer record and provider records.
  std::vector<core::Multiaddr> addresses;
  // Wall clock for record expiry and sequence numbers; injectable for tests.
  std::function<Clock::time_point()> clock;
  // Measured round trip to a peer (the p2p Host's ping RTTs); orders findProviders results.
  RttLookup rtt_lookup;
};

// Counters exposed on /metrics (idn_routing_<name>_total).
struct RoutingCounters {
  uint64_t records_valid = 0;
  uint64_t records_malformed = 0;
  uint64_t records_forged = 0;    // bad key/peer-ID binding, bad signature (tampered), wrong key
  uint64_t records_replayed = 0;  // older sequence than one already seen
  uint64_t records_expired = 0;
  uint64_t records_withdrawn = 0;  // tombstones read
  uint64_t puts_rate_limited = 0;  // incoming puts refused by the per-peer rate limit
  uint64_t puts_rejected = 0;      // incoming puts refused as malformed, oversized or older
  uint64_t records_published = 0;  // our own puts, first and refreshed
  uint64_t records_refreshed = 0;
  uint64_t lookups = 0;  // our DHT gets (findProviders, findPeer, getValue)
  // Relayed-provider records refused by findProviders: a value that does not parse, or an
  // entry naming the relay itself or an address that is not a circuit through the relay.
  uint64_t relayed_refused = 0;
  // (name, value) pairs in a fixed order, for a metrics registry.
  std::vector<std::pair<std::string, uint64_t>> named() const;
};

class DhtRouting final : public Routing {
 public:
  // Binds, starts the DHT thread and bootstraps from config.bootstrap (does not wait for
  // connectivity: see wait_connected). Errors: InvalidArgument (bad config), IOError (bind).
  static Result<std::unique_ptr<DhtRouting>> start(identity::KeyPair key, RoutingConfig config);
  ~DhtRouting() override;  // shutdown(true)
  DhtRouting(const DhtRouting&) = delete;
  DhtRouting& operator=(const DhtRouting&) = delete;

  void find_peer(const identity::PeerId& id, Callback<PeerInfo> cb) override;
  void provide(const core::Multihash& key, DoneCallback cb) override;
  void find_providers(const core::Multihash& key, size_t n,
                      Callback<std::vector<PeerInfo>> cb) override;
  void get_value(const core::Multihash& key, Callback<Bytes> cb) override;
  void set_value(const core::Multihash& key, ByteView value, DoneCallback cb) override;

  // Stops providing `key`: stops refreshing and publishes a tombstone.
  void withdraw(const core::Multihash& key, DoneCallback cb);
  // Announces, as a relay, the peers holding a reservation here that provide `key`, each at
  // its circuit addresses through this node (record.h's kRelayed record, refreshed like a
  // provider record and replacing the previous list). findProviders returns them among the
  // key's providers. An empty list withdraws the record (a tombstone; ok when none was
  // published). Errors: InvalidArgument (over the bounds, or an address not through this node).
  void provide_relayed(const core::Multihash& key, std::vector<RelayedPeer> peers, DoneCallback cb);
  // Replaces this node's addresses and republishes its peer record (and provider records).
  void set_addresses(std::vector<core::Multiaddr> addrs, DoneCallback cb);
  void set_rtt_lookup(RttLookup lookup);
  // Adds a bootstrap node ("host:port"). Errors: InvalidArgument.
  Status bootstrap(const std::string& host_port);
  // Waits until the DHT reports itself connected (has good nodes). Errors: Timeout.
  Status wait_connected(std::chrono::milliseconds timeout);

  const identity::PeerId& peer_id() const;
  uint16_t port() const;
  std::string endpoint() const;  // "listen_address:port", usable as someone's bootstrap entry
  size_t good_nodes() const;     // DHT routing table size (good IPv4 nodes)
  RoutingCounters counters() const;

  // Clean stop: when `withdraw`, tombstones every record this node publishes and waits (up to
  // a few seconds) for them to be stored; then stops the DHT. Idempotent.
  void shutdown(bool withdraw = true);

  // The 20-byte OpenDHT key of a record (SHA-1 of kind || key): for tools and tests that put
  // raw envelopes. kRelayed records are stored under kProvider's key.
  static Bytes dht_key(RecordKind kind, ByteView key);
  // The OpenDHT value type id and value id IDN uses for a signer's record.
  static uint16_t value_type_id() { return defaults::kValueTypeId; }
  static uint64_t value_id(RecordKind kind, ByteView signer_peer_id);

  struct Impl;

 private:
  explicit DhtRouting(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace idn::routing
