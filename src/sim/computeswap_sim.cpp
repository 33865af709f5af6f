#include "sim/computeswap_sim.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <variant>

#include "identity/keys.h"
#include "ise/service_queue.h"
#include "sim/event_queue.h"
#include "swap/strategy.h"
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
  auto secs = [](double x, double hi) { return x > 0 && x <= hi; };
  if (peers < 2 || peers > 1'000'000) return bad("peers must be 2..1000000");
  if (services < 1 || services > 100'000) return bad("services must be 1..100000");
  if (!(hours > 0 && hours <= 24 * 7)) return bad("hours must be in (0, 168]");
  if (!(freeloaders >= 0 && liars >= 0 && freeloaders + liars < 1))
    return bad("freeloaders and liars are shares >= 0 that leave some cooperators");
  if (!(zipf >= 0 && zipf <= 5)) return bad("zipf must be in [0, 5]");
  if (!(requests_per_peer_min > 0 && requests_per_peer_min <= 6000))
    return bad("requests per peer per minute must be in (0, 6000]");
  if (k < 1 || (!script && k > services))  // a script's own services bound k below
    return bad("k (services hosted per peer) must be 1..services");
  if (publishers < 1 || publishers > 1000) return bad("publishers must be 1..1000");
  if (!(min_service_s >= 0 && min_service_s <= 24 * 3600))
    return bad("min service period (T_s) must be 0..86400 s");
  if (!secs(need_idle_s, 24 * 3600)) return bad("need idle must be in (0, 86400] s");
  if (!(keep_factor >= 1 && keep_factor <= 100)) return bad("keep factor must be in [1, 100]");
  if (!(init_s >= 0 && init_s <= 3600)) return bad("init time must be 0..3600 s");
  if (!secs(ise_tick_s, 3600)) return bad("ISE tick must be in (0, 3600] s");
  if (candidates < 1 || candidates > 64) return bad("candidates must be 1..64");
  if (known_providers < candidates || known_providers > 1000)
    return bad("known providers must be candidates..1000");
  if (!secs(provider_ttl_s, 24 * 3600)) return bad("provider TTL must be in (0, 86400] s");
  if (!(latency_ms >= 0 && latency_ms <= 10'000)) return bad("latency must be 0..10000 ms");
  if (!secs(dial_timeout_s, 600)) return bad("dial timeout must be in (0, 600] s");
  if (!secs(conn_idle_s, 24 * 3600)) return bad("connection idle time must be in (0, 86400] s");
  if (!(service_mflops_min > 0 && service_mflops_max >= service_mflops_min))
    return bad("service costs need 0 < min <= max");
  if (!(peer_gflops > 0)) return bad("peer speed must be > 0");
  if (!(churn >= 0 && churn <= 100)) return bad("churn must be 0..100 (leaves per peer-hour)");
  if (!secs(offline_min, 24 * 60)) return bad("offline time must be in (0, 1440] min");
  if (!(warmup_fraction >= 0 && warmup_fraction < 1)) return bad("warm-up must be in [0, 1)");
  if (!secs(tick_s, 3600)) return bad("tick must be in (0, 3600] s");
  if (!secs(commit_s, 3600)) return bad("commit period must be in (0, 3600] s");
  if (partitions > 64) return bad("partitions must be 0 (auto) or 1..64");
  if (partitions > 1 && latency_ms < 1)
    return bad("partitions > 1 need a latency of at least 1 ms (it is their lookahead)");
  if (threads > 64) return bad("threads must be 0 (auto) or 1..64");
  if (script) {
    const Script& sc = *script;
    if (sc.peers.size() < 2 || sc.peers.size() > 100'000)
      return bad("a script needs 2..100000 peers");
    if (sc.service_ops.empty() || sc.service_ops.size() > 100'000)
      return bad("a script needs 1..100000 services");
    for (double ops : sc.service_ops)
      if (!(ops >= 1 && ops <= 1e15)) return bad("a scripted service costs 1..1e15 operations");
    if (k > sc.service_ops.size()) return bad("k must not exceed the script's services");
    for (const ScriptedPeer& p : sc.peers)
      if (p.k > sc.service_ops.size()) return bad("a scripted peer's k exceeds the services");
    for (const ScriptedPeer& p : sc.peers)
      for (uint32_t svc : p.pinned)
        if (svc >= sc.service_ops.size()) return bad("a scripted peer pins an unknown service");
    for (const ScriptedRequest& r : sc.requests) {
      if (r.requester >= sc.peers.size() || r.service >= sc.service_ops.size())
        return bad("a scripted request names an unknown peer or service");
      if (!(r.at_s >= 0 && r.at_s <= hours * 3600))
        return bad("a scripted request falls outside the run");
    }
  }
  return Status::ok();
}

KindCounts& KindCounts::operator+=(const KindCounts& o) {
  requests += o.requests;
  answered += o.answered;
  local += o.local;
  refusals += o.refusals;
  unserved += o.unserved;
  stale += o.stale;
  caught += o.caught;
  ops += o.ops;
  return *this;
}

double sorted_quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  return sorted[std::min(sorted.size() - 1, size_t(q * double(sorted.size() - 1) + 0.5))];
}

double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  const size_t n = std::min(a.size(), b.size());
  if (n < 2) return 0;
  auto ranks = [n](const std::vector<double>& v) {
    std::vector<size_t> idx(n);
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](size_t x, size_t y) { return v[x] < v[y]; });
    std::vector<double> r(n);
    for (size_t i = 0; i < n;) {
      size_t j = i;
      while (j + 1 < n && v[idx[j + 1]] == v[idx[i]]) ++j;
      for (size_t t = i; t <= j; ++t) r[idx[t]] = double(i + j) / 2 + 1;  // mean rank of ties
      i = j + 1;
    }
    return r;
  };
  const std::vector<double> ra = ranks(a), rb = ranks(b);
  const double ma = std::accumulate(ra.begin(), ra.end(), 0.0) / double(n);
  const double mb = std::accumulate(rb.begin(), rb.end(), 0.0) / double(n);
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < n; ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0;
}

namespace {

using namespace std::chrono_literals;

Duration seconds(double s) {
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s));
}

// One request as it travels: who asks, for what, which providers it may still try. Made by the
// requester before it first leaves; read-only after (events of two partitions share it).
struct Request {
  uint32_t requester = 0, service = 0;
  uint64_t id = 0;
  uint32_t minute = 0;  // when it was made
  double ops = 0;
  std::vector<uint32_t> candidates;
};

// A requester's provider cache for one service: what the provider records said, and when.
struct Known {
  Time fetched{};
  std::vector<uint32_t> providers;
};

// A peer's side of its connections, each with the time it last carried work: tens at
// most here, kept in one array and scanned (contiguous entries cost less than a hash map's nodes,
// which every event touching the peer would miss in cache). Order is not kept: whoever
// iterates sorts what it takes.
class Connections {
 public:
  using Entry = std::pair<uint32_t, Time>;
  auto begin() const { return v_.begin(); }
  auto end() const { return v_.end(); }
  size_t count(uint32_t p) const { return find(p) != v_.end(); }
  // Adds p (last work at t) unless it is there.
  void emplace(uint32_t p, Time t) {
    if (!count(p)) v_.emplace_back(p, t);
  }
  // Work on the connection to p at t, if it is open.
  void worked(uint32_t p, Time t) {
    if (auto it = find(p); it != v_.end()) v_[size_t(it - v_.begin())].second = t;
  }
  size_t erase(uint32_t p) {
    auto it = find(p);
    if (it == v_.end()) return 0;
    v_[size_t(it - v_.begin())] = v_.back();
    v_.pop_back();
    return 1;
  }

