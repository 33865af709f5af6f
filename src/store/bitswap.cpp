#include "store/bitswap.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <map>
#include <set>

#include "store/exporter.h"

namespace idn::store::bitswap {

using identity::PeerId;
using Clock = std::chrono::steady_clock;

// CIDs remembered as once wanted (1M CIDs ~ 100 MB of DAG metadata at most).
constexpr size_t kMaxRememberedWants = 1 << 20;

// One DAG fetch. Incoming blocks and presences arrive as events from Bitswap::on_message;
// the fetch coroutine consumes them, so all bookkeeping happens in one place.
class Session {
 public:
  enum class Kind { kBlock, kHave, kDontHave, kFaulty, kUnreachable };
  struct Event {
    Kind kind;
    PeerId peer;
    std::optional<core::Cid> cid;
    Bytes data;
  };

  Session(Bitswap& bs, core::Cid root, std::vector<PeerId> providers)
      : bs_(bs), root_(std::move(root)), signal_(bs.exec_) {
    for (auto& p : providers) peers_[p];
  }

  bool wants(const core::Cid& c) const {
    return todo_set_.count(c) || inflight_.count(c) || c == root_;
  }
  bool involves(const PeerId& p) const { return peers_.count(p) > 0; }
  void push(Event e) {
    events_.push_back(std::move(e));
    signal_.notify_all();
  }

  awaitable<Status> run();

 private:
  struct PeerState {
    size_t inflight = 0;
    bool active = false;    // said HAVE for the root (or the root was local)
    bool excluded = false;  // faulty, unreachable or lacks the root
    bool answered_root = false;
  };
  struct Want {
    PeerId peer;
    Clock::time_point since;
  };

  Status visit(const core::Cid& c);  // walks local blocks, queues missing ones
  Status on_block(const PeerId& from, const core::Cid& c, const Bytes& data);
  void requeue(const core::Cid& c, const PeerId& peer, bool cancel);
  void exclude(const PeerId& p);
  Status process_events();
  Status assign();

