#include "p2p/handshake_budget.h"

#include <fmt/format.h>

#include <utility>

namespace idn::p2p {

std::string address_group(const boost::asio::ip::address& addr) {
  if (addr.is_v4()) return addr.to_string();
  auto v6 = addr.to_v6();
  if (v6.is_v4_mapped())
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6).to_string();
  auto bytes = v6.to_bytes();
  for (size_t i = 7; i < bytes.size(); ++i) bytes[i] = 0;  // keep the first 56 bits
  return boost::asio::ip::address_v6(bytes).to_string() + "/56";
}

HandshakeBudget::Admission HandshakeBudget::admit(const boost::asio::ip::address& addr,
                                                  Clock::time_point now,
                                                  std::function<void()> evict) {
  Admission a;
  std::string group = address_group(addr);
  auto g = per_group_.find(group);
  if (g != per_group_.end() && g->second >= limits_.max_pending_per_address) {
    stats_.refused_per_address++;
    a.refused = HandshakeRefusal::kPerAddress;
    return a;
  }
  if (entries_.size() >= limits_.max_pending) {
    auto v = victim(now);
    if (!v) {
      stats_.refused_total++;
      a.refused = HandshakeRefusal::kTotal;
      return a;
    }
    auto it = entries_.find(*v);
    std::function<void()> cb = std::move(it->second.evict);
    erase(it);
    stats_.evicted++;
    a.evicted_other = true;
    cb();
  }
  a.ticket = next_++;
  entries_.emplace(a.ticket, Entry{group, now, std::move(evict)});
  per_group_[group]++;
  stats_.admitted++;
  stats_.pending = entries_.size();
  return a;
}

std::optional<HandshakeBudget::Ticket> HandshakeBudget::victim(Clock::time_point now) const {
  if (auto v = victim(now, true)) return v;
  return victim(now, false);
}

std::optional<HandshakeBudget::Ticket> HandshakeBudget::victim(Clock::time_point now,
                                                               bool silent) const {
  // The group holding the most pending handshakes pays, with its oldest one old enough to be
  // evicted: an address cannot push out other addresses' handshakes while it holds more than
  // they do. Ties go to the oldest evictable handshake.
  const auto min_age = silent ? limits_.silent_evictable_after : limits_.evictable_after;
  std::optional<Ticket> best;
  size_t best_load = 0;
  for (const auto& [t, e] : entries_) {  // oldest first
    if (!e.evict || (silent && e.progressed) || now - e.started < min_age) continue;
    size_t load = per_group_.at(e.group);
    if (load > best_load) {
      best = t;
      best_load = load;
    }
  }
  return best;
}

void HandshakeBudget::mark_progress(Ticket t) {
  auto it = entries_.find(t);
  if (it != entries_.end()) it->second.progressed = true;
}

void HandshakeBudget::set_evictor(Ticket t, std::function<void()> evict) {
  auto it = entries_.find(t);
  if (it != entries_.end()) it->second.evict = std::move(evict);
}

bool HandshakeBudget::release(Ticket t) {
  auto it = entries_.find(t);
  if (it == entries_.end()) return false;
  erase(it);
  return true;
}

std::string HandshakeBudget::describe(HandshakeRefusal r) const {
  switch (r) {
    case HandshakeRefusal::kNone:
      return "admitted";
    case HandshakeRefusal::kPerAddress:
      return fmt::format("pending-handshake limit per address ({}) reached",
                         limits_.max_pending_per_address);
    case HandshakeRefusal::kTotal:
      return fmt::format("pending-handshake limit ({}) reached, none stalled long enough to evict",
                         limits_.max_pending);
  }
  return "?";
}

size_t HandshakeBudget::pending_from(const boost::asio::ip::address& addr) const {
  auto it = per_group_.find(address_group(addr));
  return it == per_group_.end() ? 0 : it->second;
}

void HandshakeBudget::erase(std::map<Ticket, Entry>::iterator it) {
  auto g = per_group_.find(it->second.group);
  if (g != per_group_.end() && --g->second == 0) per_group_.erase(g);
  entries_.erase(it);
  stats_.pending = entries_.size();
}

std::optional<uint64_t> LogThrottle::allow(std::chrono::steady_clock::time_point now) {
  if (last_ && now - *last_ < every_) {
    ++suppressed_;
    return std::nullopt;
  }
  last_ = now;
  uint64_t n = suppressed_;
  suppressed_ = 0;
  return n;
}

}  // namespace idn::p2p