 private:
  std::vector<Entry>::const_iterator find(uint32_t p) const {
    return std::find_if(v_.begin(), v_.end(), [p](const Entry& e) { return e.first == p; });
  }
  std::vector<Entry> v_;
};

struct SimPeer {
  PeerKind kind = PeerKind::kCooperator;
  std::mt19937_64 rng;    // ComputeSwap's draws (p(r), challenges, list periods)
  std::mt19937_64 draws;  // the world's draws for this peer: request times, services, lookups
  std::unique_ptr<swap::ComputeSwap> swap;
  Bytes id;
  std::unique_ptr<ise::ServiceQueue> queue;  // serving peers: the ISE
  std::vector<uint32_t> pinned;              // services it published
  bool auto_host = false;                    // its ISE chooses services (besides pinned)
  std::set<uint32_t> hosted, starting;
  // Its side of its connections: peer -> last request or answer on it.
  Connections connected;
  // Its own need list, with counts (need_idle set in init).
  ise::NeedLog needs{std::chrono::seconds(120)};
  std::unordered_map<uint32_t, Known> known;  // service -> providers it looked up
  bool online = true;
  uint32_t epoch = 0;  // bumped when it leaves: its pending ISE starts are void
  uint32_t requests_made = 0;
  Time busy_until{};  // serves one request at a time
  Time last_commit{};
};

// Peer IDs end in 32 bytes of public key: their last 8 bytes tell the peers apart (init
// checks), so the lookup on every message delivered hashes a number, not a vector.
uint64_t id_tail(ByteView id) {
  uint64_t h = 0;
  const size_t n = std::min<size_t>(id.size(), 8);
  std::memcpy(&h, id.data() + id.size() - n, n);
  return h;
}

// The (liar, requester) pairs: wrong answers until the first caught one.
struct LiarPair {
  uint32_t answers = 0;
  bool caught = false;
};

// A provider record that changed (a peer started or stopped hosting a service).
struct HostChange {
  uint32_t peer = 0, service = 0;
  bool hosts = false;
};

// Something for a peer of another partition, made during the current window.
struct Delivery {
  Time t;
  std::function<void()> fn;
};

// A share of the peers (peer i belongs to partition i % partitions) with its own event queue and
// clock, and the counts its peers make, summed at the end. Events of one partition touch only
// its own peers; what one peer does to another goes as a message at least one latency later.
struct Partition {
  Partition(Time start, uint64_t epoch_unix_ms, size_t partitions)
      : q(start), clock(q, epoch_unix_ms) {
    for (auto& o : outbox) o.resize(partitions);
  }
  EventQueue q;
  SimClock clock;
  // [window parity][destination partition]: what this window sends goes to outbox[its parity];
  // the destination takes it in the next window, while this one's sends fill the other half.
  std::array<std::vector<std::vector<Delivery>>, 2> outbox;
  std::vector<HostChange> host_changes;  // applied to the records at the window's end
  std::vector<MinuteRow> minutes;        // its requesters' outcomes
  std::vector<uint64_t> service_requests;
  std::map<std::pair<uint32_t, uint32_t>, LiarPair> liar_pairs;  // (liar, requester)
  std::unordered_set<uint64_t> pairs;  // (requester << 32 | provider) answered after warm-up
  uint64_t pair_answers = 0, ise_starts = 0, ise_stops = 0, leaves = 0, joins = 0, events = 0;
};

// Waits for all n threads; the last to arrive runs `last` (the work between windows) before it
// lets the others go. Spins a little first (a window is a few hundred microseconds of
// work at 10,000 peers), then sleeps on the generation counter (a futex). The last to arrive
// wakes sleepers only if there are any.
class Barrier {
 public:
  explicit Barrier(size_t n) : n_(uint32_t(n)) {}
  template <class F>
  void wait(F&& last) {
    const uint32_t gen = gen_.load();
    if (arrived_.fetch_add(1) + 1 == n_) {
      last();
      arrived_.store(0);
      gen_.store(gen + 1);
      if (sleepers_.load() > 0) gen_.notify_all();
      return;
    }
    // Spin a little, then yield (the thread we wait for may be waiting for this core), and
    // sleep only after ~1 ms: waking a sleeper costs tens of microseconds on a VM, and a window
    // at 10,000 peers is a few hundred. The clock is read every 64 turns.
    const auto start = std::chrono::steady_clock::now();
    for (uint32_t spin = 1;; ++spin) {
      if (gen_.load(std::memory_order_acquire) != gen) return;
      if (spin < 256) {
        __builtin_ia32_pause();
        continue;
      }
      std::this_thread::yield();
      if (spin % 64 == 0 && std::chrono::steady_clock::now() - start > 1ms) break;
    }
    sleepers_.fetch_add(1);
    while (gen_.load() == gen) gen_.wait(gen);
    sleepers_.fetch_sub(1);
  }

 private:
  const uint32_t n_;
  std::atomic<uint32_t> arrived_{0}, sleepers_{0}, gen_{0};
};

class World {
 public:
  explicit World(const ComputeSwapScenario& s)
      : s_(s),
        rng_(s.seed),
        latency_(std::chrono::duration_cast<Duration>(
            std::chrono::duration<double, std::milli>(s.latency_ms))) {}

  Status init();
  ComputeSwapResult run();

