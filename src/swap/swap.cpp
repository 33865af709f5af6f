#include "swap/swap.h"

#include <fmt/format.h>

#include <algorithm>

#include "identity/peer_id.h"

namespace idn::swap {
namespace {

Bytes to_bytes(ByteView b) {
  return Bytes(b.begin(), b.end());
}

std::string name_of(ByteView id) {
  auto pid = identity::PeerId::from_bytes(id);
  return pid.ok() ? pid->to_base58() : hex_encode(id);
}

}  // namespace

std::string_view peer_state_name(PeerState s) {
  switch (s) {
    case PeerState::kOpen:
      return "open";
    case PeerState::kOnline:
      return "online";
    case PeerState::kIgnore:
      return "ignore";
    case PeerState::kClose:
      return "close";
  }
  return "?";
}

Result<std::unique_ptr<ComputeSwap>> ComputeSwap::open(const Config& config,
                                                       const identity::KeyPair& key,
                                                       const std::filesystem::path& ledger_path,
                                                       const Clock& clock,
                                                       std::function<double()> uniform) {
  IDN_RETURN_IF_ERROR(validate(config));
  if (!uniform) return Status::invalid_argument("ComputeSwap needs a random source");
  Bytes self = identity::PeerId::from_public_key(key.public_key()).bytes();
  IDN_ASSIGN_OR_RETURN(auto store, LedgerStore::open(ledger_path, self));
  store->set_group_commit(config.commit_interval_ms > 0);
  return std::unique_ptr<ComputeSwap>(
      new ComputeSwap(config, key, clock, std::move(uniform), std::move(store)));
}

ComputeSwap::ComputeSwap(const Config& c, const identity::KeyPair& key, const Clock& clock,
                         std::function<double()> uniform, std::unique_ptr<LedgerStore> store)
    : config_(c),
      key_(key),
      clock_(clock),
      uniform_(std::move(uniform)),
      store_(std::move(store)),
      trusted_(c.trusted.begin(), c.trusted.end()),
      blacklist_(c.blacklist.begin(), c.blacklist.end()) {}

// Lookups by ByteView (BytesHash and BytesEqual are transparent): no copy of the ID on the
// per-request paths.
ComputeSwap::Peer& ComputeSwap::peer(ByteView id) {
  auto it = peers_.find(id);
  if (it == peers_.end()) it = peers_.emplace(to_bytes(id), Peer{}).first;
  return it->second;
}

bool ComputeSwap::is_trusted(ByteView peer) const {
  return trusted_.find(peer) != trusted_.end();
}

bool ComputeSwap::is_blacklisted(ByteView peer) const {
  return blacklist_.find(peer) != blacklist_.end();
}

std::chrono::nanoseconds ComputeSwap::list_period() {
  // Randomised in [0.5, 1.5] x the period, so peers do not all send at once.
  double f = 0.5 + uniform_();
  return std::chrono::nanoseconds(int64_t(f * config_.list_refresh_s * 1e9));
}

void ComputeSwap::send_lists(ByteView id, Peer& p) {
  actions_.push_back(SendSwap{to_bytes(id), protocol::NeedList{need_list_, need_counts_}});
  actions_.push_back(SendSwap{to_bytes(id), protocol::HaveList{have_list_}});
  p.next_lists = clock_.now() + list_period();
}

void ComputeSwap::wake(ByteView id, Peer& p) {
  if (p.awake) return;
  p.awake = true;
  awake_.push_back(&*peers_.find(id));
}

void ComputeSwap::go_online(ByteView id, Peer& p) {
  p.state = PeerState::kOnline;
  wake(id, p);
  p.agreed = true;
  send_lists(id, p);
}

void ComputeSwap::ignore(ByteView id, Peer& p, std::string reason) {
  p.state = PeerState::kIgnore;
  wake(id, p);
  p.ignore_until = clock_.now() + std::chrono::seconds(config_.ignore_period_s);
  p.reason = std::move(reason);
}

uint64_t ComputeSwap::unsigned_receipts(ByteView id) {
  const Ledger* l = store_->find_ledger(id);
  if (!l) return 0;
  auto held = store_->checkpoint(id);
  return held && held->ledger.sequence < l->sequence ? l->sequence - held->ledger.sequence
         : held                                      ? 0
                                                     : l->sequence;
}

void ComputeSwap::propose_checkpoint(ByteView id) {
  const Ledger& l = store_->ledger(id);
  auto held = store_->checkpoint(id);
  if (l.sequence == 0 || (held && held->ledger.sequence >= l.sequence)) return;
  Checkpoint c;
  c.ledger = l;
  c.unix_ms = clock_.unix_ms();
  if (!sign_checkpoint(c, key_).is_ok()) return;  // we are always a member of our ledgers
  // Nothing we sign may rest on updates a crash could take back: a checkpoint both signed
  // hides the receipts under it, so ours (and the charges they settle) must be in the file
  // before the peer can hold it. One commit per checkpoint_every receipts; the charges still
  // awaiting receipts are not under it and wait for the owner's commits.
  if (Status st = store_->commit(LedgerStore::kNoOpenCharges); !st.is_ok())
    return;  // memory fell back; no proposal
  proposals_[to_bytes(id)] = c;
  actions_.push_back(SendCheckpoint{to_bytes(id), std::move(c)});
}

void ComputeSwap::close(ByteView id, Peer& p, bool final, std::string reason) {
  // At shutdown always; at an idle close only when enough receipts would come under it: four
  // signature operations for the one or two receipts of a passing peer cost more than
  // carrying them in the next Open's evidence.
  if (final || unsigned_receipts(id) >= config_.close_checkpoint_min) propose_checkpoint(id);
  actions_.push_back(SendSwap{to_bytes(id), protocol::SwapClose{final, reason}});
  // §7.5.3.4: everything but the ledger is cleared. What guards against abuse (an ignore
  // period, contempt, the counters shown to the operator) outlives the connection.
  p.state = PeerState::kClose;
  p.agreed = false;
  p.need_list.clear();
  p.need_counts.clear();
  p.have_list.clear();
  p.reason = std::move(reason);
}

void ComputeSwap::on_connected(ByteView id) {
  Peer& p = peer(id);
  p.connected = true;
  p.agreed = false;
  p.last_seen = clock_.now();
  p.seen = true;
  if (is_blacklisted(id) || p.contempt) {
    p.state = PeerState::kClose;
    actions_.push_back(Disconnect{to_bytes(id), is_blacklisted(id) ? "blacklisted" : p.reason});
    return;
  }
  if (clock_.now() < p.ignore_until) {
    p.state = PeerState::kIgnore;  // the Open waits until the ignore period ends
    wake(id, p);
    return;
  }
  p.state = PeerState::kOpen;
  wake(id, p);
  send_open(id, p, false);
}

void ComputeSwap::send_open(ByteView id, Peer& p, bool reply) {
  if (!reply) p.open_sent = clock_.now();
  actions_.push_back(
      SendSwap{to_bytes(id),
               protocol::SwapOpen{store_->ledger(id).view_of(self(), clock_.unix_ms()), reply}});
}

void ComputeSwap::on_disconnected(ByteView id) {
  Peer& p = peer(id);
  p.connected = false;
  p.agreed = false;
  p.need_list.clear();
  p.need_counts.clear();
  p.have_list.clear();
  if (p.state != PeerState::kIgnore) p.state = PeerState::kClose;
}

bool ComputeSwap::accept_message(ByteView id) {
  Peer& p = peer(id);
  if (is_blacklisted(id) || p.contempt || clock_.now() < p.ignore_until) return false;
  // §7.5.3.5: Close(final = false) after T_c without any message from the peer, lists too (a
  // peer that hosts nothing learns demand only from the need lists of Online peers).
  p.last_seen = clock_.now();
  p.seen = true;
  return true;
}

ComputeSwap::OpenResult ComputeSwap::on_open(ByteView id, const protocol::SwapOpen& open) {
  Peer& p = peer(id);
  if (is_blacklisted(id)) {
    p.state = PeerState::kClose;
    actions_.push_back(Disconnect{to_bytes(id), "blacklisted"});
    return OpenResult::kRefused;
  }
  if (p.contempt || clock_.now() < p.ignore_until) return OpenResult::kRefused;
  const Ledger& l = store_->ledger(id);
  if (l.matches_remote_view(self(), open.ledger)) {
    if (p.state != PeerState::kOnline) {
      go_online(id, p);
    } else if (!open.reply) {
      send_open(id, p, true);  // the peer opens again: our Open never reached it
    }
    return OpenResult::kOnline;
  }
  if (config_.on_ledger_mismatch == MismatchPolicy::kContempt) {
    p.contempt = true;
    p.state = PeerState::kClose;
    p.reason = fmt::format(
        "ledger views differ: ours {{debt {}, credit {}, sequence {}}}, theirs {{debt {}, credit "
        "{}, sequence {}}}; holding the peer in contempt",
        l.debt_of(self()), l.credit_of(self()), l.sequence, open.ledger.debt, open.ledger.credit,
        open.ledger.sequence);
    actions_.push_back(Disconnect{to_bytes(id), p.reason});
    return OpenResult::kContempt;
  }
  p.state = PeerState::kOpen;
  wake(id, p);
  auto ours = store_->evidence(id);
  if (!ours.ok()) {
    p.reason = "cannot read our ledger: " + ours.status().message();
    return OpenResult::kRefused;
  }
  actions_.push_back(SendEvidence{to_bytes(id), std::move(*ours)});
  return OpenResult::kNeedEvidence;
}

Status ComputeSwap::on_evidence(ByteView id, const Evidence& theirs) {
  Peer& p = peer(id);
  IDN_ASSIGN_OR_RETURN(auto ours, store_->evidence(id));
  auto rec = reconcile(self(), id, ours, theirs);
  if (!rec.ok()) {
    if (rec.status().code() == Code::kPeerMisbehaved) {
      p.contempt = true;
      p.state = PeerState::kClose;
      p.reason = "forged ledger evidence: " + rec.status().message();
      actions_.push_back(Disconnect{to_bytes(id), p.reason});
    }
    return rec.status();
  }
  if (!rec->disputed.empty() && config_.on_ledger_mismatch == MismatchPolicy::kContempt) {
    p.contempt = true;
    p.state = PeerState::kClose;
    p.reason = rec->reason;
    actions_.push_back(Disconnect{to_bytes(id), p.reason});
    return Status::ok();
  }
  IDN_RETURN_IF_ERROR(store_->adopt(id, *rec));
  p.reason = rec->reason;
  if (p.state != PeerState::kOnline) go_online(id, p);
  // The side that was served for signs the reconciled ledger at once: otherwise a series of
  // crashes, each before the next regular checkpoint was countersigned, piles more receipts
  // after the last signed checkpoint than one Evidence may carry (max_evidence_receipts), and
  // the two ledgers could never be reconciled again (seen in cli.swap_crash: 4835 receipts).
  if (store_->ledger(id).credit_of(self()) > 0 &&
      unsigned_receipts(id) >= config_.close_checkpoint_min)
    propose_checkpoint(id);
  return Status::ok();
}

void ComputeSwap::on_need_list(ByteView id, const protocol::NeedList& l) {
  Peer& p = peer(id);
  p.need_list = l.service_ids;
  p.need_counts = l.counts;  // decode_swap checked its length
}

void ComputeSwap::on_have_list(ByteView id, const protocol::HaveList& l) {
  peer(id).have_list = l.service_ids;
}

void ComputeSwap::on_close(ByteView id, bool final) {
  Peer& p = peer(id);
  p.state = PeerState::kClose;
  p.agreed = false;
  p.need_list.clear();
  p.need_counts.clear();
  p.have_list.clear();
  p.reason = final ? "peer shut down" : "peer closed (idle)";
}

void ComputeSwap::set_need_list(std::vector<Bytes> services, std::vector<uint32_t> counts) {
  if (!counts.empty() && counts.size() != services.size()) counts.clear();  // a caller's bug
  if (need_list_ == services && need_counts_ == counts) return;
  need_list_ = BytesList(std::move(services));
  need_counts_ = CountList(std::move(counts));
  for (const auto& it : awake_) {  // every Online peer is awake
    if (it->second.state == PeerState::kOnline) {
      actions_.push_back(SendSwap{it->first, protocol::NeedList{need_list_, need_counts_}});
    }
  }
}

void ComputeSwap::set_have_list(std::vector<Bytes> services) {
  if (have_list_ == services) return;
  have_list_ = BytesList(std::move(services));
  for (const auto& it : awake_) {  // every Online peer is awake
    if (it->second.state == PeerState::kOnline) {
      actions_.push_back(SendSwap{it->first, protocol::HaveList{have_list_}});
    }
  }
}

void ComputeSwap::shutdown() {
  for (size_t i = 0; i < awake_.size(); ++i) {  // Online and Open peers are awake
    auto& [id, p] = *awake_[i];
    if (p.state == PeerState::kOnline || p.state == PeerState::kOpen) {
      close(id, p, true, "shutting down");
    }
  }
}

void ComputeSwap::tick() {
  Time now = clock_.now();
  // Only peers out of Close have timers; a network's worth of closed ledgers costs nothing.
  for (size_t i = 0; i < awake_.size();) {
    const auto it = awake_[i];
    const Bytes& id = it->first;
    Peer& p = it->second;
    if (p.state == PeerState::kIgnore && now >= p.ignore_until) {
      if (!p.connected) {
        p.state = PeerState::kClose;
      } else if (p.agreed) {
        p.state = PeerState::kOnline;
        p.last_seen = now;
      } else {
        p.state = PeerState::kOpen;
        p.last_seen = now;
        send_open(id, p, false);
      }
    } else if (p.state == PeerState::kOpen && p.connected && now - p.open_sent >= kOpenRetry) {
      send_open(id, p, false);  // our Open, or the Evidence after it, may have been lost
    }
    if (p.state == PeerState::kOnline) {
      if (p.seen && now - p.last_seen >= std::chrono::seconds(config_.idle_close_s)) {
        close(id, p, false, fmt::format("idle for {} s", config_.idle_close_s));
      } else if (now >= p.next_lists) {
        send_lists(id, p);
      }
    }
    if (p.state == PeerState::kClose) {
      p.awake = false;
      awake_[i] = std::move(awake_.back());
      awake_.pop_back();
    } else {
      ++i;
    }
  }
  // Receipts that never came: the work stays on the requester's debt in our view.
  (void)store_->expire_charges(clock_.unix_ms());
}

Admit ComputeSwap::on_request(ByteView id, ByteView service_id, uint64_t request_id) {
  Peer& p = peer(id);
  p.last_seen = clock_.now();
  p.seen = true;
  if (is_blacklisted(id)) {
    ++p.refused;
    actions_.push_back(Disconnect{to_bytes(id), "blacklisted"});
    return {false, "blacklisted"};
  }
  if (p.contempt) {
    ++p.refused;
    return {false, "held in contempt: " + p.reason};
  }
  if (clock_.now() < p.ignore_until) {
    ++p.refused;
    auto left = std::chrono::duration_cast<std::chrono::seconds>(p.ignore_until - clock_.now());
    return {false, fmt::format("ignored for {} more s ({})", left.count() + 1, p.reason)};
  }
  if (is_trusted(id)) {
    ++p.served;
    return {true, {}};
  }
  const Standing s = standing(id);  // not snapshot(): this runs once per request
  if (uniform_() < s.p) {
    ++p.served;
    return {true, {}};
  }
  ++p.refused;
  std::string why = fmt::format(
      "debt ratio {:.3f} gives p(r) = {:.3f}; refused, ignoring the peer "
      "for {} s",
      s.r, s.p, config_.ignore_period_s);
  ignore(id, p, why);
  return {false, why};
}

Status ComputeSwap::on_answered(ByteView id, uint64_t request_id, ByteView service_id,
                                uint64_t ops) {
  uint64_t deadline = clock_.unix_ms() + config_.receipt_timeout_ms;
  return store_->add_charge(id, request_id, service_id, ops, deadline);
}

Status ComputeSwap::on_receipt(ByteView id, const protocol::Receipt& receipt) {
  IDN_ASSIGN_OR_RETURN(auto out, store_->apply_receipt(id, receipt));
  if (out.applied) {
    Peer& p = peer(id);  // a receipt made or received: the peer is not silent
    p.last_seen = clock_.now();
    p.seen = true;
  }
  // The provider proposes, so the requester (which stored the receipt before sending it) is
  // never behind the proposal it is asked to sign.
  if (out.applied && out.we_served && config_.checkpoint_every > 0 &&
      out.sequence % config_.checkpoint_every == 0) {
    propose_checkpoint(id);
  }
  return Status::ok();
}

protocol::Receipt ComputeSwap::make_receipt(ByteView provider, uint64_t request_id,
                                            ByteView service_id, uint64_t ops) const {
  protocol::Receipt r;
  r.request_id = request_id;
  r.service_id = to_bytes(service_id);
  r.operations = ops;
  r.server = to_bytes(provider);
  r.signer = self();
  r.unix_ms = clock_.unix_ms();
  return r;
}

Status ComputeSwap::on_checkpoint(ByteView id, const Checkpoint& c) {
  Ledger pair = Ledger::between(self(), id);
  if (c.ledger.node1 != pair.node1 || c.ledger.node2 != pair.node2) {
    return Status::peer_misbehaved("checkpoint of another pair of nodes from " + name_of(id));
  }
  bool we_are_1 = pair.node1 == self();
  if (c.fully_signed()) {
    // The countersigned copy of our own proposal: our signature is the one we made.
    auto p = proposals_.find(to_bytes(id));
    if (p != proposals_.end() && p->second.ledger == c.ledger && p->second.unix_ms == c.unix_ms &&
        (we_are_1 ? p->second.sig1 == c.sig1 : p->second.sig2 == c.sig2)) {
      IDN_RETURN_IF_ERROR(verify_signature_of(c, id));
      proposals_.erase(p);
      return store_->store_checkpoint(id, c, /*verified=*/true);
    }
    return store_->store_checkpoint(id, c);
  }
  if (!(we_are_1 ? c.sig1 : c.sig2).empty()) {
    return Status::peer_misbehaved("checkpoint proposal already carries our signature");
  }
  IDN_RETURN_IF_ERROR(verify_signature_of(c, id));
  if (auto held = store_->checkpoint(id); held && held->ledger.sequence >= c.ledger.sequence) {
    return Status::peer_misbehaved(
        fmt::format("checkpoint proposal at sequence {} is not newer than ours ({})",
                    c.ledger.sequence, held->ledger.sequence));
  }
  IDN_ASSIGN_OR_RETURN(auto at, store_->ledger_at(id, c.ledger.sequence));
  if (!(at == c.ledger)) {
    return Status::unavailable(
        fmt::format("checkpoint proposal {} differs from our ledger at "
                    "that sequence {}; not signed",
                    c.ledger.to_string(), at.to_string()));
  }
  Checkpoint full = c;
  IDN_RETURN_IF_ERROR(sign_checkpoint(full, key_));
  IDN_RETURN_IF_ERROR(store_->store_checkpoint(id, full, /*verified=*/true));
  // As in propose_checkpoint: durable before our signature leaves.
  IDN_RETURN_IF_ERROR(store_->commit());
  actions_.push_back(SendCheckpoint{to_bytes(id), std::move(full)});
  return Status::ok();
}

void ComputeSwap::on_refused_by(ByteView id) {
  peer(id).ignores_us_until = clock_.now() + std::chrono::seconds(config_.ignore_period_s);
}

bool ComputeSwap::should_challenge() {
  return config_.challenge_rate > 0 && uniform_() < config_.challenge_rate;
}

bool ComputeSwap::should_challenge(ByteView id) {
  return in_probation(id) || should_challenge();
}

bool ComputeSwap::in_probation(ByteView id) const {
  if (config_.probation_challenges == 0 || trusted_.count(id)) return false;
  auto it = peers_.find(id);
  return it == peers_.end() || it->second.passed < config_.probation_challenges;
}

void ComputeSwap::on_challenge_result(ByteView id, bool passed) {
  Peer& p = peer(id);
  if (passed) {
    ++p.passed;
    return;
  }
  ++p.failed;
  std::string why = "answered a challenge wrongly";
  if (config_.on_challenge_failure == ChallengeFailure::kBlacklist) {
    blacklist(id, why);
  } else {
    ignore(id, p, why);
  }
}

void ComputeSwap::on_suspicious(ByteView id) {
  ++peer(id).suspicious;
}

std::optional<double> ComputeSwap::provider_score(ByteView id) {
  // Read-only: scoring every provider a lookup returned must not create state for each.
  if (is_blacklisted(id)) return std::nullopt;
  if (auto it = peers_.find(id); it != peers_.end()) {
    const Peer& p = it->second;
    Time now = clock_.now();
    if (p.contempt || now < p.ignore_until || now < p.ignores_us_until) return std::nullopt;
  }
  const Ledger* l = store_->find_ledger(id);
  if (!l) return kBestProviderScore;  // no ledger yet: we owe it nothing
  return kBestProviderScore /
         (1.0 + debt_ratio(l->debt_of(self()), l->credit_of(self()), config_.grace_ops));
}

std::vector<Bytes> ComputeSwap::peers_having(ByteView service) {
  std::vector<Bytes> out;
  for (const auto* it : awake_) {  // every Online peer is awake
    const auto& [id, p] = *it;
    if (!p.connected || p.state != PeerState::kOnline) continue;
    bool has = std::any_of(p.have_list.begin(), p.have_list.end(), [&](const Bytes& s) {
      return std::equal(s.begin(), s.end(), service.begin(), service.end());
    });
    if (has && provider_score(id)) out.push_back(id);
  }
  std::sort(out.begin(), out.end(), BytesLess{});  // a stable order, whatever the hash map's
  return out;
}

std::unordered_map<Bytes, size_t, BytesHash, BytesEqual> ComputeSwap::have_counts() const {
  std::unordered_map<Bytes, size_t, BytesHash, BytesEqual> out;
  for (const auto* it : awake_) {  // every Online peer is awake
    const Peer& p = it->second;
    if (!p.connected || p.state != PeerState::kOnline) continue;
    for (const Bytes& s : p.have_list) ++out[s];
  }
  return out;
}

void ComputeSwap::blacklist(ByteView id, std::string reason) {
  blacklist_.insert(to_bytes(id));
  Peer& p = peer(id);
  p.state = PeerState::kClose;
  p.agreed = false;
  p.reason = "blacklisted: " + reason;
  actions_.push_back(Disconnect{to_bytes(id), p.reason});
}

std::vector<Action> ComputeSwap::take_actions() {
  return std::exchange(actions_, {});
}

ComputeSwap::Standing ComputeSwap::standing(ByteView id) {
  const auto [l, t] = store_->balance(id);
  Standing s;
  s.debt = l.debt_of(id) + t.pending_ops + t.unpaid_ops;
  s.credit = l.credit_of(id);
  s.r = debt_ratio(s.debt, s.credit, config_.grace_ops);
  s.p = is_blacklisted(id) ? 0.0
        : is_trusted(id)   ? 1.0
                           : service_probability(s.r, config_.strategy());
  return s;
}

PeerSnapshot ComputeSwap::snapshot(ByteView id) {
  Peer& p = peer(id);
  const Ledger& l = store_->ledger(id);
  const ChargeTotals& t = store_->charges(id);
  const Standing st = standing(id);
  PeerSnapshot s;
  s.peer = to_bytes(id);
  Time now = clock_.now();
  s.state = now < p.ignore_until ? PeerState::kIgnore : p.state;
  s.trusted = is_trusted(id);
  s.blacklisted = is_blacklisted(id);
  s.contempt = p.contempt;
  s.pending_ops = t.pending_ops;
  s.unpaid_ops = t.unpaid_ops;
  s.debt = st.debt;
  s.credit = st.credit;
  s.r = st.r;
  s.p = st.p;
  s.sequence = l.sequence;
  if (auto cp = store_->checkpoint(id)) s.checkpoint_sequence = cp->ledger.sequence;
  if (p.seen) s.last_seen = p.last_seen;
  if (now < p.ignore_until) s.ignored_until = p.ignore_until;
  if (now < p.ignores_us_until) s.ignores_us_until = p.ignores_us_until;
  s.served = p.served;
  s.refused = p.refused;
  s.challenges_passed = p.passed;
  s.challenges_failed = p.failed;
  s.suspicious = p.suspicious;
  s.need_list = p.need_list.get();
  s.need_counts = p.need_counts.get();
  s.have_list = p.have_list.get();
  s.reason = p.reason;
  return s;
}

std::vector<PeerSnapshot> ComputeSwap::snapshot() {
  std::set<Bytes, BytesLess> ids;
  for (const auto& [id, p] : peers_) ids.insert(id);
  for (auto& id : store_->peers()) ids.insert(id);
  std::vector<PeerSnapshot> out;
  for (const auto& id : ids) out.push_back(snapshot(id));
  return out;
}

}  // namespace idn::swap
