// The Inference Service Engine's choice of what to host (§7.4): services ranked by the
// priority score s = Σ w_i · c_i over the peers i that need them, c_i being how much: the count
// in i's need list (up to max_need_count: it is i's word) or the requests we saw from i within
// need_idle, whichever is larger (a need list without counts, from an older peer, counts 1 each).
// The node hosts the top k, each for at least T_s before it may be swapped out, and the services
// its operator pinned always; NeedLog keeps our own need list with its counts. Pure bookkeeping: no
// I/O, the caller passes the time and each peer's weight (the node uses ComputeSwap's r_i, eq. 7.1,
// plus a floor). Threading: not thread-safe; one owner (the node's io thread).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/bytes.h"
#include "core/bytes_list.h"
#include "core/status.h"
#include "ise/recent_count.h"

namespace idn::ise {

using Time = std::chrono::steady_clock::time_point;

struct QueueConfig {
  // Services hosted on demand, besides the pinned ones. 0: not set (QueueConfig::validate
  // refuses it; the node derives a value from its cores before it gets here).
  size_t k = 1;
  // T_s: a service runs at least this long before it may be torn down for another.
  std::chrono::seconds min_service_period{300};
  // A peer's demand from its requests fades after this long without one; c_i counts the
  // requests within this window.
  std::chrono::seconds need_idle{120};
  // Hysteresis against herding (every ISE sees about the same scores): a hosted on-demand
  // service competes for its slot with its score times this, so past T_s it gives way only to
  // a service that scores more than keep_factor times as much. 1: the plain top k.
  double keep_factor = 1.0;
  // Demand per provider: a service's score is divided by 1 + the other providers we know of
  // (set_providers: peers whose have list names it), i.e. the demand one more host would
  // share. Against herding: with s alone every ISE moves to the most needed services and the
  // rest keep only their publishers (docs/results.md, "Need lists with counts").
  bool per_provider = true;
  // A need list's count is the peer's word: it counts up to this many (what we saw the peer
  // request ourselves counts whole). One peer's claim then weighs at most this many times one
  // request, not the 2^20 the wire allows. Default: one request a second over need_idle's 120 s.
  uint32_t max_need_count = 120;

  Status validate() const;
};

// One service in the queue, as `idn peers` and /status show it.
struct QueueEntry {
  Bytes service;  // the service ID's multihash bytes
  double score = 0;
  size_t peers = 0;       // peers whose need list or recent requests name it
  uint64_t requests = 0;  // Σ c_i over them (unweighted)
  size_t providers = 0;   // other providers we know of (set_providers)
  bool pinned = false, hosted = false;
  std::optional<Time> hosted_since;
  std::string why;  // why it is (not) hosted
};

class ServiceQueue {
 public:
  // A peer's weight w_i in the score (the node: floor + our debt ratio towards it).
  using Weight = std::function<double(const Bytes& peer)>;

  explicit ServiceQueue(QueueConfig config);

  const QueueConfig& config() const { return config_; }
  // A k derived anew (ise/capacity.h): hosted services beyond it are stopped once T_s allows.
  // 0 is taken as 1.
  void set_k(size_t k) { config_.k = k > 0 ? k : 1; }
  // Services this node cannot host (e.g. too big for its memory budget): they take no top-k
  // slot, so the next ones in line get it; `why` says so in ranking(). Replaces the last set.
  void set_unhostable(std::vector<Bytes> services, std::string why);

  // Always hosted, never swapped out (the operator's `host = [...]`).
  void pin(const Bytes& service);
  bool pinned(const Bytes& service) const { return pinned_.contains(service); }