 private:
  SimPeer& peer(uint32_t i) { return *peers_[i]; }
  Partition& part(uint32_t i) { return *parts_[i % parts_.size()]; }
  Time now(uint32_t i) { return part(i).q.now(); }
  bool serving(uint32_t i) { return peer(i).kind != PeerKind::kFreeloader; }
  uint32_t draw_service(uint32_t i);
  std::unique_ptr<ise::ServiceQueue> new_queue(uint32_t i);
  // `fn` runs for peer `to` `delay` after peer `from`'s now; delay >= latency_ when they are in
  // different partitions (the window's lookahead).
  void send(uint32_t from, uint32_t to, Duration delay, std::function<void()> fn);
  void schedule_request(uint32_t r);
  void schedule_tick(uint32_t i, Duration first);
  void schedule_ise(uint32_t i, Duration first);
  void schedule_leave(uint32_t i);
  void make_request(uint32_t r, uint32_t service);
  const std::vector<uint32_t>& known(uint32_t r, uint32_t service);
  // At the requester: ask candidate i (the request travels with the dial).
  void try_next(std::shared_ptr<Request> req, size_t i);
  // At the provider.
  void arrive(std::shared_ptr<Request> req, size_t i);
  // At the requester.
  void answer(std::shared_ptr<Request> req, size_t i);
  // At p: a dial from r. p takes the connection (and tells r) unless it shuns r.
  bool accept(uint32_t p, uint32_t r);
  // At r: p took the connection.
  void accepted(uint32_t r, uint32_t p);
  // Both sides at once: only while building the world (a mesh).
  void connect_now(uint32_t a, uint32_t b);
  // a closes its side and tells b, who closes its own when the message arrives.
  void disconnect(uint32_t a, uint32_t b);
  bool drop(uint32_t a, uint32_t b);  // a's side only
  // Work on a's side of its connection to b (a request arrived, an answer came back).
  void worked(uint32_t a, uint32_t b);
  // The connection manager: drops peer i's connections without work for conn_idle_s.
  void close_idle_connections(uint32_t i);
  void ise_step(uint32_t i);
  void start_hosting(uint32_t i, uint32_t service);
  void stop_hosting(uint32_t i, uint32_t service);
  void publish_have_list(uint32_t i);
  // Service IDs in byte order (what ServiceQueue keeps), so a receiver's ISE can hold the
  // list its message carried without sorting a copy.
  std::vector<Bytes> id_list(std::vector<uint32_t> services) const;
  std::vector<Bytes> id_list(const std::set<uint32_t>& services) const {
    return id_list(std::vector<uint32_t>(services.begin(), services.end()));
  }
  void leave(uint32_t i);
  void join(uint32_t i);
  // Sends what peer `from`'s ComputeSwap asked for: one delivery per destination, after the
  // latency (a node writes them to one stream); closes connections it asked to close.
  void flush(uint32_t from);
  // Delivers `actions` (consumed: lists move on into the ISE queue).
  void receive(uint32_t from, uint32_t to, std::vector<swap::Action>& actions);
  // A request's outcomes count in the minute it was made (so answered <= requests per minute).
  KindCounts& count(uint32_t requester, uint32_t minute) {
    return part(requester).minutes[minute].kinds[size_t(peer(requester).kind)];
  }
  uint32_t minute(Time t) const {
    return uint32_t(std::min<size_t>(size_t((t - start_) / 1min), minutes_ - 1));
  }
  bool after_warmup(Time t) const { return t - start_ >= warmup_; }
  // Into partition p's queue, what the other partitions sent it in the window of this parity
  // (by the thread about to run p, before it does).
  void deliver_to(size_t p, uint32_t parity);
  // Between windows (one thread): provider records updated, hosts sampled.
  void apply_host_changes();
  void sample_hosts_until(Time t);

  ComputeSwapScenario s_;
  std::mt19937_64 rng_;  // building the world only
  Duration latency_, warmup_{}, window_{};
  Time start_ = Time{} + 24h;
  size_t minutes_ = 1, threads_ = 1;
  std::vector<std::unique_ptr<Partition>> parts_;
  std::vector<std::unique_ptr<SimPeer>> peers_;
  // The peer with this ID, if any.
  std::optional<uint32_t> find_peer(ByteView id) const {
    auto it = index_.find(id_tail(id));
    if (it == index_.end() || !std::ranges::equal(peers_[it->second]->id, id)) return std::nullopt;
    return it->second;
  }
  std::unordered_map<uint64_t, uint32_t> index_;  // id_tail(peer ID) -> peer
  std::vector<Bytes> service_ids_;
  std::vector<uint32_t> id_rank_;  // service index -> its ID's rank in byte order
  std::map<Bytes, uint32_t, swap::BytesLess> service_index_;
  std::vector<double> service_ops_, zipf_cdf_, popularity_;
  // The provider records: who hosts each service, as of the last window's end (a peer that
  // left has none). Read by every partition during a window, changed only between windows.
  std::vector<std::vector<uint32_t>> providers_;
  std::vector<double> hosts_sum_;
  uint32_t host_samples_ = 0;
  Time next_sample_{};
  uint32_t parity_ = 0;  // the current window's (which half of the outboxes it sends to)
  ComputeSwapResult out_;
};

