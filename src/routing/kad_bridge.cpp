#include "routing/kad_bridge.h"

#include <spdlog/spdlog.h>

#include "p2p/connection.h"
#include "p2p/host.h"
#include "p2p/protobuf_lite.h"

namespace idn::routing {

namespace pb = p2p::pb;

namespace {

void append_peer(uint32_t field, const KadPeer& p, Bytes& out) {
  Bytes inner;
  pb::append_bytes_field(1, p.id, inner);
  for (const auto& a : p.addrs) pb::append_bytes_field(2, a, inner);
  if (p.connection != 0) pb::append_varint_field(3, p.connection, inner);
  pb::append_bytes_field(field, inner, out);
}

Result<KadPeer> decode_peer(ByteView bytes) {
  KadPeer p;
  bool has_id = false;
  Status st = pb::for_each_field(bytes, [&](const pb::Field& f) -> Status {
    if (f.number == 1 && f.wire_type == 2) {
      p.id.assign(f.bytes.begin(), f.bytes.end());
      has_id = true;
    } else if (f.number == 2 && f.wire_type == 2) {
      if (p.addrs.size() >= kMaxKadPeers)
        return Status::invalid_argument("kad: too many addresses for one peer");
      p.addrs.emplace_back(f.bytes.begin(), f.bytes.end());
    } else if (f.number == 3 && f.wire_type == 0) {
      if (f.varint > 3) return Status::invalid_argument("kad: unknown connection type");
      p.connection = static_cast<uint32_t>(f.varint);
    }
    return Status::ok();
  });
  if (!st.is_ok()) return st;
  if (!has_id || p.id.empty()) return Status::invalid_argument("kad: a peer without an ID");
  return p;
}

}  // namespace

Bytes encode_kad_message(const KadMessage& m) {
  Bytes out;
  if (m.type != KadType::kPutValue) pb::append_varint_field(1, static_cast<uint32_t>(m.type), out);
  if (!m.key.empty()) pb::append_bytes_field(2, m.key, out);
  if (!m.record.empty()) pb::append_bytes_field(3, m.record, out);
  for (const auto& p : m.closer) append_peer(8, p, out);
  for (const auto& p : m.providers) append_peer(9, p, out);
  // int32 on the wire: negative values are sign-extended to 64 bits.
  if (m.cluster_level != 0)
    pb::append_varint_field(10, static_cast<uint64_t>(static_cast<int64_t>(m.cluster_level)), out);
  return out;
}

Result<KadMessage> decode_kad_message(ByteView bytes) {
  KadMessage m;
  Status st = pb::for_each_field(bytes, [&](const pb::Field& f) -> Status {
    switch (f.number) {
      case 1:
        if (f.wire_type != 0) return Status::corruption("kad: type is not a varint");
        if (f.varint > static_cast<uint64_t>(KadType::kPing))
          return Status::invalid_argument("kad: unknown message type " + std::to_string(f.varint));
        m.type = static_cast<KadType>(f.varint);
        break;
      case 2:
        if (f.wire_type != 2) return Status::corruption("kad: key is not bytes");
        m.key.assign(f.bytes.begin(), f.bytes.end());
        break;
      case 3:
        if (f.wire_type != 2) return Status::corruption("kad: record is not bytes");
        m.record.assign(f.bytes.begin(), f.bytes.end());
        break;
      case 8:
      case 9: {
        if (f.wire_type != 2) return Status::corruption("kad: peer is not a message");
        auto& list = f.number == 8 ? m.closer : m.providers;
        if (list.size() >= kMaxKadPeers) return Status::invalid_argument("kad: too many peers");
        auto p = decode_peer(f.bytes);
        if (!p.ok()) return p.status();
        list.push_back(std::move(*p));
        break;
      }
      case 10:
        if (f.wire_type != 0) return Status::corruption("kad: clusterLevel is not a varint");
        m.cluster_level = static_cast<int32_t>(static_cast<int64_t>(f.varint));
        break;
      default:
        break;  // unknown fields are skipped
    }
    return Status::ok();
  });
  if (!st.is_ok()) return st;
  return m;
}

p2p::awaitable<std::optional<KadMessage>> answer_kad_request(const KadMessage& request,
                                                             const KadProviderLookup& lookup,
                                                             const p2p::Host* host,
                                                             size_t max_providers) {
  KadMessage reply;
  reply.type = request.type;
  reply.key = request.key;
  reply.cluster_level = request.cluster_level;
  switch (request.type) {
    case KadType::kPing:
    case KadType::kFindNode:
    case KadType::kGetValue:
      // Nothing closer: the client has no one else to ask through us, and we store no records.
      co_return reply;
    case KadType::kGetProviders: {
      auto key = core::Multihash::from_bytes(request.key);
      if (!key.ok() || !lookup) co_return reply;  // not a key anything is provided under
      auto found = co_await lookup(std::move(*key), max_providers);
      for (const auto& p : found) {
        if (reply.providers.size() >= max_providers) break;
        KadPeer kp;
        kp.id = p.id.bytes();
        for (const auto& a : p.addrs) {
          // The peer ID travels in `id`; addresses go without a trailing /p2p.
          kp.addrs.push_back(a.decapsulate(core::Protocol::kP2p).to_bytes());
        }
        kp.connection = host && host->is_connected(p.id) ? 1 : 0;
        reply.providers.push_back(std::move(kp));
      }
      co_return reply;
    }
    case KadType::kPutValue:
    case KadType::kAddProvider:
      break;
  }
  co_return std::nullopt;
}

struct KadBridge::State {
  KadProviderLookup lookup;
  KadAddProvider add_provider;
  KadBridgeConfig config;
  const p2p::Host* host = nullptr;
  KadBridgeStats stats;
  size_t lookups = 0;  // running now
};

namespace {

// Whether `m` announces `from` itself as a provider of a valid key, and the node takes it.
bool take_provider(KadBridge::State& state, const identity::PeerId& from, const KadMessage& m) {
  if (!state.add_provider || m.providers.empty()) return false;
  for (const auto& p : m.providers)
    if (p.id != from.bytes()) return false;  // announcing someone else
  auto key = core::Multihash::from_bytes(m.key);
  return key.ok() && state.add_provider(from, *key);
}

p2p::awaitable<void> serve_kad(std::shared_ptr<KadBridge::State> state,
                               std::shared_ptr<p2p::Stream> s) {
  for (size_t i = 0; i < state->config.max_requests_per_stream; ++i) {
    auto bytes = co_await p2p::read_length_prefixed(*s, kMaxKadMessage);
    if (!bytes.ok()) {
      if (bytes.status().code() == Code::kNotFound) {
        (void)co_await s->close_write();  // the client is done
      } else {
        ++state->stats.malformed;
        spdlog::debug("kad: stream from {}: {}", s->remote_peer().to_string(),
                      bytes.status().to_string());
        s->reset();
      }
      co_return;
    }
    auto request = decode_kad_message(*bytes);
    if (!request.ok()) {
      ++state->stats.malformed;
      spdlog::debug("kad: malformed request from {}: {}", s->remote_peer().to_string(),
                    request.status().to_string());
      s->reset();
      co_return;
    }
    if (request->type == KadType::kAddProvider) {
      if (!take_provider(*state, s->remote_peer(), *request)) {
        ++state->stats.refused;
        spdlog::debug("kad: ADD_PROVIDER from {} refused", s->remote_peer().to_string());
        s->reset();
        co_return;
      }
      ++state->stats.add_provider;
      continue;  // no answer
    }
    switch (request->type) {
      case KadType::kGetProviders:
        ++state->stats.get_providers;
        break;
      case KadType::kFindNode:
        ++state->stats.find_node;
        break;
      case KadType::kPing:
        ++state->stats.ping;
        break;
      case KadType::kGetValue:
        ++state->stats.get_value;
        break;
      default:
        ++state->stats.refused;
        break;
    }
    KadProviderLookup lookup = state->lookup;
    bool counted = false;
    if (request->type == KadType::kGetProviders) {
      if (state->lookups >= state->config.max_concurrent_lookups) {
        ++state->stats.busy;
        lookup = nullptr;  // answered with no providers
      } else {
        ++state->lookups;
        counted = true;
      }
    }
    auto reply =
        co_await answer_kad_request(*request, lookup, state->host, state->config.max_providers);
    if (counted) --state->lookups;
    if (!reply) {
      spdlog::debug("kad: refused request type {} from {}", static_cast<uint32_t>(request->type),
                    s->remote_peer().to_string());
      s->reset();
      co_return;
    }
    Status st = co_await p2p::write_length_prefixed(*s, encode_kad_message(*reply));
    if (!st.is_ok()) co_return;
  }
  (void)co_await s->close_write();
}

}  // namespace

KadBridge::KadBridge(p2p::Host& host, KadProviderLookup lookup, KadBridgeConfig config,
                     KadAddProvider add_provider)
    : host_(host), state_(std::make_shared<State>()) {
  state_->lookup = std::move(lookup);
  state_->add_provider = std::move(add_provider);
  state_->config = config;
  state_->host = &host;
}

KadBridge::~KadBridge() {
  detach();
}

void KadBridge::attach() {
  if (attached_) return;
  attached_ = true;
  host_.set_handler(std::string(kKadProtocolId),
                    [state = state_](std::shared_ptr<p2p::Stream> s) -> p2p::awaitable<void> {
                      return serve_kad(state, std::move(s));
                    });
}

void KadBridge::detach() {
  if (!attached_) return;
  attached_ = false;
  host_.remove_handler(std::string(kKadProtocolId));
}

KadBridgeStats KadBridge::stats() const {
  return state_->stats;
}

}  // namespace idn::routing