  Bitswap& bs_;
  core::Cid root_;
  p2p::Signal signal_;
  std::map<PeerId, PeerState> peers_;
  std::deque<core::Cid> todo_;
  std::unordered_set<core::Cid> todo_set_;
  std::unordered_map<core::Cid, Want> inflight_;
  std::unordered_map<core::Cid, std::set<PeerId>> tried_;
  std::unordered_set<core::Cid> done_;
  std::deque<Event> events_;
  bool root_done_ = false;
};

Status Session::visit(const core::Cid& start) {
  std::vector<core::Cid> stack{start};
  while (!stack.empty()) {
    core::Cid c = stack.back();
    stack.pop_back();
    if (done_.count(c) || todo_set_.count(c) || inflight_.count(c)) continue;
    if (bs_.store_.has(c)) {
      auto data = bs_.store_.get_block(c);
      if (data.ok()) {
        done_.insert(c);
        IDN_ASSIGN_OR_RETURN(auto links, block_links(c, *data));
        for (auto& l : links) stack.push_back(l);
        continue;
      }
      if (data.status().code() != Code::kCorruption && data.status().code() != Code::kNotFound) {
        return data.status();
      }
      // A block that rotted on disk was deleted by get_block: fetch it again.
    }
    todo_.push_back(c);
    todo_set_.insert(c);
    bs_.ever_wanted_.insert(c);
  }
  return Status::ok();
}

Status Session::on_block(const PeerId& from, const core::Cid& c, const Bytes& data) {
  if (done_.count(c)) {
    ++bs_.stats_.duplicate_blocks;
    return Status::ok();
  }
  // The CID was computed from the received bytes, so this block verifies by construction; the
  // store checks again before anything reaches disk.
  IDN_RETURN_IF_ERROR(bs_.store_.put_block(c, data));
  ++bs_.stats_.blocks_received;
  bs_.stats_.bytes_received += data.size();
  if (auto it = inflight_.find(c); it != inflight_.end()) {
    if (peers_.count(it->second.peer)) --peers_[it->second.peer].inflight;
    if (it->second.peer != from) {
      Message cancel;
      cancel.wants.push_back(WantEntry{c, 1, true});
      bs_.send(it->second.peer, cancel);
    }
    inflight_.erase(it);
  }
  if (todo_set_.erase(c)) todo_.erase(std::find(todo_.begin(), todo_.end(), c));
  if (c == root_) {
    root_done_ = true;
    if (auto p = peers_.find(from); p != peers_.end() && !p->second.excluded)
      p->second.active = true;
  }
  done_.insert(c);
  IDN_ASSIGN_OR_RETURN(auto links, block_links(c, data));
  for (auto& l : links) IDN_RETURN_IF_ERROR(visit(l));
  return Status::ok();
}

void Session::requeue(const core::Cid& c, const PeerId& peer, bool cancel) {
  auto it = inflight_.find(c);
  if (it == inflight_.end() || it->second.peer != peer) return;
  if (peers_.count(peer) && peers_[peer].inflight > 0) --peers_[peer].inflight;
  inflight_.erase(it);
  tried_[c].insert(peer);
  todo_.push_front(c);
  todo_set_.insert(c);
  if (cancel) {
    Message m;
    m.wants.push_back(WantEntry{c, 1, true});
    bs_.send(peer, m);
  }
}

void Session::exclude(const PeerId& p) {
  auto& st = peers_[p];
  st.excluded = true;
  st.active = false;
  std::vector<core::Cid> mine;
  for (auto& [c, w] : inflight_) {
    if (w.peer == p) mine.push_back(c);
  }
  for (auto& c : mine) requeue(c, p, false);
}

Status Session::process_events() {
  while (!events_.empty()) {
    Event e = std::move(events_.front());
    events_.pop_front();
    if (!peers_.count(e.peer)) {
      // Blocks from peers outside the session are still welcome (they verify by CID).
      if (e.kind != Kind::kBlock) continue;
    }
    switch (e.kind) {
      case Kind::kBlock:
        IDN_RETURN_IF_ERROR(on_block(e.peer, *e.cid, e.data));
        break;
      case Kind::kHave:
        if (*e.cid == root_) {
          auto& st = peers_[e.peer];
          st.answered_root = true;
          if (!st.excluded) st.active = true;
        }
        break;
      case Kind::kDontHave:
        if (*e.cid == root_ && !root_done_) {
          peers_[e.peer].answered_root = true;
          exclude(e.peer);
        } else {
          requeue(*e.cid, e.peer, false);
        }
        break;
      case Kind::kFaulty:
      case Kind::kUnreachable:
        peers_[e.peer].answered_root = true;
        exclude(e.peer);
        break;
    }
  }
  return Status::ok();
}

Status Session::assign() {
  std::map<PeerId, Message> batches;
  const size_t limit = bs_.config_.max_wants_in_flight_per_peer;
  std::deque<core::Cid> waiting;
  while (!todo_.empty()) {
    core::Cid c = todo_.front();
    const auto& tried = tried_[c];
    PeerId* best = nullptr;
    bool any_untried = false;
    for (auto& [p, st] : peers_) {
      if (!st.active || st.excluded || tried.count(p)) continue;
      any_untried = true;
      if (st.inflight >= limit) continue;
      if (!best || st.inflight < peers_[*best].inflight) best = const_cast<PeerId*>(&p);
    }
    if (!best) {
      bool pending_root = false;
      for (auto& [p, st] : peers_) {
        if (!st.excluded && !st.answered_root && !st.active && !tried.count(p)) pending_root = true;
      }
      if (!any_untried && !pending_root) {
        std::string who;
        for (auto& p : tried) who += (who.empty() ? "" : ", ") + p.to_string();
        return Status::not_found(
            "no provider could supply block " + c.to_string() +
            (who.empty() ? std::string(" (no provider has the root)") : " (tried " + who + ")"));
      }
      if (any_untried) break;  // every candidate is at its in-flight limit: wait
      waiting.push_back(c);    // providers still deciding whether they have the root
      todo_.pop_front();
      continue;
    }
    todo_.pop_front();
    todo_set_.erase(c);
    inflight_.insert_or_assign(c, Want{*best, Clock::now()});
    ++peers_[*best].inflight;
    batches[*best].wants.push_back(WantEntry{c, 1, false, WantType::kBlock, true});
  }
  for (auto it = waiting.rbegin(); it != waiting.rend(); ++it) todo_.push_front(*it);
  for (auto& [p, m] : batches) bs_.send(p, m);
  return Status::ok();
}

#define CO_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::idn::Status _idn_co = (expr);          \
    if (!_idn_co.is_ok()) co_return _idn_co; \
  } while (0)

