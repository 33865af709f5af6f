// A kad-dht front (/ipfs/kad/1.0.0) on a node's Host, so that clients that speak only libp2p's
// standard DHT (a stock @libp2p/kad-dht in client mode: js-libp2p in Node or a browser) find a
// service's providers through a node they are connected to. IDN's own DHT is OpenDHT over UDP,
// which they cannot speak: GET_PROVIDERS is answered from the node's provider lookup,
// FIND_NODE and GET_VALUE with nothing closer (the client asks no one else), PING echoed;
// ADD_PROVIDER is taken only from a peer announcing itself (every provider in it is the
// stream's remote peer) and only when the node's KadAddProvider accepts it (a peer that holds a
// relay reservation here: p2p/relay.h); otherwise, and for PUT_VALUE, the stream is reset.
// The codec is pure.
// Threading: KadBridge lives on the Host's executor, like the Host.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "core/bytes.h"
#include "core/multihash.h"
#include "core/status.h"
#include "identity/peer_id.h"
#include "p2p/stream.h"
#include "routing/routing.h"

namespace idn::p2p {
class Host;
}

namespace idn::routing {

inline constexpr std::string_view kKadProtocolId = "/ipfs/kad/1.0.0";
// A request is a type and a key; answers carry up to max_providers peers of a few addresses.
inline constexpr size_t kMaxKadMessage = 64 * 1024;

// The libp2p kad-dht spec's Message.MessageType.
enum class KadType : uint32_t {
  kPutValue = 0,
  kGetValue = 1,
  kAddProvider = 2,
  kGetProviders = 3,
  kFindNode = 4,
  kPing = 5,
};

// The spec's Message.Peer: a peer ID (multihash bytes) and binary multiaddrs.
struct KadPeer {
  Bytes id;
  std::vector<Bytes> addrs;
  uint32_t connection = 0;  // 0 NOT_CONNECTED, 1 CONNECTED, 2 CAN_CONNECT, 3 CANNOT_CONNECT
};

// The spec's Message (field numbers: type 1, key 2, record 3, closerPeers 8, providerPeers 9,
// clusterLevelRaw 10). Unknown fields are skipped when decoding.
struct KadMessage {
  KadType type = KadType::kPutValue;
  Bytes key;
  Bytes record;  // opaque: this bridge never stores or returns records
  std::vector<KadPeer> closer;
  std::vector<KadPeer> providers;
  int32_t cluster_level = 0;
};

Bytes encode_kad_message(const KadMessage& m);
// Errors: Corruption (malformed protobuf), InvalidArgument (unknown type, a peer without an ID,
// more than kMaxKadPeers peers or addresses).
Result<KadMessage> decode_kad_message(ByteView bytes);
inline constexpr size_t kMaxKadPeers = 256;

// Up to `n` providers of `key` with their addresses (the node: itself when it hosts the
// service, connected peers whose have list names it, then its DHT's providers). Runs on the
// Host's executor.
using KadProviderLookup =
    std::function<p2p::awaitable<std::vector<PeerInfo>>(core::Multihash key, size_t n)>;

// A connected peer announced itself as a provider of `key` (ADD_PROVIDER, which gets no
// answer). Returns whether it was taken. Runs on the Host's executor.
using KadAddProvider =
    std::function<bool(const identity::PeerId& from, const core::Multihash& key)>;

struct KadBridgeConfig {
  size_t max_providers = 20;  // per answer (the spec's k)
  // Requests read on one stream before it is closed (clients send one per stream).
  size_t max_requests_per_stream = 64;
  // Provider lookups running at once (a lookup may wait for the DHT); a GET_PROVIDERS past
  // this is answered with no providers at once, so clients cannot pile lookups onto a node.
  size_t max_concurrent_lookups = 16;
};

struct KadBridgeStats {
  uint64_t get_providers = 0, find_node = 0, ping = 0, get_value = 0;
  uint64_t add_provider = 0;  // ADD_PROVIDER taken
  uint64_t refused = 0;       // PUT_VALUE, ADD_PROVIDER not taken
  uint64_t malformed = 0;     // streams reset for a malformed or oversized message
  uint64_t busy = 0;          // GET_PROVIDERS answered empty: max_concurrent_lookups were running
};

class KadBridge {
 public:
  KadBridge(p2p::Host& host, KadProviderLookup lookup, KadBridgeConfig config = {},
            KadAddProvider add_provider = {});
  ~KadBridge();  // detaches
  KadBridge(const KadBridge&) = delete;
  KadBridge& operator=(const KadBridge&) = delete;

  // Serves /ipfs/kad/1.0.0 on the host (identify then lists it); detach() stops. Streams in
  // flight finish on their own (they hold the bridge's state, not the bridge).
  void attach();
  void detach();
  KadBridgeStats stats() const;

  struct State;

 private:
  p2p::Host& host_;
  std::shared_ptr<State> state_;
  bool attached_ = false;
};

// The answer to one request, or nullopt for a request that gets none (refused). Exposed for
// tests; KadBridge calls it for every request it reads.
p2p::awaitable<std::optional<KadMessage>> answer_kad_request(const KadMessage& request,
                                                             const KadProviderLookup& lookup,
                                                             const p2p::Host* host,
                                                             size_t max_providers);

}  // namespace idn::routing