  // Demand. A peer's need list replaces its previous one; `counts` go with `services` (empty:
  // 1 each; a list of another length is taken as empty; a duplicate keeps its larger count). A
  // request (for a service hosted or not) counts until need_idle has passed since it (to within
  // need_idle/32: ise/recent_count.h bounds the memory one peer's requests take).
  void set_need_list(const Bytes& peer, std::vector<Bytes> services,
                     std::vector<uint32_t> counts = {});
  // The same, keeping the lists the message carried (no copy) when the services are already
  // sorted without duplicates, as ComputeSwap's senders in the simulator send them.
  void share_need_list(const Bytes& peer, const BytesList& services, const CountList& counts = {});
  void on_request(const Bytes& peer, const Bytes& service, Time now);
  // The peer left (disconnected, blacklisted): its need list no longer counts.
  void forget_peer(const Bytes& peer);
  // Other providers we know of per service (peers' have lists); replaces the last set. Used
  // with per_provider.
  using ProviderCounts = std::unordered_map<Bytes, size_t, BytesHash, BytesEqual>;
  void set_providers(ProviderCounts counts) { providers_ = std::move(counts); }

  // Every service with demand, pinned or hosted, best first (score, then service bytes).
  std::vector<QueueEntry> ranking(const Weight& weight, Time now);

  // What to change now: start the top k not yet hosted (score > 0) while fewer than k
  // on-demand services are hosted, stop hosted ones that left the top k once T_s has passed.
  struct Plan {
    std::vector<Bytes> start, stop;
  };
  Plan plan(const Weight& weight, Time now);

  // The node reports what it actually did (a start can fail: it is then not hosted).
  void started(const Bytes& service, Time now);
  void stopped(const Bytes& service);
  bool hosted(const Bytes& service) const { return hosted_.contains(service); }
  std::vector<Bytes> hosted_services() const;
  size_t hosted_on_demand() const;

 private:
  struct Demand {
    BytesList need_list;    // sorted, no duplicates
    CountList need_counts;  // with need_list; empty: 1 each
    // service -> its requests within need_idle
    std::map<Bytes, RecentCount> requested;
  };
  // Drops request demand older than need_idle.
  void expire(Time now);
  // ranking(); `explain` false leaves `why` empty (plan() needs no text).
  std::vector<QueueEntry> rank(const Weight& weight, Time now, bool explain);

  QueueConfig config_;
  std::set<Bytes> pinned_;
  std::set<Bytes> unhostable_;
  std::string unhostable_why_;
  std::map<Bytes, Time> hosted_;  // service -> hosted since
  std::unordered_map<Bytes, Demand, BytesHash, BytesEqual> peers_;
  ProviderCounts providers_;
};

// Our own need list (§7.4) with counts: the services our sessions used within need_idle, how
// often, and when the list is worth sending again: when its set of services changed or a count
// moved by a factor of two or more from the one last sent (not on every request). The node's
// IseAgent and the simulator both keep theirs with it. Threading: one owner.
class NeedLog {
 public:
  explicit NeedLog(std::chrono::seconds need_idle) : need_idle_(need_idle) {}

  // One request by our sessions.
  void used(const Bytes& service, Time now);
  void clear() { uses_.clear(); }

  struct List {
    std::vector<Bytes> services;   // byte order, as ServiceQueue keeps them
    std::vector<uint32_t> counts;  // requests within need_idle, 1..kMaxCount
    bool operator==(const List&) const = default;
  };
  static constexpr uint32_t kMaxCount = 1u << 20;  // protocol::kMaxNeedCount
  // Services a need list leaves out (what we host ourselves).
  using Skip = std::function<bool(const Bytes& service)>;
  // The services used within need_idle that `skip` leaves in, with their counts.
  List list(Time now, const Skip& skip);
  // list(), when it should be sent (see the class comment); nullopt otherwise. What it returns
  // counts as sent.
  std::optional<List> to_send(Time now, const Skip& skip);
  // The list last returned by to_send.
  const List& sent() const { return sent_; }

 private:
  std::chrono::seconds need_idle_;
  std::map<Bytes, RecentCount> uses_;
  List sent_;
};

}  // namespace idn::ise