Status World::init() {
  IDN_RETURN_IF_ERROR(s_.validate());
  const Script* script = s_.script ? &*s_.script : nullptr;
  if (script) {
    s_.peers = script->peers.size();
    s_.services = script->service_ops.size();
  }
  warmup_ = seconds(s_.hours * 3600 * s_.warmup_fraction);
  minutes_ = std::max<size_t>(1, size_t(std::ceil(s_.hours * 60)));
  // Partitions: the lookahead is the one-way latency, so several need one of at least 1 ms.
  const size_t nparts = s_.partitions ? s_.partitions : (s_.latency_ms >= 1 ? 16 : 1);
  window_ = std::max<Duration>(latency_, 1ms);
  for (size_t p = 0; p < nparts; ++p) {
    parts_.push_back(std::make_unique<Partition>(start_, 1'800'000'000'000ull, nparts));
    parts_.back()->minutes.resize(minutes_);
    for (size_t m = 0; m < minutes_; ++m) parts_.back()->minutes[m].minute = uint32_t(m);
    parts_.back()->service_requests.resize(s_.services);
  }
  // Auto: one thread below 2,000 peers, where a window holds too few events to be worth a
  // barrier (60 peers over 2 threads ran 90x slower on this 2-core machine while it built).
  threads_ = s_.threads        ? s_.threads
             : s_.peers < 2000 ? 1
                               : std::max<size_t>(1, std::thread::hardware_concurrency());
  threads_ = std::min(threads_, nparts);
  // Services: Zipf popularity by index, a cost drawn log-uniformly; a script's own costs, and
  // its requests' shares as the popularity.
  std::uniform_real_distribution<double> u01(0, 1);
  double total = 0;
  for (size_t k = 0; k < s_.services; ++k) {
    double w = 1.0 / std::pow(double(k + 1), s_.zipf);
    if (script)
      w = double(std::count_if(script->requests.begin(), script->requests.end(),
                               [k](const ScriptedRequest& r) { return r.service == k; }));
    total += w;
    popularity_.push_back(w);
    zipf_cdf_.push_back(total);
    double lo = std::log(s_.service_mflops_min), hi = std::log(s_.service_mflops_max);
    service_ops_.push_back(script ? script->service_ops[k]
                                  : std::round(std::exp(lo + (hi - lo) * u01(rng_)) * 1e6));
    Bytes id{0x12, 0x20};
    for (int b = 0; b < 32; ++b) id.push_back(uint8_t((k * 2654435761u) >> ((b % 4) * 8)) ^ b);
    service_index_.emplace(id, uint32_t(k));
    service_ids_.push_back(std::move(id));
  }
  id_rank_.resize(s_.services);
  {
    uint32_t rank = 0;
    for (const auto& [id, k] : service_index_) id_rank_[k] = rank++;  // a map: byte order
  }
  for (double& c : zipf_cdf_) c /= total > 0 ? total : 1;
  for (double& p : popularity_) p /= total > 0 ? total : 1;
  providers_.resize(s_.services);
  hosts_sum_.resize(s_.services);
  // Peers: kinds by share (freeloaders, then liars, then cooperators), keys and random streams
  // from the seed. Opening 10,000 ledger databases is a few seconds: the threads share it.
  const size_t nf = size_t(std::llround(s_.freeloaders * double(s_.peers)));
  const size_t nl = size_t(std::llround(s_.liars * double(s_.peers)));
  std::vector<Bytes> seeds(s_.peers);
  for (uint32_t i = 0; i < s_.peers; ++i) {
    auto p = std::make_unique<SimPeer>();
    p->kind = script        ? script->peers[i].kind
              : i < nf      ? PeerKind::kFreeloader
              : i < nf + nl ? PeerKind::kLiar
                            : PeerKind::kCooperator;
    p->rng.seed(rng_());
    p->draws.seed(rng_());
    p->needs =
        ise::NeedLog(std::chrono::seconds(std::max<int64_t>(1, std::llround(s_.need_idle_s))));
    seeds[i].resize(32);
    for (auto& b : seeds[i]) b = uint8_t(rng_());
    out_.peers[size_t(p->kind)]++;
    peers_.push_back(std::move(p));
  }
  std::vector<Status> opened(threads_, Status::ok());
  auto open_some = [&](size_t t) {
    for (uint32_t i = uint32_t(t); i < s_.peers && opened[t].is_ok(); i += uint32_t(threads_)) {
      SimPeer* raw = peers_[i].get();
      auto key = identity::KeyPair::from_seed(seeds[i]);
      if (!key.ok()) {
        opened[t] = key.status();
        break;
      }
      auto uniform = [raw] { return std::uniform_real_distribution<double>(0, 1)(raw->rng); };
      auto swap = swap::ComputeSwap::open(s_.swap, *key, ":memory:", part(i).clock, uniform);
      if (!swap.ok()) {
        opened[t] = swap.status();
        break;
      }
      raw->swap = std::move(*swap);
      raw->id = raw->swap->self();
    }
  };
  {
    std::vector<std::jthread> helpers;
    for (size_t t = 1; t < threads_; ++t) helpers.emplace_back(open_some, t);
    open_some(0);
  }
  for (const Status& st : opened) IDN_RETURN_IF_ERROR(st);
  for (uint32_t i = 0; i < s_.peers; ++i)
    if (!index_.emplace(id_tail(peer(i).id), i).second)
      return Status::internal("sim computeswap: two peer IDs end in the same 8 bytes");
  for (uint32_t i = 0; i < s_.peers; ++i) {
    if (!serving(i)) continue;
    peer(i).auto_host = script ? script->peers[i].auto_host : s_.auto_host;
    if (script) peer(i).pinned = script->peers[i].pinned;
    peer(i).queue = new_queue(i);
  }
  // Publishers: each service is pinned by `publishers` cooperators (fewer if there are not
  // that many), drawn from the seed; a script names them.
  std::vector<uint32_t> coop;
  for (uint32_t i = 0; i < s_.peers; ++i)
    if (peer(i).kind == PeerKind::kCooperator) coop.push_back(i);
  for (uint32_t k = 0; k < s_.services && !script; ++k) {
    for (size_t j = 0; j < std::min(s_.publishers, coop.size()); ++j) {
      size_t pick = j + std::uniform_int_distribution<size_t>(0, coop.size() - 1 - j)(rng_);
      std::swap(coop[j], coop[pick]);
      SimPeer& P = peer(coop[j]);
      P.pinned.push_back(k);
      P.queue->pin(service_ids_[k]);
    }
  }
  for (uint32_t i = 0; i < s_.peers; ++i) {
    if (!serving(i)) continue;
    for (uint32_t k : peer(i).pinned) start_hosting(i, k);
    if (!s_.auto_host && !script) {  // fixed hosting: k services drawn by popularity
      for (size_t tries = 0; peer(i).hosted.size() < peer(i).pinned.size() + s_.k && tries < 1000;
           ++tries) {
        uint32_t k = draw_service(i);
        if (!peer(i).hosted.count(k)) start_hosting(i, k);
      }
    }
  }
  const Duration tick = seconds(s_.tick_s), ise_tick = seconds(s_.ise_tick_s);
  if (s_.mesh)  // a handful of nodes that found each other through the DHT
    for (uint32_t a = 0; a < s_.peers; ++a)
      for (uint32_t b = a + 1; b < s_.peers; ++b) connect_now(a, b);
  if (script) {
    for (const ScriptedRequest& r : script->requests)
      part(r.requester).q.at(start_ + seconds(r.at_s), [this, r] {
        if (peer(r.requester).online) make_request(r.requester, r.service);
      });
  }
  for (uint32_t i = 0; i < s_.peers; ++i) {
    if (!script) schedule_request(i);
    schedule_tick(i, tick * int64_t(i % 1000) / 1000);
    schedule_ise(i, ise_tick * int64_t(i % 1000) / 1000);
    if (s_.churn > 0) schedule_leave(i);
  }
  next_sample_ = start_ + 1min - 1ms;
  apply_host_changes();
  for (size_t p = 0; p < parts_.size(); ++p) deliver_to(p, parity_);
  return Status::ok();
}

void World::send(uint32_t from, uint32_t to, Duration delay, std::function<void()> fn) {
  Partition& src = part(from);
  const size_t dst = to % parts_.size();
  const Time t = src.q.now() + delay;
  if (dst == from % parts_.size()) {
    src.q.at(t, std::move(fn));
  } else {
    src.outbox[parity_][dst].push_back({t, std::move(fn)});
  }
}

void World::deliver_to(size_t p, uint32_t parity) {
  // Sources in partition order, each in the order it sent: one history for a seed.
  for (size_t s = 0; s < parts_.size(); ++s) {
    auto& box = parts_[s]->outbox[parity][p];
    for (Delivery& d : box) parts_[p]->q.at(d.t, std::move(d.fn));
    box.clear();
  }
}

void World::apply_host_changes() {
  for (auto& part : parts_) {
    for (const HostChange& c : part->host_changes) {
      auto& v = providers_[c.service];
      if (c.hosts) {
        v.push_back(c.peer);
      } else if (auto it = std::find(v.begin(), v.end(), c.peer); it != v.end()) {
        v.erase(it);
      }
    }
    part->host_changes.clear();
  }
}

void World::sample_hosts_until(Time t) {
  // Hosts per service, sampled each minute after warm-up.
  for (; next_sample_ <= t; next_sample_ += 1min) {
    if (!after_warmup(next_sample_)) continue;
    for (size_t k = 0; k < s_.services; ++k) hosts_sum_[k] += double(providers_[k].size());
    ++host_samples_;
  }
}

std::unique_ptr<ise::ServiceQueue> World::new_queue(uint32_t i) {
  ise::QueueConfig qc;
  qc.k = s_.script && s_.script->peers[i].k ? s_.script->peers[i].k : s_.k;
  qc.min_service_period = std::chrono::seconds(int64_t(std::llround(s_.min_service_s)));
  qc.need_idle = std::chrono::seconds(std::max<int64_t>(1, std::llround(s_.need_idle_s)));
  qc.keep_factor = s_.keep_factor;
  qc.per_provider = s_.per_provider;
  auto q = std::make_unique<ise::ServiceQueue>(qc);
  for (uint32_t k : peer(i).pinned) q->pin(service_ids_[k]);
  return q;
}

