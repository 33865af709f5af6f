#include "sim/computeswap_sim.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <unordered_set>
#include <variant>

#include "identity/keys.h"
#include "sim/event_queue.h"
#include "swap/swap.h"

namespace idn::sim {

std::string_view peer_kind_name(PeerKind k) {
  switch (k) {
    case PeerKind::kCooperator:
      return "cooperator";
    case PeerKind::kFreeloader:
      return "freeloader";
    case PeerKind::kLiar:
      return "liar";
  }
  return "?";
}

Status ComputeSwapScenario::validate() const {
  auto bad = [](std::string m) { return Status::invalid_argument("sim computeswap: " + m); };
  if (peers < 2 || peers > 1'000'000) return bad("peers must be 2..1000000");
  if (services < 1 || services > 100'000) return bad("services must be 1..100000");
  if (!(hours > 0 && hours <= 24 * 7)) return bad("hours must be in (0, 168]");
  if (!(freeloaders >= 0 && liars >= 0 && freeloaders + liars < 1))
    return bad("freeloaders and liars are shares >= 0 that leave some cooperators");
  if (!(zipf >= 0 && zipf <= 5)) return bad("zipf must be in [0, 5]");
  if (!(requests_per_peer_min > 0 && requests_per_peer_min <= 6000))
    return bad("requests per peer per minute must be in (0, 6000]");
  if (hosted_per_peer < 1 || hosted_per_peer > services)
    return bad("hosted per peer must be 1..services");
  if (candidates < 1 || candidates > 64) return bad("candidates must be 1..64");
  if (known_providers < candidates || known_providers > 1000)
    return bad("known providers must be candidates..1000");
  if (!(latency_ms >= 0 && latency_ms <= 10'000)) return bad("latency must be 0..10000 ms");
  if (!(service_mflops_min > 0 && service_mflops_max >= service_mflops_min))
    return bad("service costs need 0 < min <= max");
  if (!(peer_gflops > 0)) return bad("peer speed must be > 0");
  if (!(warmup_fraction >= 0 && warmup_fraction < 1)) return bad("warm-up must be in [0, 1)");
  if (!(tick_s > 0 && tick_s <= 3600)) return bad("tick must be in (0, 3600] s");
  return Status::ok();
}

namespace {

using namespace std::chrono_literals;

struct SimPeer {
  PeerKind kind = PeerKind::kCooperator;
  std::mt19937_64 rng;  // ComputeSwap's draws (p(r), challenges, list periods)
  std::unique_ptr<swap::ComputeSwap> swap;
  Bytes id;
  std::vector<uint32_t> hosted;
  std::unordered_set<uint32_t> connected;
};

// One request as it travels: who asks, for what, which providers it may still try.
struct Request {
  uint32_t requester = 0, service = 0;
  uint64_t id = 0;
  double ops = 0;
  std::vector<uint32_t> candidates;
};

class World {
 public:
  explicit World(const ComputeSwapScenario& s)
      : s_(s),
        q_(Time{} + 24h),
        clock_(q_, 1'800'000'000'000ull),
        rng_(s.seed),
        latency_(std::chrono::duration_cast<Duration>(
            std::chrono::duration<double, std::milli>(s.latency_ms))) {}

  Status init();
  ComputeSwapResult run();

 private:
  SimPeer& peer(uint32_t i) { return *peers_[i]; }
  uint32_t draw_service();
  void schedule_request(uint32_t r);
  void schedule_tick(uint32_t i, Duration first);
  void make_request(uint32_t r);
  void try_next(std::shared_ptr<Request> req, size_t i);
  void arrive(std::shared_ptr<Request> req, size_t i);
  void answer(std::shared_ptr<Request> req, size_t i);
  void connect(uint32_t a, uint32_t b);
  void disconnect(uint32_t a, uint32_t b);
  // Sends what peer `from`'s ComputeSwap asked for: each message arrives after the latency.
  void flush(uint32_t from);
  void receive(uint32_t from, uint32_t to, const swap::Action& a);
  KindCounts& count(uint32_t requester);

  ComputeSwapScenario s_;
  EventQueue q_;
  SimClock clock_;
  std::mt19937_64 rng_;
  Duration latency_;
  std::vector<std::unique_ptr<SimPeer>> peers_;
  std::map<Bytes, uint32_t, swap::BytesLess> index_;
  std::vector<Bytes> service_ids_;
  std::vector<double> service_ops_, zipf_cdf_;
  std::vector<std::vector<uint32_t>> providers_;                         // by service
  std::set<std::pair<uint32_t, uint32_t>> liar_answered_, liar_caught_;  // (liar, requester)
  uint64_t next_id_ = 1;
  ComputeSwapResult out_;
};

Status World::init() {
  IDN_RETURN_IF_ERROR(s_.validate());
  // Services: Zipf popularity by index, a cost drawn log-uniformly.
  std::uniform_real_distribution<double> u01(0, 1);
  double total = 0;
  for (size_t k = 0; k < s_.services; ++k) {
    total += 1.0 / std::pow(double(k + 1), s_.zipf);
    zipf_cdf_.push_back(total);
    double lo = std::log(s_.service_mflops_min), hi = std::log(s_.service_mflops_max);
    service_ops_.push_back(std::round(std::exp(lo + (hi - lo) * u01(rng_)) * 1e6));
    Bytes id{0x12, 0x20};
    for (int b = 0; b < 32; ++b) id.push_back(uint8_t((k * 2654435761u) >> ((b % 4) * 8)) ^ b);
    service_ids_.push_back(std::move(id));
  }
  for (double& c : zipf_cdf_) c /= total;
  providers_.resize(s_.services);
  // Peers: kinds by share (freeloaders, then liars, then cooperators), keys from the seed.
  const size_t nf = size_t(std::llround(s_.freeloaders * double(s_.peers)));
  const size_t nl = size_t(std::llround(s_.liars * double(s_.peers)));
  for (uint32_t i = 0; i < s_.peers; ++i) {
    auto p = std::make_unique<SimPeer>();
    p->kind = i < nf        ? PeerKind::kFreeloader
              : i < nf + nl ? PeerKind::kLiar
                            : PeerKind::kCooperator;
    p->rng.seed(rng_());
    Bytes seed(32);
    for (auto& b : seed) b = uint8_t(rng_());
    IDN_ASSIGN_OR_RETURN(auto key, identity::KeyPair::from_seed(seed));
    SimPeer* raw = p.get();
    auto uniform = [raw] { return std::uniform_real_distribution<double>(0, 1)(raw->rng); };
    IDN_ASSIGN_OR_RETURN(p->swap,
                         swap::ComputeSwap::open(s_.swap, key, ":memory:", clock_, uniform));
    p->id = p->swap->self();
    if (p->kind != PeerKind::kFreeloader) {
      std::set<uint32_t> hosted;
      for (size_t tries = 0; hosted.size() < s_.hosted_per_peer && tries < 1000; ++tries)
        hosted.insert(draw_service());
      for (uint32_t k : hosted) {
        p->hosted.push_back(k);
        providers_[k].push_back(i);
      }
      std::vector<Bytes> have;
      for (uint32_t k : p->hosted) have.push_back(service_ids_[k]);
      p->swap->set_have_list(std::move(have));
    }
    out_.peers[size_t(p->kind)]++;
    index_.emplace(p->id, i);
    peers_.push_back(std::move(p));
  }
  out_.minutes.resize(size_t(std::ceil(s_.hours * 60)));
  for (size_t m = 0; m < out_.minutes.size(); ++m) out_.minutes[m].minute = uint32_t(m);
  const auto tick = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s_.tick_s));
  for (uint32_t i = 0; i < s_.peers; ++i) {
    schedule_request(i);
    schedule_tick(i, tick * int64_t(i % 1000) / 1000);
  }
  return Status::ok();
}

uint32_t World::draw_service() {
  double x = std::uniform_real_distribution<double>(0, 1)(rng_);
  auto it = std::lower_bound(zipf_cdf_.begin(), zipf_cdf_.end(), x);
  return uint32_t(std::min<size_t>(size_t(it - zipf_cdf_.begin()), s_.services - 1));
}

void World::schedule_request(uint32_t r) {
  std::exponential_distribution<double> gap(s_.requests_per_peer_min / 60.0);
  q_.after(std::chrono::duration_cast<Duration>(std::chrono::duration<double>(gap(rng_))),
           [this, r] {
             make_request(r);
             schedule_request(r);
           });
}

void World::schedule_tick(uint32_t i, Duration first) {
  q_.after(first, [this, i] {
    SimPeer& p = peer(i);
    p.swap->tick();
    (void)p.swap->ledgers().commit();
    flush(i);
    schedule_tick(i,
                  std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s_.tick_s)));
  });
}

KindCounts& World::count(uint32_t requester) {
  size_t m = size_t((q_.now() - q_.start()) / 1min);
  m = std::min(m, out_.minutes.size() - 1);
  return out_.minutes[m].kinds[size_t(peer(requester).kind)];
}

void World::make_request(uint32_t r) {
  auto req = std::make_shared<Request>();
  req->requester = r;
  req->service = draw_service();
  req->id = next_id_++;
  req->ops = service_ops_[req->service];
  count(r).requests++;
  // The providers this requester knows for the service: up to `known_providers`, the same
  // ones every time (a node caches the providers its DHT lookup returned). It asks up to
  // `candidates` of them in its order of preference (§7.5.2: the peers it owes least first;
  // those that ignore it, or that it shuns, left out).
  std::vector<uint32_t> pool;
  for (uint32_t p : providers_[req->service])
    if (p != r) pool.push_back(p);
  std::mt19937_64 known(s_.seed ^ (uint64_t(r) << 32) ^
                        (uint64_t(req->service) * 0x9e3779b97f4a7c15ull));
  for (size_t i = 0; i < pool.size() && i < s_.known_providers; ++i) {
    size_t j = i + size_t(std::uniform_int_distribution<size_t>(0, pool.size() - 1 - i)(known));
    std::swap(pool[i], pool[j]);
  }
  pool.resize(std::min(pool.size(), s_.known_providers));
  std::vector<std::pair<double, uint32_t>> scored;
  for (uint32_t p : pool)
    if (auto score = peer(r).swap->provider_score(peer(p).id)) scored.emplace_back(*score, p);
  std::stable_sort(scored.begin(), scored.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (const auto& [score, p] : scored) {
    if (req->candidates.size() == s_.candidates) break;
    req->candidates.push_back(p);
  }
  try_next(std::move(req), 0);
}

void World::try_next(std::shared_ptr<Request> req, size_t i) {
  if (i >= req->candidates.size()) {
    count(req->requester).unserved++;
    return;
  }
  connect(req->requester, req->candidates[i]);
  q_.after(latency_, [this, req, i] { arrive(req, i); });
}

void World::arrive(std::shared_ptr<Request> req, size_t i) {
  const uint32_t r = req->requester, p = req->candidates[i];
  SimPeer& P = peer(p);
  if (!P.connected.count(r)) return try_next(req, i + 1);  // closed meanwhile
  swap::Admit a = P.swap->on_request(peer(r).id, service_ids_[req->service], req->id);
  flush(p);
  if (!a.serve) {
    q_.after(latency_, [this, req, i, r, p] {
      count(r).refusals++;
      peer(r).swap->on_refused_by(peer(p).id);
      flush(r);
      try_next(req, i + 1);
    });
    return;
  }
  auto busy = std::chrono::duration_cast<Duration>(
      std::chrono::duration<double>(req->ops / (s_.peer_gflops * 1e9)));
  q_.after(busy, [this, req, i, r, p] {
    (void)peer(p).swap->on_answered(peer(r).id, req->id, service_ids_[req->service],
                                    uint64_t(req->ops));
    flush(p);
    q_.after(latency_, [this, req, i] { answer(req, i); });
  });
}

void World::answer(std::shared_ptr<Request> req, size_t i) {
  const uint32_t r = req->requester, p = req->candidates[i];
  SimPeer& R = peer(r);
  const bool wrong = peer(p).kind == PeerKind::kLiar;
  if (wrong) liar_answered_.emplace(p, r);
  if (R.swap->should_challenge()) {
    R.swap->on_challenge_result(peer(p).id, !wrong);
    flush(r);
    if (wrong) {
      liar_caught_.emplace(p, r);
      count(r).caught++;
      return try_next(req, i + 1);
    }
  }
  KindCounts& c = count(r);
  c.answered++;
  c.ops += uint64_t(req->ops);
  protocol::Receipt rc =
      R.swap->make_receipt(peer(p).id, req->id, service_ids_[req->service], uint64_t(req->ops));
  (void)R.swap->on_receipt(peer(p).id, rc);
  flush(r);
  q_.after(latency_, [this, r, p, rc] {
    if (!peer(p).connected.count(r)) return;  // settled at the next Open
    (void)peer(p).swap->on_receipt(peer(r).id, rc);
    flush(p);
  });
}

void World::connect(uint32_t a, uint32_t b) {
  if (peer(a).connected.count(b)) return;
  if (peer(a).swap->is_blacklisted(peer(b).id) || peer(b).swap->is_blacklisted(peer(a).id)) return;
  peer(a).connected.insert(b);
  peer(b).connected.insert(a);
  peer(a).swap->on_connected(peer(b).id);
  peer(b).swap->on_connected(peer(a).id);
  flush(a);
  flush(b);
}

void World::disconnect(uint32_t a, uint32_t b) {
  if (!peer(a).connected.erase(b)) return;
  peer(b).connected.erase(a);
  peer(a).swap->on_disconnected(peer(b).id);
  peer(b).swap->on_disconnected(peer(a).id);
  flush(a);
  flush(b);
}

void World::flush(uint32_t from) {
  for (auto& action : peer(from).swap->take_actions()) {
    const Bytes& to_id = std::visit([](const auto& x) -> const Bytes& { return x.peer; }, action);
    auto it = index_.find(to_id);
    if (it == index_.end()) continue;
    const uint32_t to = it->second;
    if (std::holds_alternative<swap::Disconnect>(action)) {
      disconnect(from, to);
      continue;
    }
    q_.after(latency_, [this, from, to, a = std::move(action)] { receive(from, to, a); });
  }
}

void World::receive(uint32_t from, uint32_t to, const swap::Action& action) {
  SimPeer& P = peer(to);
  if (!P.connected.count(from)) return;  // the connection closed in flight
  const Bytes& id = peer(from).id;
  if (!P.swap->accept_message(id)) return flush(to);
  std::visit(
      [&](const auto& a) {
        using T = std::decay_t<decltype(a)>;
        if constexpr (std::is_same_v<T, swap::SendSwap>) {
          std::visit(
              [&](const auto& m) {
                using M = std::decay_t<decltype(m)>;
                if constexpr (std::is_same_v<M, protocol::SwapOpen>) {
                  P.swap->on_open(id, m);
                } else if constexpr (std::is_same_v<M, protocol::NeedList>) {
                  P.swap->on_need_list(id, m);
                } else if constexpr (std::is_same_v<M, protocol::HaveList>) {
                  P.swap->on_have_list(id, m);
                } else if constexpr (std::is_same_v<M, protocol::SwapClose>) {
                  P.swap->on_close(id, m.final);
                }
              },
              a.message);
        } else if constexpr (std::is_same_v<T, swap::SendCheckpoint>) {
          (void)P.swap->on_checkpoint(id, a.checkpoint);
        } else if constexpr (std::is_same_v<T, swap::SendEvidence>) {
          (void)P.swap->on_evidence(id, a.evidence);
        }
      },
      action);
  flush(to);
}

ComputeSwapResult World::run() {
  const auto end = q_.start() + std::chrono::duration_cast<Duration>(
                                    std::chrono::duration<double>(s_.hours * 3600));
  out_.events = q_.run_until(end);
  const size_t warm = size_t(std::floor(double(out_.minutes.size()) * s_.warmup_fraction));
  uint64_t ops_all = 0;
  for (size_t m = 0; m < out_.minutes.size(); ++m) {
    for (size_t k = 0; k < kPeerKinds; ++k) {
      const KindCounts& c = out_.minutes[m].kinds[k];
      for (auto* t : {&out_.total[k], m >= warm ? &out_.after_warmup[k] : nullptr}) {
        if (!t) continue;
        t->requests += c.requests;
        t->answered += c.answered;
        t->refusals += c.refusals;
        t->unserved += c.unserved;
        t->caught += c.caught;
        t->ops += c.ops;
      }
    }
  }
  for (size_t k = 0; k < kPeerKinds; ++k) {
    const KindCounts& a = out_.after_warmup[k];
    ops_all += a.ops;
    out_.served_rate[k] = a.requests ? double(a.answered) / double(a.requests) : 0;
  }
  out_.freeloader_work_share =
      ops_all ? double(out_.after_warmup[size_t(PeerKind::kFreeloader)].ops) / double(ops_all) : 0;
  out_.liars_caught =
      liar_answered_.empty() ? 0 : double(liar_caught_.size()) / double(liar_answered_.size());
  return std::move(out_);
}

}  // namespace

Result<ComputeSwapResult> run_computeswap_sim(const ComputeSwapScenario& s) {
  World w(s);
  IDN_RETURN_IF_ERROR(w.init());
  return w.run();
}

Status write_minutes_csv(const ComputeSwapResult& r, const std::filesystem::path& path) {
  std::ofstream f(path);
  if (!f) return Status::io_error("cannot write " + path.string());
  f << "minute,kind,requests,answered,refusals,unserved,caught,ops\n";
  for (const auto& row : r.minutes) {
    for (size_t k = 0; k < kPeerKinds; ++k) {
      const KindCounts& c = row.kinds[k];
      f << row.minute << ',' << peer_kind_name(PeerKind(k)) << ',' << c.requests << ','
        << c.answered << ',' << c.refusals << ',' << c.unserved << ',' << c.caught << ',' << c.ops
        << '\n';
    }
  }
  f.flush();
  if (!f) return Status::io_error("writing " + path.string() + " failed");
  return Status::ok();
}

}  // namespace idn::sim
