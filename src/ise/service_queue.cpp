#include "ise/service_queue.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>

namespace idn::ise {

Status QueueConfig::validate() const {
  if (k == 0) return Status::invalid_argument("[ise] k must be at least 1");
  if (min_service_period.count() < 0)
    return Status::invalid_argument("[ise] min_service_period_s must not be negative");
  if (need_idle.count() <= 0) return Status::invalid_argument("[ise] need_idle_s must be positive");
  if (!(keep_factor >= 1.0 && keep_factor <= 100.0))
    return Status::invalid_argument("[ise] keep_factor must be in [1, 100]");
  if (max_need_count < 1 || max_need_count > NeedLog::kMaxCount)
    return Status::invalid_argument("[ise] max_need_count must be in [1, 1048576]");
  return Status::ok();
}

ServiceQueue::ServiceQueue(QueueConfig config) : config_(config) {}

void ServiceQueue::pin(const Bytes& service) {
  pinned_.insert(service);
}

void ServiceQueue::set_unhostable(std::vector<Bytes> services, std::string why) {
  unhostable_ = std::set<Bytes>(std::make_move_iterator(services.begin()),
                                std::make_move_iterator(services.end()));
  unhostable_why_ = std::move(why);
}

void ServiceQueue::set_need_list(const Bytes& peer, std::vector<Bytes> services,
                                 std::vector<uint32_t> counts) {
  if (counts.size() != services.size()) counts.assign(services.size(), 1);
  std::vector<std::pair<Bytes, uint32_t>> v;
  v.reserve(services.size());
  for (size_t i = 0; i < services.size(); ++i) v.emplace_back(std::move(services[i]), counts[i]);
  std::sort(v.begin(), v.end());
  std::vector<Bytes> ids;
  std::vector<uint32_t> cs;
  bool all_one = true;
  for (auto& [s, c] : v) {
    if (!ids.empty() && ids.back() == s) {
      cs.back() = std::max(cs.back(), c);  // a duplicate: its larger count
    } else {
      ids.push_back(std::move(s));
      cs.push_back(c);
    }
    all_one = all_one && cs.back() == 1;
  }
  if (all_one) cs.clear();
  share_need_list(peer, BytesList(std::move(ids)), CountList(std::move(cs)));
}

void ServiceQueue::share_need_list(const Bytes& peer, const BytesList& services,
                                   const CountList& counts) {
  const std::vector<Bytes>& v = services;
  // Sorted without duplicates: each is less than the next.
  if (std::adjacent_find(v.begin(), v.end(), std::greater_equal<>()) != v.end() ||
      (!counts.empty() && counts.size() != v.size()))
    return set_need_list(peer, std::vector<Bytes>(v), std::vector<uint32_t>(counts));
  auto it = peers_.find(peer);
  if (it == peers_.end()) {
    if (v.empty()) return;
    it = peers_.emplace(peer, Demand{}).first;
  }
  Demand& d = it->second;
  d.need_list = services;
  d.need_counts = counts;
  if (d.need_list.empty() && d.requested.empty()) peers_.erase(it);
}

void ServiceQueue::on_request(const Bytes& peer, const Bytes& service, Time now) {
  peers_[peer].requested.try_emplace(service, config_.need_idle).first->second.add(now);
}

void ServiceQueue::forget_peer(const Bytes& peer) {
  peers_.erase(peer);
}

void ServiceQueue::started(const Bytes& service, Time now) {
  hosted_.try_emplace(service, now);
}

void ServiceQueue::stopped(const Bytes& service) {
  hosted_.erase(service);
}

std::vector<Bytes> ServiceQueue::hosted_services() const {
  std::vector<Bytes> out;
  for (const auto& [s, _] : hosted_) out.push_back(s);
  return out;
}

size_t ServiceQueue::hosted_on_demand() const {
  return static_cast<size_t>(std::count_if(
      hosted_.begin(), hosted_.end(), [&](const auto& h) { return !pinned_.contains(h.first); }));
}

void ServiceQueue::expire(Time now) {
  for (auto p = peers_.begin(); p != peers_.end();) {
    auto& req = p->second.requested;
    for (auto r = req.begin(); r != req.end();)
      r = r->second.count(now) == 0 ? req.erase(r) : std::next(r);
    p = req.empty() && p->second.need_list.empty() ? peers_.erase(p) : std::next(p);
  }
}

std::vector<QueueEntry> ServiceQueue::ranking(const Weight& weight, Time now) {
  return rank(weight, now, /*explain=*/true);
}

std::vector<QueueEntry> ServiceQueue::rank(const Weight& weight, Time now, bool explain) {
  expire(now);
  // Hashed (this runs every round over every peer's list); sorted below.
  std::unordered_map<Bytes, QueueEntry, BytesHash, BytesEqual> by_service;
  for (const auto& [peer, d] : peers_) {
    const double w = weight ? weight(peer) : 1.0;
    // Requests seen within need_idle (expire() dropped the older), bounded as a list's count.
    auto seen = [now](const RecentCount& r) {
      return std::min<uint64_t>(r.peek(now), NeedLog::kMaxCount);
    };
    auto count = [&](const Bytes& s, uint64_t c) {
      QueueEntry& e = by_service[s];
      e.score += w * double(c);
      e.requests += c;
      e.peers++;
    };
    // c_i: the larger of what its need list says and what we saw (both within need_idle).
    for (size_t i = 0; i < d.need_list.size(); ++i) {
      const Bytes& s = d.need_list[i];
      uint64_t c = d.need_counts.empty() ? 1 : std::min(d.need_counts[i], config_.max_need_count);
      if (!d.requested.empty())
        if (auto r = d.requested.find(s); r != d.requested.end()) c = std::max(c, seen(r->second));
      count(s, c);
    }
    for (const auto& [s, t] : d.requested)
      if (!std::binary_search(d.need_list.begin(), d.need_list.end(), s)) count(s, seen(t));
  }
  for (const Bytes& s : pinned_) by_service[s];
  for (const auto& [s, _] : hosted_) by_service[s];

  std::vector<QueueEntry> out;
  out.reserve(by_service.size());
  for (auto& [s, e] : by_service) {
    e.service = s;
    if (auto p = providers_.find(s); p != providers_.end()) e.providers = p->second;
    if (config_.per_provider) e.score /= double(1 + e.providers);
    e.pinned = pinned_.contains(s);
    if (auto h = hosted_.find(s); h != hosted_.end()) {
      e.hosted = true;
      e.hosted_since = h->second;
    }
    out.push_back(std::move(e));
  }
  // Ranked by score, a hosted on-demand service's times keep_factor (it holds its slot until
  // another scores clearly more); ties by ID.
  auto key = [this](const QueueEntry& e) {
    return e.hosted && !e.pinned ? e.score * config_.keep_factor : e.score;
  };
  std::sort(out.begin(), out.end(), [&](const QueueEntry& a, const QueueEntry& b) {
    const double ka = key(a), kb = key(b);
    return ka != kb ? ka > kb : a.service < b.service;
  });

  if (!explain) return out;
  // The top k on-demand services: unpinned, with demand, best first.
  std::vector<bool> top(out.size(), false);
  size_t rank = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    QueueEntry& e = out[i];
    if (e.pinned) {
      e.why = "pinned by the operator (host = [...])";
      continue;
    }
    if (e.score <= 0) {
      e.why = e.hosted ? "no demand left" : "no demand";
    } else if (unhostable_.contains(e.service)) {
      e.why = "this node cannot host it: " + unhostable_why_;
    } else if (++rank <= config_.k) {
      e.why = fmt::format("rank {} of the top {}", rank, config_.k);
      top[i] = true;
    } else {
      e.why = fmt::format("rank {}, below the top {}", rank, config_.k);
    }
    if (e.hosted && e.score > 0 && config_.keep_factor != 1.0)
      e.why += fmt::format(" (hosted: ranked at {:g} x its score)", config_.keep_factor);
  }
  // Slots: a hosted service holds one while it is in the top k or within T_s.
  size_t held = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    QueueEntry& e = out[i];
    if (!e.hosted || e.pinned) continue;
    auto left = config_.min_service_period - (now - *e.hosted_since);
    if (top[i]) {
      ++held;
    } else if (left > Time::duration::zero()) {
      ++held;
      e.why += fmt::format("; kept {} s more (min_service_period_s)",
                           std::chrono::ceil<std::chrono::seconds>(left).count());
    }
  }
  size_t free = config_.k > held ? config_.k - held : 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (!top[i] || out[i].hosted) continue;
    if (free > 0) {
      --free;
    } else {
      out[i].why += "; no free slot: the hosted services are within min_service_period_s";
    }
  }
  return out;
}