awaitable<Status> Session::run() {
  CO_RETURN_IF_ERROR(visit(root_));
  if (todo_.empty()) co_return Status::ok();  // everything already local: resumed fetch done
  if (!todo_set_.count(root_)) {
    root_done_ = true;
    for (auto& [p, st] : peers_) st.active = true;
  } else {
    // Round one: ask everyone whether they have the root; want-blocks go to those who do.
    Message m;
    m.wants.push_back(WantEntry{root_, 1, false, WantType::kHave, true});
    for (auto& [p, st] : peers_) bs_.send(p, m);
  }
  auto root_deadline = Clock::now() + bs_.config_.root_timeout;
  while (!todo_.empty() || !inflight_.empty()) {
    CO_RETURN_IF_ERROR(process_events());
    auto now = Clock::now();
    std::vector<std::pair<core::Cid, PeerId>> late;
    for (auto& [c, w] : inflight_) {
      if (now - w.since > bs_.config_.want_timeout) late.emplace_back(c, w.peer);
    }
    for (auto& [c, p] : late) {
      ++bs_.stats_.want_timeouts;
      requeue(c, p, true);
    }
    if (!root_done_ && now > root_deadline) {
      bool any_active = false;
      for (auto& [p, st] : peers_) any_active |= st.active && !st.excluded;
      if (!any_active) {
        co_return Status::timeout("no provider answered for root " + root_.to_string() +
                                  " within " + std::to_string(bs_.config_.root_timeout.count()) +
                                  " ms");
      }
    }
    CO_RETURN_IF_ERROR(assign());
    if (todo_.empty() && inflight_.empty()) break;
    if (!events_.empty()) continue;
    auto deadline = now + std::chrono::milliseconds(200);
    for (auto& [c, w] : inflight_)
      deadline = std::min(deadline, w.since + bs_.config_.want_timeout);
    if (!root_done_) deadline = std::min(deadline, root_deadline);
    co_await signal_.wait(deadline + std::chrono::milliseconds(1));
  }
  co_return Status::ok();
}

Bitswap::Bitswap(asio::any_io_executor ex, p2p::Host& host, Blockstore& store, BitswapConfig config)
    : host_(host), store_(store), config_(config), exec_(ex), drained_(ex) {}

Bitswap::~Bitswap() {
  *alive_ = false;
}

void Bitswap::start() {
  auto h = [this, alive = alive_](std::shared_ptr<p2p::Stream> s) -> awaitable<void> {
    if (!*alive) co_return;
    co_await handle_stream(std::move(s));
  };
  host_.set_handler(std::string(kProtocol120), h);
  host_.set_handler(std::string(kProtocol110), h);
}

void Bitswap::stop() {
  host_.remove_handler(std::string(kProtocol120));
  host_.remove_handler(std::string(kProtocol110));
  for (auto& [p, o] : outboxes_) {
    if (o.stream) o.stream->reset();
  }
}

uint64_t Bitswap::faulty_count(const PeerId& peer) const {
  auto it = faulty_.find(peer);
  return it == faulty_.end() ? 0 : it->second;
}

void Bitswap::mark_faulty(const PeerId& peer, uint64_t n) {
  faulty_[peer] += n;
  stats_.bad_blocks += n;
  for (auto* s : sessions_) {
    if (s->involves(peer)) s->push(Session::Event{Session::Kind::kFaulty, peer, std::nullopt, {}});
  }
}

void Bitswap::send(const PeerId& peer, const Message& m) {
  if (m.empty()) return;
  auto& o = outboxes_[peer];
  Bytes b = encode(m);
  o.queued_bytes += b.size();
  o.queue.push_back(std::move(b));
  if (!o.writing) {
    o.writing = true;
    asio::co_spawn(exec_, writer(peer, alive_), asio::detached);
  }
}

awaitable<void> Bitswap::writer(PeerId peer, std::shared_ptr<bool> alive) {
  while (*alive) {
    auto& o = outboxes_[peer];
    if (o.queue.empty()) {
      o.writing = false;
      co_return;
    }
    if (!o.stream) {
      std::vector<std::string> protos;
      protos.emplace_back(kProtocol120);
      protos.emplace_back(kProtocol110);
      auto s = co_await host_.new_stream(peer, std::move(protos));
      if (!*alive) co_return;
      auto& o2 = outboxes_[peer];
      if (!s.ok()) {
        o2.queue.clear();
        o2.queued_bytes = 0;
        o2.writing = false;
        drained_.notify_all();
        for (auto* sess : sessions_) {
          if (sess->involves(peer)) {
            Session::Event ev{Session::Kind::kUnreachable, peer, std::nullopt, Bytes()};
            sess->push(std::move(ev));
          }
        }
        co_return;
      }
      o2.stream = *s;
    }
    auto& o3 = outboxes_[peer];
    Bytes msg = std::move(o3.queue.front());
    o3.queue.pop_front();
    auto stream = o3.stream;
    Status st = co_await p2p::write_length_prefixed(*stream, msg);
    if (!*alive) co_return;
    auto& o4 = outboxes_[peer];
    o4.queued_bytes -= std::min(o4.queued_bytes, msg.size());
    if (!st.is_ok()) {
      stream->reset();
      if (o4.stream == stream) o4.stream.reset();  // reopen for the next message
    }
    drained_.notify_all();
  }
}