uint32_t World::draw_service(uint32_t i) {
  double x = std::uniform_real_distribution<double>(0, 1)(peer(i).draws);
  auto it = std::lower_bound(zipf_cdf_.begin(), zipf_cdf_.end(), x);
  return uint32_t(std::min<size_t>(size_t(it - zipf_cdf_.begin()), s_.services - 1));
}

void World::schedule_request(uint32_t r) {
  std::exponential_distribution<double> gap(s_.requests_per_peer_min / 60.0);
  part(r).q.after(seconds(gap(peer(r).draws)), [this, r] {
    if (peer(r).online) make_request(r, draw_service(r));
    schedule_request(r);
  });
}

void World::schedule_tick(uint32_t i, Duration first) {
  part(i).q.after(first, [this, i] {
    SimPeer& p = peer(i);
    if (p.online) {
      close_idle_connections(i);
      p.swap->tick();
      if (now(i) - p.last_commit >= seconds(s_.commit_s)) {
        (void)p.swap->ledgers().commit();
        p.last_commit = now(i);
      }
      flush(i);
    }
    schedule_tick(i, seconds(s_.tick_s));
  });
}

void World::schedule_ise(uint32_t i, Duration first) {
  part(i).q.after(first, [this, i] {
    if (peer(i).online) ise_step(i);
    schedule_ise(i, seconds(s_.ise_tick_s));
  });
}

void World::schedule_leave(uint32_t i) {
  std::exponential_distribution<double> stay(s_.churn / 3600.0);
  part(i).q.after(seconds(stay(peer(i).draws)), [this, i] { leave(i); });
}

void World::leave(uint32_t i) {
  SimPeer& P = peer(i);
  ++part(i).leaves;
  std::vector<uint32_t> conns;
  for (const auto& [c, _] : P.connected) conns.push_back(c);
  std::sort(conns.begin(), conns.end());
  for (uint32_t c : conns) disconnect(i, c);
  for (uint32_t k : std::vector<uint32_t>(P.hosted.begin(), P.hosted.end())) stop_hosting(i, k);
  P.starting.clear();
  P.online = false;
  P.epoch++;
  P.needs.clear();
  if (P.queue) P.queue = new_queue(i);  // a restarted node's ISE starts empty
  std::exponential_distribution<double> away(1.0 / (s_.offline_min * 60));
  part(i).q.after(seconds(away(P.draws)), [this, i] { join(i); });
}

void World::join(uint32_t i) {
  SimPeer& P = peer(i);
  ++part(i).joins;
  P.online = true;
  P.busy_until = now(i);
  for (uint32_t k : P.pinned) start_hosting(i, k);  // its own blocks: hosted at once
  if (s_.mesh)  // it dials every peer again; those online take the connection
    for (uint32_t j = 0; j < s_.peers; ++j)
      if (j != i)
        send(i, j, latency_, [this, i, j] {
          if (peer(j).online) accept(j, i);
        });
  if (!s_.auto_host && !s_.script && serving(i)) {
    for (size_t tries = 0; P.hosted.size() < P.pinned.size() + s_.k && tries < 1000; ++tries) {
      uint32_t k = draw_service(i);
      if (!P.hosted.count(k)) start_hosting(i, k);
    }
  }
  schedule_leave(i);
}

void World::publish_have_list(uint32_t i) {
  peer(i).swap->set_have_list(id_list(peer(i).hosted));
}

std::vector<Bytes> World::id_list(std::vector<uint32_t> services) const {
  std::sort(services.begin(), services.end(),
            [this](uint32_t a, uint32_t b) { return id_rank_[a] < id_rank_[b]; });
  std::vector<Bytes> ids;
  ids.reserve(services.size());
  for (uint32_t k : services) ids.push_back(service_ids_[k]);
  return ids;
}

void World::start_hosting(uint32_t i, uint32_t k) {
  SimPeer& P = peer(i);
  if (!P.hosted.insert(k).second) return;
  part(i).host_changes.push_back({i, k, true});
  if (P.queue) P.queue->started(service_ids_[k], now(i));
  publish_have_list(i);
}

void World::stop_hosting(uint32_t i, uint32_t k) {
  SimPeer& P = peer(i);
  if (!P.hosted.erase(k)) return;
  part(i).host_changes.push_back({i, k, false});
  if (P.queue) P.queue->stopped(service_ids_[k]);
  publish_have_list(i);
}

void World::ise_step(uint32_t i) {
  SimPeer& P = peer(i);
  // Our need list: the services we asked for within need_idle and do not host, with our
  // requests for each, sent on the node's rule (ise::NeedLog: a change of the set, or a count
  // moved by a factor of two); ComputeSwap sends it to our Online peers.
  const Time t = now(i);
  auto hosted_here = [this, &P](const Bytes& b) {
    return P.hosted.count(service_index_.at(b)) > 0;
  };
  if (auto need = P.needs.to_send(t, hosted_here))
    P.swap->set_need_list(std::move(need->services), std::move(need->counts));
  if (!P.queue || !P.auto_host) return;
  const uint64_t grace = s_.swap.grace_ops;
  auto weight = [&P, grace](const Bytes& id) {  // §7.4's r_i, as the node's ISE takes it
    const swap::ComputeSwap::Standing st = P.swap->standing(id);
    return swap::need_weight(st.credit, st.debt, grace);
  };
  if (s_.per_provider) P.queue->set_providers(P.swap->have_counts());
  const ise::ServiceQueue::Plan plan = P.queue->plan(weight, t);
  for (const Bytes& b : plan.stop) {
    ++part(i).ise_stops;
    stop_hosting(i, service_index_.at(b));
  }
  for (const Bytes& b : plan.start) {
    const uint32_t k = service_index_.at(b);
    if (P.hosted.count(k) || !P.starting.insert(k).second) continue;
    ++part(i).ise_starts;
    part(i).q.after(seconds(s_.init_s), [this, i, k, epoch = P.epoch] {
      SimPeer& p = peer(i);
      if (p.epoch != epoch || !p.online) return;  // it left meanwhile
      p.starting.erase(k);
      start_hosting(i, k);
    });
  }
}

const std::vector<uint32_t>& World::known(uint32_t r, uint32_t service) {
  SimPeer& R = peer(r);
  Known& k = R.known[service];
  if (k.providers.empty() || now(r) - k.fetched >= seconds(s_.provider_ttl_s)) {
    // A fresh lookup: up to known_providers of the current records, drawn at random.
    k.fetched = now(r);
    k.providers.clear();
    const auto& all = providers_[service];
    const size_t want = std::min(s_.known_providers, all.size());
    if (all.size() <= 2 * s_.known_providers) {
      std::vector<uint32_t> pool(all.begin(), all.end());
      for (size_t i = 0; i < want; ++i) {
        size_t j = i + std::uniform_int_distribution<size_t>(0, pool.size() - 1 - i)(R.draws);
        std::swap(pool[i], pool[j]);
      }
      pool.resize(want);
      k.providers = std::move(pool);
    } else {
      std::uniform_int_distribution<size_t> pick(0, all.size() - 1);
      while (k.providers.size() < want) {
        uint32_t p = all[pick(R.draws)];
        if (std::find(k.providers.begin(), k.providers.end(), p) == k.providers.end())
          k.providers.push_back(p);
      }
    }
  }
  return k.providers;
}