ServiceQueue::Plan ServiceQueue::plan(const Weight& weight, Time now) {
  std::vector<QueueEntry> entries = rank(weight, now, /*explain=*/false);
  Plan p;
  size_t rank = 0;
  std::set<Bytes> wanted;
  for (const QueueEntry& e : entries) {
    if (e.pinned || e.score <= 0 || unhostable_.contains(e.service)) continue;
    if (++rank > config_.k) break;
    wanted.insert(e.service);
  }
  size_t kept = 0;
  for (const QueueEntry& e : entries) {
    if (!e.hosted || e.pinned) continue;
    if (wanted.contains(e.service) || now - *e.hosted_since < config_.min_service_period) {
      ++kept;
    } else {
      p.stop.push_back(e.service);
    }
  }
  size_t free = config_.k > kept ? config_.k - kept : 0;
  for (const QueueEntry& e : entries) {
    if (e.hosted) continue;
    if (e.pinned) {
      p.start.push_back(e.service);
    } else if (wanted.contains(e.service) && free > 0) {
      p.start.push_back(e.service);
      --free;
    }
  }
  return p;
}

void NeedLog::used(const Bytes& service, Time now) {
  uses_.try_emplace(service, need_idle_).first->second.add(now);
}

NeedLog::List NeedLog::list(Time now, const Skip& skip) {
  List l;
  for (auto it = uses_.begin(); it != uses_.end();) {
    const uint64_t n = it->second.count(now);
    if (n == 0) {
      it = uses_.erase(it);
      continue;
    }
    if (!skip || !skip(it->first)) {
      l.services.push_back(it->first);
      l.counts.push_back(uint32_t(std::min<uint64_t>(n, kMaxCount)));
    }
    ++it;
  }
  return l;
}

std::optional<NeedLog::List> NeedLog::to_send(Time now, const Skip& skip) {
  List l = list(now, skip);
  bool send = l.services != sent_.services;
  for (size_t i = 0; !send && i < l.counts.size(); ++i) {
    const uint64_t c = l.counts[i], was = sent_.counts[i];
    send = c >= 2 * was || 2 * c <= was;  // moved by a factor of two
  }
  if (!send) return std::nullopt;
  sent_ = l;
  return l;
}

}  // namespace idn::ise