awaitable<void> Bitswap::handle_stream(std::shared_ptr<p2p::Stream> s) {
  PeerId peer = s->remote_peer();
  auto alive = alive_;
  while (*alive) {
    auto msg = co_await p2p::read_length_prefixed(*s, config_.max_message_bytes);
    if (!*alive) co_return;
    if (!msg.ok()) {
      // Only a malformed frame is the peer's fault; closes and resets are ordinary.
      Code c = msg.status().code();
      if (c == Code::kCorruption || c == Code::kLimitExceeded || c == Code::kPeerMisbehaved) {
        ++stats_.malformed_messages;
        mark_faulty(peer, 1);
      }
      s->reset();
      co_return;
    }
    auto m = decode(*msg);
    if (!m.ok()) {
      ++stats_.malformed_messages;
      mark_faulty(peer, 1);
      s->reset();
      co_return;
    }
    std::vector<WantEntry> wants = std::move(m->wants);
    on_message(peer, std::move(*m));
    if (!wants.empty()) co_await serve_wants(peer, std::move(wants));
  }
}

void Bitswap::on_message(const PeerId& peer, Message m) {
  if (m.bad_blocks > 0) mark_faulty(peer, m.bad_blocks);
  for (auto& b : m.blocks) {
    bool wanted = false;
    for (auto* s : sessions_) {
      if (s->wants(b.cid)) {
        wanted = true;
        s->push(Session::Event{Session::Kind::kBlock, peer, b.cid, b.data});
      }
    }
    if (wanted) continue;
    if (ever_wanted_.count(b.cid)) {
      ++stats_.duplicate_blocks;  // a late answer to a want we already satisfied
    } else {
      // Bytes that hash to nothing we asked for: a corrupted or forged block.
      ++stats_.unwanted_blocks;
      mark_faulty(peer, 1);
    }
  }
  for (auto& p : m.presences) {
    for (auto* s : sessions_) {
      if (!s->involves(peer)) continue;
      s->push(Session::Event{
          p.type == PresenceType::kHave ? Session::Kind::kHave : Session::Kind::kDontHave,
          peer,
          p.cid,
          {}});
    }
  }
}

awaitable<void> Bitswap::serve_wants(const PeerId& peer, std::vector<WantEntry> wants) {
  if (wants.size() > config_.max_wants_per_peer) {
    stats_.wants_refused += wants.size() - config_.max_wants_per_peer;
    wants.erase(wants.begin() + ptrdiff_t(config_.max_wants_per_peer), wants.end());
  }
  auto alive = alive_;
  Message out;
  size_t out_bytes = 0;
  for (auto& w : wants) {
    if (w.cancel) continue;  // we answer at once and keep no ledger, so nothing to cancel
    if (!store_.has(w.cid)) {
      if (w.send_dont_have) out.presences.push_back(Presence{w.cid, PresenceType::kDontHave});
      continue;
    }
    if (w.type == WantType::kHave) {
      out.presences.push_back(Presence{w.cid, PresenceType::kHave});
      continue;
    }
    auto data = store_.get_block(w.cid);  // verified read: a rotten block is never served
    if (!data.ok()) {
      if (w.send_dont_have) out.presences.push_back(Presence{w.cid, PresenceType::kDontHave});
      continue;
    }
    if (out_bytes + data->size() > config_.target_response_bytes && !out.empty()) {
      send(peer, out);
      out = Message{};
      out_bytes = 0;
    }
    // Backpressure: wait for this peer's queue to drain below the limit.
    auto deadline = Clock::now() + config_.backpressure_timeout;
    while (outboxes_[peer].queued_bytes > config_.max_outstanding_bytes_per_peer) {
      if (!co_await drained_.wait(deadline) || !*alive) {
        stats_.wants_refused += 1;
        co_return;
      }
    }
    ++stats_.blocks_sent;
    stats_.bytes_sent += data->size();
    out_bytes += data->size();
    out.blocks.push_back(Block{w.cid, std::move(*data)});
  }
  send(peer, out);
}

awaitable<Status> Bitswap::fetch_dag(core::Cid root, std::vector<PeerId> providers) {
  if (providers.empty())
    co_return Status::invalid_argument("fetch " + root.to_string() + ": no providers given");
  auto session = std::make_unique<Session>(*this, root, providers);
  sessions_.push_back(session.get());
  ever_wanted_.insert(root);
  Status st = co_await session->run();
  sessions_.erase(std::find(sessions_.begin(), sessions_.end(), session.get()));
  // Remembered so late duplicates are not mistaken for forged blocks; bounded.
  if (ever_wanted_.size() > kMaxRememberedWants) ever_wanted_.clear();
  co_return st;
}

}  // namespace idn::store::bitswap