void World::make_request(uint32_t r, uint32_t service) {
  SimPeer& R = peer(r);
  const Time t = now(r);
  auto req = std::make_shared<Request>();
  req->requester = r;
  req->service = service;
  req->id = (uint64_t(r) << 32) | R.requests_made++;
  req->ops = service_ops_[req->service];
  req->minute = minute(t);
  if (after_warmup(t)) part(r).service_requests[req->service]++;
  R.needs.used(service_ids_[req->service], t);
  if (R.hosted.count(req->service)) {  // a node does not ask others for what it serves
    count(r, req->minute).local++;
    return;
  }
  count(r, req->minute).requests++;
  // It asks up to `candidates` of the providers it knows, in its order of preference
  // (§7.5.2: the peers it owes least first; those that ignore it, or that it shuns, left out).
  std::vector<std::pair<double, uint32_t>> scored;
  // Once `candidates` providers score the best there is, the rest cannot come before them
  // (the sort below is stable): they are not scored (most providers are strangers at scale).
  size_t best = 0;
  for (uint32_t p : known(r, req->service)) {
    if (p == r) continue;
    if (auto score = R.swap->provider_score(peer(p).id)) {
      scored.emplace_back(*score, p);
      best += *score >= swap::ComputeSwap::kBestProviderScore ? 1 : 0;
      if (best == s_.candidates) break;
    }
  }
  if (s_.have_list_providers && best < s_.candidates) {
    for (const Bytes& id : R.swap->peers_having(service_ids_[req->service])) {
      const uint32_t p = *find_peer(id);
      if (std::none_of(scored.begin(), scored.end(), [p](const auto& x) { return x.second == p; }))
        scored.emplace_back(*R.swap->provider_score(id), p);  // peers_having checked it
    }
  }
  std::stable_sort(scored.begin(), scored.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (const auto& [score, p] : scored) {
    if (req->candidates.size() == s_.candidates) break;
    req->candidates.push_back(p);
  }
  try_next(std::move(req), 0);
}

void World::try_next(std::shared_ptr<Request> req, size_t i) {
  const uint32_t r = req->requester;
  if (!peer(r).online) return;  // the requester left
  if (i >= req->candidates.size()) {
    count(r, req->minute).unserved++;
    return;
  }
  const uint32_t p = req->candidates[i];
  if (peer(r).swap->is_blacklisted(peer(p).id)) return try_next(std::move(req), i + 1);
  worked(r, p);
  send(r, p, latency_, [this, req, i] { arrive(req, i); });
}

bool World::accept(uint32_t p, uint32_t r) {
  SimPeer& P = peer(p);
  if (P.connected.count(r)) return true;
  if (P.swap->is_blacklisted(peer(r).id)) return false;
  P.connected.emplace(r, now(p));
  send(p, r, latency_, [this, r, p] { accepted(r, p); });  // before anything else p sends r
  P.swap->on_connected(peer(r).id);
  flush(p);
  return true;
}

void World::accepted(uint32_t r, uint32_t p) {
  SimPeer& R = peer(r);
  if (!R.online || R.connected.count(p)) return;
  R.connected.emplace(p, now(r));
  R.swap->on_connected(peer(p).id);
  flush(r);
}

void World::connect_now(uint32_t a, uint32_t b) {
  if (peer(a).connected.count(b)) return;
  if (peer(a).swap->is_blacklisted(peer(b).id) || peer(b).swap->is_blacklisted(peer(a).id)) return;
  peer(a).connected.emplace(b, now(a));
  peer(b).connected.emplace(a, now(b));
  peer(a).swap->on_connected(peer(b).id);
  peer(b).swap->on_connected(peer(a).id);
  flush(a);
  flush(b);
}

void World::arrive(std::shared_ptr<Request> req, size_t i) {
  const uint32_t r = req->requester, p = req->candidates[i];
  SimPeer& P = peer(p);
  if (!P.online) {  // its record outlived it: the requester's dial times out
    const Duration wait = std::max<Duration>(latency_, seconds(s_.dial_timeout_s) - latency_);
    send(p, r, wait, [this, req, i] {
      count(req->requester, req->minute).stale++;
      try_next(req, i + 1);
    });
    return;
  }
  if (!accept(p, r)) {  // it shuns the requester: the dial is refused
    send(p, r, latency_, [this, req, i] { try_next(req, i + 1); });
    return;
  }
  worked(p, r);
  const Bytes& service_id = service_ids_[req->service];
  if (P.queue) P.queue->on_request(peer(r).id, service_id, now(p));  // demand, served or not
  if (!P.hosted.count(req->service)) {  // it stopped hosting it: "not found", next one
    send(p, r, latency_, [this, req, i] {
      count(req->requester, req->minute).stale++;
      try_next(req, i + 1);
    });
    return;
  }
  swap::Admit a = P.swap->on_request(peer(r).id, service_id, req->id);
  flush(p);
  if (!a.serve) {
    send(p, r, latency_, [this, req, i, r, p] {
      count(r, req->minute).refusals++;
      peer(r).swap->on_refused_by(peer(p).id);
      flush(r);
      try_next(req, i + 1);
    });
    return;
  }
  // One request at a time: it waits for those admitted before it.
  const Time start = std::max(now(p), P.busy_until);
  P.busy_until = start + seconds(req->ops / (s_.peer_gflops * 1e9));
  part(p).q.at(P.busy_until, [this, req, i, r, p, epoch = P.epoch] {
    if (peer(p).epoch != epoch) {  // it left mid-request: the requester sees the stream drop
      send(p, r, latency_, [this, req, i] { try_next(req, i + 1); });
      return;
    }
    worked(p, r);
    (void)peer(p).swap->on_answered(peer(r).id, req->id, service_ids_[req->service],
                                    uint64_t(req->ops));
    flush(p);
    send(p, r, latency_, [this, req, i] { answer(req, i); });
  });
}

void World::answer(std::shared_ptr<Request> req, size_t i) {
  const uint32_t r = req->requester, p = req->candidates[i];
  SimPeer& R = peer(r);
  if (!R.online || !R.connected.count(p)) return;  // the answer went nowhere
  worked(r, p);
  const bool wrong = peer(p).kind == PeerKind::kLiar;
  LiarPair* pair = nullptr;
  if (wrong) {
    pair = &part(r).liar_pairs[{p, r}];
    if (!pair->caught) pair->answers++;
  }
  if (R.swap->should_challenge(peer(p).id)) {
    R.swap->on_challenge_result(peer(p).id, !wrong);
    flush(r);
    if (wrong) {
      pair->caught = true;
      count(r, req->minute).caught++;
      return try_next(req, i + 1);
    }
  }
  KindCounts& c = count(r, req->minute);
  c.answered++;
  c.ops += uint64_t(req->ops);
  if (after_warmup(now(r))) {
    part(r).pairs.insert((uint64_t(r) << 32) | p);
    ++part(r).pair_answers;
  }
  protocol::Receipt rc =
      R.swap->make_receipt(peer(p).id, req->id, service_ids_[req->service], uint64_t(req->ops));
  (void)R.swap->on_receipt(peer(p).id, rc);
  flush(r);
  send(r, p, latency_, [this, r, p, rc] {
    if (!peer(p).connected.count(r)) return;  // settled at the next Open
    (void)peer(p).swap->on_receipt(peer(r).id, rc);
    flush(p);
  });
}

void World::worked(uint32_t a, uint32_t b) {
  peer(a).connected.worked(b, now(a));
}

void World::close_idle_connections(uint32_t i) {
  if (s_.mesh) return;  // connected for good
  const Duration idle = seconds(s_.conn_idle_s);
  const Time t = now(i);
  std::vector<uint32_t> stale;
  for (const auto& [c, last] : peer(i).connected)
    if (t - last >= idle) stale.push_back(c);
  std::sort(stale.begin(), stale.end());  // a fixed order, whatever the hash map's
  for (uint32_t c : stale) disconnect(i, c);
}

bool World::drop(uint32_t a, uint32_t b) {
  SimPeer& A = peer(a);
  if (!A.connected.erase(b)) return false;
  A.swap->on_disconnected(peer(b).id);
  if (A.queue) A.queue->forget_peer(peer(b).id);
  return true;
}

void World::disconnect(uint32_t a, uint32_t b) {
  if (!drop(a, b)) return;
  // b learns of it one latency later; what a still sends b after this is lost with it.
  send(a, b, latency_, [this, a, b] {
    if (drop(b, a)) flush(b);
  });
  flush(a);
}

void World::flush(uint32_t from) {
  std::vector<swap::Action> actions = peer(from).swap->take_actions();
  if (actions.empty()) return;
  // Destinations in the order their first message was queued.
  std::vector<std::pair<uint32_t, std::vector<swap::Action>>> out;
  for (auto& action : actions) {
    const Bytes& to_id = std::visit([](const auto& x) -> const Bytes& { return x.peer; }, action);
    const std::optional<uint32_t> found = find_peer(to_id);
    if (!found) continue;
    const uint32_t to = *found;
    if (std::holds_alternative<swap::Disconnect>(action)) {
      disconnect(from, to);
      continue;
    }
    if (const auto* m = std::get_if<swap::SendSwap>(&action);
        m && std::holds_alternative<protocol::SwapClose>(m->message) && peer(from).queue) {
      peer(from).queue->forget_peer(to_id);  // we closed: its need list no longer counts
    }
    auto dest = std::find_if(out.begin(), out.end(), [to](const auto& d) { return d.first == to; });
    if (dest == out.end()) {
      out.emplace_back(to, std::vector<swap::Action>{});
      dest = std::prev(out.end());
    }
    dest->second.push_back(std::move(action));
  }
  for (auto& [to, batch] : out)
    send(from, to, latency_,
         [this, from, to, b = std::move(batch)]() mutable { receive(from, to, b); });
}

void World::receive(uint32_t from, uint32_t to, std::vector<swap::Action>& actions) {
  SimPeer& P = peer(to);
  const Bytes& id = peer(from).id;
  for (swap::Action& action : actions) {
    if (!P.connected.count(from)) break;  // the connection closed in flight
    if (!P.swap->accept_message(id)) continue;
    std::visit(
        [&](auto& a) {
          using T = std::decay_t<decltype(a)>;
          if constexpr (std::is_same_v<T, swap::SendSwap>) {
            std::visit(
                [&](auto& m) {
                  using M = std::decay_t<decltype(m)>;
                  if constexpr (std::is_same_v<M, protocol::SwapOpen>) {
                    P.swap->on_open(id, m);
                  } else if constexpr (std::is_same_v<M, protocol::NeedList>) {
                    P.swap->on_need_list(id, m);
                    if (P.queue) P.queue->share_need_list(id, m.service_ids, m.counts);
                  } else if constexpr (std::is_same_v<M, protocol::HaveList>) {
                    P.swap->on_have_list(id, m);
                  } else if constexpr (std::is_same_v<M, protocol::SwapClose>) {
                    P.swap->on_close(id, m.final);
                    if (P.queue) P.queue->forget_peer(id);
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
  }
  flush(to);
}

ComputeSwapResult World::run() {
  const Time end = start_ + seconds(s_.hours * 3600);
  // Windows one latency long: nothing a partition sends another during a window can be due
  // before the window ends, so the partitions run their windows side by side.
  auto window_end = [&](Time from) { return std::min(from + window_ - 1ns, end); };
  Time w_end = window_end(start_);
  bool done = false;
  Barrier barrier(threads_);
  std::atomic<size_t> next_part{0};
  std::vector<std::exception_ptr> errors(threads_);
  std::vector<Duration> busy(threads_), waiting(threads_);
  using Clock = std::chrono::steady_clock;
  auto work = [&](size_t t) {
    for (;;) {
      const Clock::time_point c0 = Clock::now();
      try {
        // Each thread takes the next partition not yet run in this window: the threads then
        // finish a window within about one partition's work of each other. What the others
        // sent a partition in the last window goes into its queue first.
        for (size_t p; (p = next_part.fetch_add(1, std::memory_order_relaxed)) < parts_.size();) {
          deliver_to(p, parity_ ^ 1);
          parts_[p]->events += parts_[p]->q.run_until(w_end);
        }
      } catch (...) {
        if (!errors[t]) errors[t] = std::current_exception();
      }
      const Clock::time_point c1 = Clock::now();
      // The last thread to arrive does the work between windows; the others wait for it.
      barrier.wait([&, t] {
        const Clock::time_point b0 = Clock::now();
        try {
          next_part.store(0, std::memory_order_relaxed);
          apply_host_changes();
          sample_hosts_until(w_end);
          if (w_end >= end) {
            done = true;
          } else {
            w_end = window_end(w_end + 1ns);
            parity_ ^= 1;
          }
        } catch (...) {
          if (!errors[t]) errors[t] = std::current_exception();
          done = true;
        }
        const Duration between = Clock::now() - b0;  // counted as busy, not waiting
        busy[t] += between;
        waiting[t] -= between;
      });
      const Clock::time_point c2 = Clock::now();
      busy[t] += c1 - c0;
      waiting[t] += c2 - c1;
      if (done) return;
    }
  };
  {
    std::vector<std::jthread> helpers;
    for (size_t t = 1; t < threads_; ++t) helpers.emplace_back(work, t);
    work(0);
  }
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
  out_.partitions = parts_.size();
  out_.threads = threads_;
  for (size_t t = 0; t < threads_; ++t) {
    out_.thread_busy_s.push_back(std::chrono::duration<double>(busy[t]).count());
    out_.thread_wait_s.push_back(std::chrono::duration<double>(waiting[t]).count());
  }
  // The partitions' counts, summed.
  out_.minutes.resize(minutes_);
  for (size_t m = 0; m < minutes_; ++m) out_.minutes[m].minute = uint32_t(m);
  std::vector<uint64_t> service_requests(s_.services, 0);
  std::map<std::pair<uint32_t, uint32_t>, LiarPair> liar_pairs;
  uint64_t npairs = 0, pair_answers = 0;
  for (const auto& part : parts_) {
    for (size_t m = 0; m < minutes_; ++m)
      for (size_t k = 0; k < kPeerKinds; ++k) out_.minutes[m].kinds[k] += part->minutes[m].kinds[k];
    for (size_t k = 0; k < s_.services; ++k) service_requests[k] += part->service_requests[k];
    liar_pairs.insert(part->liar_pairs.begin(), part->liar_pairs.end());  // keys are disjoint
    npairs += part->pairs.size();                                         // so are the requesters
    pair_answers += part->pair_answers;
    out_.ise_starts += part->ise_starts;
    out_.ise_stops += part->ise_stops;
    out_.leaves += part->leaves;
    out_.joins += part->joins;
    out_.events += part->events;
  }
  const size_t warm = size_t(std::floor(double(out_.minutes.size()) * s_.warmup_fraction));
  uint64_t ops_all = 0;
  for (size_t m = 0; m < out_.minutes.size(); ++m) {
    for (size_t k = 0; k < kPeerKinds; ++k) {
      const KindCounts& c = out_.minutes[m].kinds[k];
      out_.total[k] += c;
      if (m >= warm) out_.after_warmup[k] += c;
    }
  }
  for (size_t k = 0; k < kPeerKinds; ++k) {
    const KindCounts& a = out_.after_warmup[k];
    ops_all += a.ops;
    out_.served_rate[k] = a.requests ? double(a.answered) / double(a.requests) : 0;
  }
  out_.answers_per_pair = npairs == 0 ? 0 : double(pair_answers) / double(npairs);
  out_.freeloader_work_share =
      ops_all ? double(out_.after_warmup[size_t(PeerKind::kFreeloader)].ops) / double(ops_all) : 0;
  // Liars: caught at least once, and the Kaplan-Meier curve of catches by wrong answer.
  uint64_t caught = 0;
  uint32_t longest = 0;
  for (const auto& [_, lp] : liar_pairs) {
    caught += lp.caught ? 1 : 0;
    longest = std::max(longest, lp.answers);
  }
  out_.liar_pairs = liar_pairs.size();
  out_.liars_caught = liar_pairs.empty() ? 0 : double(caught) / double(liar_pairs.size());
  std::vector<uint64_t> ended(longest + 2, 0), events(longest + 2, 0);
  for (const auto& [_, lp] : liar_pairs) {
    ended[lp.answers]++;
    if (lp.caught) events[lp.answers]++;
  }
  uint64_t at_risk = liar_pairs.size();
  double survive = 1;
  for (uint32_t n = 1; n <= longest; ++n) {
    at_risk -= ended[n - 1];  // pairs that ended (caught or not) before their n-th answer
    if (at_risk > 0) survive *= 1 - double(events[n]) / double(at_risk);
    out_.caught_within.push_back(1 - survive);
  }
  // Hosts per service against popularity.
  std::vector<double> hosts, pop;
  for (uint32_t k = 0; k < s_.services; ++k) {
    ServiceRow row;
    row.rank = k + 1;
    row.popularity = popularity_[k];
    row.requests = service_requests[k];
    row.mean_hosts = host_samples_ ? hosts_sum_[k] / host_samples_ : double(providers_[k].size());
    row.hosts_at_end = uint32_t(providers_[k].size());
    hosts.push_back(row.mean_hosts);
    pop.push_back(row.popularity);
    out_.services.push_back(row);
  }
  out_.spearman_hosts_popularity = spearman(hosts, pop);
  // Debt ratios as each serving peer sees the peers it served.
  for (uint32_t i = 0; i < s_.peers; ++i) {
    if (!serving(i)) continue;
    SimPeer& P = peer(i);
    for (const Bytes& other : P.swap->ledgers().peers()) {
      const std::optional<uint32_t> found = find_peer(other);
      if (!found) continue;
      const swap::ComputeSwap::Standing st = P.swap->standing(other);
      if (st.debt == 0) continue;
      out_.debt_ratios[size_t(peer(*found).kind)].push_back(st.r);
    }
  }
  for (auto& v : out_.debt_ratios) std::sort(v.begin(), v.end());
  for (uint32_t i = 0; i < s_.peers; ++i)
    out_.hosted_at_end.emplace_back(peer(i).hosted.begin(), peer(i).hosted.end());
  // Tearing down 10,000 ComputeSwaps and their databases takes seconds: the threads share it.
  const auto teardown_start = std::chrono::steady_clock::now();
  {
    auto release = [this](size_t t) {
      for (size_t i = t; i < peers_.size(); i += threads_) peers_[i].reset();
    };
    std::vector<std::jthread> helpers;
    for (size_t t = 1; t < threads_; ++t) helpers.emplace_back(release, t);
    release(0);
  }
  out_.teardown_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - teardown_start).count();
  return std::move(out_);
}

}  // namespace

Result<ComputeSwapResult> run_computeswap_sim(const ComputeSwapScenario& s) {
  World w(s);
  const auto start = std::chrono::steady_clock::now();
  IDN_RETURN_IF_ERROR(w.init());
  const double init_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ComputeSwapResult r = w.run();
  r.init_s = init_s;
  return r;
}

namespace {

Status finish(std::ofstream& f, const std::filesystem::path& path) {
  f.flush();
  if (!f) return Status::io_error("writing " + path.string() + " failed");
  return Status::ok();
}

}  // namespace

Status write_minutes_csv(const ComputeSwapResult& r, const std::filesystem::path& path) {
  std::ofstream f(path);
  if (!f) return Status::io_error("cannot write " + path.string());
  f << "minute,kind,requests,answered,local,refusals,unserved,stale,caught,ops\n";
  for (const auto& row : r.minutes) {
    for (size_t k = 0; k < kPeerKinds; ++k) {
      const KindCounts& c = row.kinds[k];
      f << row.minute << ',' << peer_kind_name(PeerKind(k)) << ',' << c.requests << ','
        << c.answered << ',' << c.local << ',' << c.refusals << ',' << c.unserved << ',' << c.stale
        << ',' << c.caught << ',' << c.ops << '\n';
    }
  }
  return finish(f, path);
}

Status write_services_csv(const ComputeSwapResult& r, const std::filesystem::path& path) {
  std::ofstream f(path);
  if (!f) return Status::io_error("cannot write " + path.string());
  f << "rank,popularity,requests,mean_hosts,hosts_at_end\n";
  for (const ServiceRow& s : r.services)
    f << s.rank << ',' << fmt::format("{:.6f}", s.popularity) << ',' << s.requests << ','
      << fmt::format("{:.3f}", s.mean_hosts) << ',' << s.hosts_at_end << '\n';
  return finish(f, path);
}

Status write_debt_ratios_csv(const ComputeSwapResult& r, const std::filesystem::path& path) {
  std::ofstream f(path);
  if (!f) return Status::io_error("cannot write " + path.string());
  f << "kind,quantile,r\n";
  for (size_t k = 0; k < kPeerKinds; ++k) {
    const auto& v = r.debt_ratios[k];
    if (v.empty()) continue;
    for (int q = 0; q <= 100; ++q) {
      f << peer_kind_name(PeerKind(k)) << ',' << fmt::format("{:.2f}", q / 100.0) << ','
        << fmt::format("{:.6g}", sorted_quantile(v, q / 100.0)) << '\n';
    }
  }
  return finish(f, path);
}

}  // namespace idn::sim
