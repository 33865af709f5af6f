// The Inference Service Engine's choice of what to host (§7.4): services ranked by the
// priority score s = Σ w_i over the peers i that need them (their need lists and their recent
// requests); the node hosts the top k, each for at least T_s before it may be swapped out, and
// the services its operator pinned always. Pure bookkeeping: no I/O, the caller passes the time
// and each peer's weight (the node uses ComputeSwap's r_i, eq. 7.1, plus a floor).
// Threading: not thread-safe; one owner (the node's io thread).
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

namespace idn::ise {

using Time = std::chrono::steady_clock::time_point;

struct QueueConfig {
  // Services hosted on demand, besides the pinned ones. 0: not set (QueueConfig::validate
  // refuses it; the node derives a value from its cores before it gets here).
  size_t k = 1;
  // T_s: a service runs at least this long before it may be torn down for another.
  std::chrono::seconds min_service_period{300};
  // A peer's demand from its requests fades after this long without one.
  std::chrono::seconds need_idle{120};

  Status validate() const;
};

// One service in the queue, as `idn peers` and /status show it.
struct QueueEntry {
  Bytes service;  // the service ID's multihash bytes
  double score = 0;
  size_t peers = 0;  // peers whose need list or recent requests name it
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

  // Demand. A peer's need list replaces its previous one; a request (for a service hosted or
  // not) counts until need_idle passes without another from that peer.
  void set_need_list(const Bytes& peer, std::vector<Bytes> services);
  // The same, keeping the list the message carried (no copy) when it is already sorted
  // without duplicates, as ComputeSwap's senders in the simulator send it.
  void share_need_list(const Bytes& peer, const BytesList& services);
  void on_request(const Bytes& peer, const Bytes& service, Time now);
  // The peer left (disconnected, blacklisted): its need list no longer counts.
  void forget_peer(const Bytes& peer);

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
    BytesList need_list;              // sorted, no duplicates
    std::map<Bytes, Time> requested;  // service -> last request
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
};

}  // namespace idn::ise
