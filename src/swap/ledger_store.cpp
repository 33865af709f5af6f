#include "swap/ledger_store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>
#include <span>
#include <utility>

#include "swap/receipt_log.h"

namespace idn::swap {

namespace {

// m[peer], allocating the key only when the entry is new (the per-request paths look up
// existing peers thousands of times a second).
template <class Map>
typename Map::mapped_type& entry(Map& m, ByteView peer) {
  auto it = m.find(peer);
  if (it == m.end())
    it = m.emplace(Bytes(peer.begin(), peer.end()), typename Map::mapped_type{}).first;
  return it->second;
}

bool same(ByteView a, ByteView b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

Bytes to_bytes(ByteView b) {
  return Bytes(b.begin(), b.end());
}

constexpr const char* kSchema =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);"
    // Every receipt held, as a log: per peer, runs of compact records (swap/receipt_log.h)
    // with sequences first_seq..last_seq, one row per commit. The shared ledger with a peer is
    // its checkpoint plus the receipts after it.
    "CREATE TABLE IF NOT EXISTS receipt_log(peer BLOB NOT NULL, first_seq INTEGER NOT NULL,"
    " last_seq INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY(peer, first_seq))"
    " WITHOUT ROWID;"
    // The provider's charges awaiting a receipt (unpaid = 1 once the timeout passed).
    "CREATE TABLE IF NOT EXISTS charges(peer BLOB NOT NULL, request_id INTEGER NOT NULL,"
    " service BLOB NOT NULL, ops INTEGER NOT NULL, deadline_ms INTEGER NOT NULL,"
    " unpaid INTEGER NOT NULL, PRIMARY KEY(peer, request_id)) WITHOUT ROWID;"
    // The last checkpoint both sides signed.
    "CREATE TABLE IF NOT EXISTS checkpoints(peer BLOB PRIMARY KEY, debt1 INTEGER NOT NULL,"
    " debt2 INTEGER NOT NULL, sequence INTEGER NOT NULL, unix_ms INTEGER NOT NULL,"
    " sig1 BLOB NOT NULL, sig2 BLOB NOT NULL);";

}  // namespace

Result<std::unique_ptr<LedgerStore>> LedgerStore::open(const std::filesystem::path& path,
                                                       Bytes self, db::OpenOptions options) {
  if (self.empty()) return Status::invalid_argument("ledger store needs our node ID");
  std::error_code ec;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
  IDN_ASSIGN_OR_RETURN(auto db, db::Database::open(path, std::move(options)));
  std::unique_ptr<LedgerStore> s(new LedgerStore(std::move(db), std::move(self)));
  IDN_RETURN_IF_ERROR(s->init());
  return s;
}

Status LedgerStore::init() {
  IDN_RETURN_IF_ERROR(db_->exec(kSchema));
  // The ledgers are ours: a data dir moved under another identity would misread every one.
  {
    IDN_ASSIGN_OR_RETURN(auto get, db_->prepare("SELECT value FROM meta WHERE key = 'self'"));
    IDN_ASSIGN_OR_RETURN(bool row, get.step());
    if (row && !same(get.blob(0), self_)) {
      return Status::invalid_argument(db_->path().string() +
                                      " holds the swap ledgers of another node identity");
    }
    if (!row) {
      IDN_ASSIGN_OR_RETURN(auto put,
                           db_->prepare("INSERT INTO meta(key, value) VALUES('self', ?)"));
      IDN_RETURN_IF_ERROR(put.bind(1, self_).run("record node ID"));
    }
  }
  IDN_RETURN_IF_ERROR(migrate_receipt_rows());
  IDN_ASSIGN_OR_RETURN(auto put_log,
                       db_->prepare("INSERT INTO receipt_log(peer, first_seq, last_seq, body)"
                                    " VALUES(?,?,?,?)"));
  put_log_.emplace(std::move(put_log));
  IDN_ASSIGN_OR_RETURN(auto put_charge,
                       db_->prepare("INSERT INTO charges(peer, request_id, service, ops,"
                                    " deadline_ms, unpaid) VALUES(?,?,?,?,?,?)"));
  put_charge_.emplace(std::move(put_charge));
  IDN_ASSIGN_OR_RETURN(auto del_charge,
                       db_->prepare("DELETE FROM charges WHERE peer = ? AND request_id = ?"));
  del_charge_.emplace(std::move(del_charge));
  return load();
}

Status LedgerStore::migrate_receipt_rows() {
  {
    IDN_ASSIGN_OR_RETURN(auto has, db_->prepare("SELECT 1 FROM sqlite_master WHERE type ="
                                                " 'table' AND name = 'receipts'"));
    IDN_ASSIGN_OR_RETURN(bool old, has.step());
    if (!old) return Status::ok();
  }
  IDN_ASSIGN_OR_RETURN(auto tx, db::Transaction::begin(*db_));
  IDN_ASSIGN_OR_RETURN(auto put, db_->prepare("INSERT INTO receipt_log(peer, first_seq,"
                                              " last_seq, body) VALUES(?,?,?,?)"));
  uint64_t moved = 0;
  Bytes peer;
  std::vector<HeldReceipt> run;
  auto flush = [&]() -> Status {
    if (run.empty()) return Status::ok();
    IDN_ASSIGN_OR_RETURN(Bytes body, encode_receipt_log(self_, peer, run));
    put.reset();
    IDN_RETURN_IF_ERROR(put.bind(1, peer)
                            .bind(2, run.front().sequence)
                            .bind(3, run.back().sequence)
                            .bind(4, body)
                            .run("move receipts into the log"));
    moved += run.size();
    run.clear();
    return Status::ok();
  };
  {
    IDN_ASSIGN_OR_RETURN(auto s, db_->prepare("SELECT peer, server, request_id, signer, service,"
                                              " ops, unix_ms, sequence FROM receipts"
                                              " ORDER BY peer, sequence"));
    for (;;) {
      IDN_ASSIGN_OR_RETURN(bool row, s.step());
      if (!row) break;
      Bytes p = s.blob(0);
      if (p.empty() || same(p, self_)) return Status::corruption("receipt with a bad peer ID");
      if (p != peer || run.size() >= 1024) {
        IDN_RETURN_IF_ERROR(flush());
        peer = std::move(p);
      }
      HeldReceipt h;
      h.receipt.server = s.blob(1);
      h.receipt.request_id = s.u64(2);
      h.receipt.signer = s.blob(3);
      h.receipt.service_id = s.blob(4);
      h.receipt.operations = s.u64(5);
      h.receipt.unix_ms = s.u64(6);
      h.sequence = s.u64(7);
      run.push_back(std::move(h));
    }
  }
  IDN_RETURN_IF_ERROR(flush());
  IDN_RETURN_IF_ERROR(db_->exec("DROP INDEX IF EXISTS receipts_seq; DROP TABLE receipts;"));
  IDN_RETURN_IF_ERROR(tx.commit());
  spdlog::info("swap ledgers: moved {} receipts into the receipt log", moved);
  return Status::ok();
}

bool LedgerStore::holds(ByteView peer, bool we_served, uint64_t request_id) const {
  auto it = held_.find(peer);
  if (it == held_.end()) return false;
  const Held& h = it->second;
  return we_served ? h.served.count(request_id) || h.older_served.count(request_id)
                   : h.paid.count(request_id) || h.older_paid.count(request_id);
}

Status LedgerStore::load() {
  ledgers_.clear();
  totals_.clear();
  open_charges_.clear();
  unsaved_charges_.clear();
  checkpoints_.clear();
  held_.clear();
  unwritten_.clear();
  {
    IDN_ASSIGN_OR_RETURN(auto s, db_->prepare("SELECT peer, debt1, debt2, sequence, unix_ms, sig1,"
                                              " sig2 FROM checkpoints"));
    for (;;) {
      IDN_ASSIGN_OR_RETURN(bool row, s.step());
      if (!row) break;
      Bytes peer = s.blob(0);
      if (peer.empty() || same(peer, self_)) {
        return Status::corruption("checkpoint with a bad peer ID");
      }
      Checkpoint c;
      c.ledger = Ledger::between(self_, peer);
      c.ledger.debt1 = s.u64(1);
      c.ledger.debt2 = s.u64(2);
      c.ledger.sequence = s.u64(3);
      c.unix_ms = s.u64(4);
      c.sig1 = s.blob(5);
      c.sig2 = s.blob(6);
      checkpoints_[peer] = c;
      ledgers_[peer] = c.ledger;
    }
  }
  {
    // Each ledger: its checkpoint (or zero) plus the receipts after it. Log rows wholly at or
    // below the checkpoint are history: not read.
    IDN_ASSIGN_OR_RETURN(auto s, db_->prepare("SELECT peer, last_seq, body FROM receipt_log"));
    for (;;) {
      IDN_ASSIGN_OR_RETURN(bool row, s.step());
      if (!row) break;
      Bytes peer = s.blob(0);
      if (peer.empty() || same(peer, self_))
        return Status::corruption("receipt log row with a bad peer ID");
      Ledger& l = ledgers_.try_emplace(peer, Ledger::between(self_, peer)).first->second;
      auto cp = checkpoints_.find(peer);
      const uint64_t base = cp != checkpoints_.end() ? cp->second.ledger.sequence : 0;
      if (s.u64(1) <= base) continue;
      IDN_ASSIGN_OR_RETURN(auto records, decode_receipt_log(self_, peer, s.blob(2)));
      Held& h = held_[peer];
      for (auto& rec : records) {
        if (rec.sequence <= base) continue;
        uint64_t& d = same(rec.receipt.signer, l.node1) ? l.debt1 : l.debt2;
        if (d > UINT64_MAX - rec.receipt.operations)
          return Status::corruption("ledger debt overflows");
        d += rec.receipt.operations;
        l.sequence = std::max(l.sequence, rec.sequence);
        (same(rec.receipt.server, self_) ? h.served : h.paid).insert(rec.receipt.request_id);
        h.after_checkpoint.push_back(std::move(rec));
      }
    }
    for (auto& [peer, h] : held_) {
      std::sort(h.after_checkpoint.begin(), h.after_checkpoint.end(),
                [](const HeldReceipt& a, const HeldReceipt& b) { return a.sequence < b.sequence; });
    }
  }
  {
    IDN_ASSIGN_OR_RETURN(auto s, db_->prepare("SELECT peer, request_id, ops, unpaid FROM charges"));
    for (;;) {
      IDN_ASSIGN_OR_RETURN(bool row, s.step());
      if (!row) break;
      Bytes peer = s.blob(0);
      bool unpaid = s.i64(3) != 0;
      auto& t = totals_[peer];
      (unpaid ? t.unpaid_ops : t.pending_ops) += s.u64(2);
      ++(unpaid ? t.unpaid : t.pending);
      open_charges_[peer][s.u64(1)] = {s.u64(2), unpaid};
    }
  }
  return Status::ok();
}

LedgerStore::~LedgerStore() {
  if (Status st = commit(); !st.is_ok()) {
    spdlog::error("swap ledgers: last updates not committed: {}", st.to_string());
  }
}

void LedgerStore::set_group_commit(bool on) {
  if (!on) (void)commit();
  group_ = on;
}

Status LedgerStore::join_batch() {
  if (!group_ || batch_) return Status::ok();
  IDN_ASSIGN_OR_RETURN(auto tx, db::Transaction::begin(*db_));
  batch_.emplace(std::move(tx));
  return Status::ok();
}

uint64_t LedgerStore::unsaved_charges() const {
  uint64_t n = 0;
  for (const auto& [peer, charges] : unsaved_charges_) n += charges.size();
  return n;
}

Status LedgerStore::save_charges(uint32_t min_rounds) {
  if (unsaved_charges_.empty()) return Status::ok();
  for (auto p = unsaved_charges_.begin(); p != unsaved_charges_.end();) {
    const Bytes& peer = p->first;
    for (auto it = p->second.begin(); it != p->second.end();) {
      const auto& [id, c] = *it;
      if (commit_rounds_ - c.round < min_rounds) {
        ++it;
        continue;
      }
      IDN_RETURN_IF_ERROR(join_batch());
      put_charge_->reset();
      IDN_RETURN_IF_ERROR(put_charge_->bind(1, peer)
                              .bind(2, id)
                              .bind(3, c.service_id)
                              .bind(4, c.operations)
                              .bind(5, c.deadline_unix_ms)
                              .bind(6, int64_t(0))
                              .run("record charge"));
      wrote();
      it = p->second.erase(it);
    }
    p = p->second.empty() ? unsaved_charges_.erase(p) : std::next(p);
  }
  return Status::ok();
}

Status LedgerStore::commit(uint32_t young_charge_rounds) {
  ++commit_rounds_;
  Status st = save_charges(young_charge_rounds);
  if (st.is_ok()) st = write_log();
  if (!st.is_ok()) {
    ++failed_commits_;
    batch_.reset();  // rolls back
    uncommitted_ = 0;
    Status reloaded = load();
    if (!reloaded.is_ok()) spdlog::error("swap ledgers: reload failed: {}", reloaded.to_string());
    return st.with_context("writing open charges and receipts");
  }
  if (!batch_) {
    uncommitted_ = 0;
    return Status::ok();
  }
  db::Transaction tx = std::move(*batch_);
  batch_.reset();
  uint64_t n = std::exchange(uncommitted_, 0);
  st = tx.commit();
  if (st.is_ok()) {
    ++commits_;
    return st;
  }
  // The file kept what it had before the batch; so must we.
  ++failed_commits_;
  Status reloaded = load();
  if (!reloaded.is_ok()) spdlog::error("swap ledgers: reload failed: {}", reloaded.to_string());
  return st.with_context(fmt::format("committing {} ledger updates", n));
}

const Ledger& LedgerStore::ledger(ByteView peer) {
  return ledger_entry(peer);
}

Ledger& LedgerStore::ledger_entry(ByteView peer) {
  auto it = ledgers_.find(peer);
  if (it == ledgers_.end())
    it = ledgers_.emplace(to_bytes(peer), Ledger::between(self_, peer)).first;
  return it->second;
}

std::vector<Bytes> LedgerStore::peers() const {
  std::vector<Bytes> out;
  for (const auto& [p, l] : ledgers_) out.push_back(p);
  for (const auto& [p, t] : totals_) {
    if (!ledgers_.count(p)) out.push_back(p);
  }
  return out;
}

const ChargeTotals& LedgerStore::charges(ByteView peer) {
  if (auto it = totals_.find(peer); it != totals_.end()) return it->second;
  return entry(totals_, peer);
}

Status LedgerStore::add_charge(ByteView peer, uint64_t request_id, ByteView service_id,
                               uint64_t operations, uint64_t deadline_unix_ms) {
  if (same(peer, self_)) return Status::invalid_argument("cannot charge ourselves");
  if (holds(peer, /*we_served=*/true, request_id)) {
    return Status::invalid_argument(
        fmt::format("request {} of this peer was already receipted", request_id));
  }
  if (group_) {
    // Memory first: the receipt usually settles it before a commit writes it.
    auto& open = entry(open_charges_, peer);
    if (open.count(request_id)) {
      return Status::invalid_argument(
          fmt::format("request {} of this peer is already charged", request_id));
    }
    entry(unsaved_charges_, peer)[request_id] = {operations, deadline_unix_ms, to_bytes(service_id),
                                                 commit_rounds_};
    open[request_id] = {operations, false};
    auto& t = entry(totals_, peer);
    t.pending_ops += operations;
    ++t.pending;
    return Status::ok();
  }
  put_charge_->reset();
  Status st = put_charge_->bind(1, peer)
                  .bind(2, request_id)
                  .bind(3, service_id)
                  .bind(4, operations)
                  .bind(5, deadline_unix_ms)
                  .bind(6, int64_t(0))
                  .run("record charge");
  if (!st.is_ok()) {
    if (st.message().find("UNIQUE") != std::string::npos) {
      return Status::invalid_argument(
          fmt::format("request {} of this peer is already charged", request_id));
    }
    return st;
  }
  wrote();
  auto& t = entry(totals_, peer);
  t.pending_ops += operations;
  ++t.pending;
  entry(open_charges_, peer)[request_id] = {operations, false};
  return Status::ok();
}

Result<std::vector<Charge>> LedgerStore::expire_charges(uint64_t now_unix_ms) {
  IDN_RETURN_IF_ERROR(save_charges());  // the query below sees every open charge
  std::vector<Charge> out;
  {
    IDN_ASSIGN_OR_RETURN(auto s, db_->prepare("SELECT peer, request_id, service, ops, deadline_ms"
                                              " FROM charges WHERE unpaid = 0 AND"
                                              " deadline_ms <= ?"));
    s.bind(1, now_unix_ms);
    for (;;) {
      IDN_ASSIGN_OR_RETURN(bool row, s.step());
      if (!row) break;
      out.push_back({.peer = s.blob(0),
                     .request_id = s.u64(1),
                     .service_id = s.blob(2),
                     .operations = s.u64(3),
                     .deadline_unix_ms = s.u64(4),
                     .unpaid = true});
    }
  }
  if (out.empty()) return out;
  IDN_RETURN_IF_ERROR(join_batch());
  IDN_ASSIGN_OR_RETURN(auto up, db_->prepare("UPDATE charges SET unpaid = 1 WHERE unpaid = 0 AND"
                                             " deadline_ms <= ?"));
  IDN_RETURN_IF_ERROR(up.bind(1, now_unix_ms).run("expire charges"));  // one statement
  wrote();
  for (const auto& c : out) {
    open_charges_[c.peer][c.request_id].second = true;
    auto& t = totals_[c.peer];
    t.pending_ops -= std::min(t.pending_ops, c.operations);
    t.pending -= std::min<uint64_t>(t.pending, 1);
    t.unpaid_ops += c.operations;
    ++t.unpaid;
  }
  return out;
}

Status LedgerStore::write_log() {
  for (auto it = unwritten_.begin(); it != unwritten_.end(); it = unwritten_.erase(it)) {
    const auto& [peer, rs] = *it;
    if (rs.empty()) continue;
    IDN_ASSIGN_OR_RETURN(Bytes body, encode_receipt_log(self_, peer, rs));
    IDN_RETURN_IF_ERROR(join_batch());
    put_log_->reset();
    IDN_RETURN_IF_ERROR(put_log_->bind(1, peer)
                            .bind(2, rs.front().sequence)
                            .bind(3, rs.back().sequence)
                            .bind(4, body)
                            .run("store receipts"));
  }
  return Status::ok();
}

Result<ReceiptOutcome> LedgerStore::apply_receipt(ByteView peer, const protocol::Receipt& r) {
  bool we_served = same(r.server, self_) && same(r.signer, peer);
  bool we_paid = same(r.server, peer) && same(r.signer, self_);
  if (same(peer, self_) || (!we_served && !we_paid)) {
    return Status::peer_misbehaved(
        fmt::format("receipt for request {} is not between us and this peer", r.request_id));
  }
  if (r.service_id.size() > kLogMaxService) {
    return Status::invalid_argument(fmt::format(
        "receipt for request {} has a service ID of {} bytes", r.request_id, r.service_id.size()));
  }
  ReceiptOutcome out;
  out.we_served = we_served;
  Ledger& current = ledger_entry(peer);
  out.ledger = current;
  if (holds(peer, we_served, r.request_id)) return out;  // a replay: nothing changes
  Ledger& next = out.ledger;  // becomes current once the receipt is stored
  IDN_RETURN_IF_ERROR(next.charge(r.signer, r.operations));

  // The charge this receipt settles (provider side).
  std::optional<std::pair<uint64_t, bool>> charge;
  if (we_served) {
    auto pc = open_charges_.find(peer);
    if (pc != open_charges_.end()) {
      auto it = pc->second.find(r.request_id);
      if (it != pc->second.end()) charge = it->second;
    }
  }
  uint64_t shortfall = charge && charge->first > r.operations ? charge->first - r.operations : 0;

  HeldReceipt held{r, next.sequence};
  held.receipt.signature.clear();  // the file keeps receipts unsigned (checkpoints are signed)
  bool settled_in_memory = false;
  if (charge) {
    if (auto u = unsaved_charges_.find(peer); u != unsaved_charges_.end()) {
      settled_in_memory = u->second.erase(r.request_id) > 0;
      if (u->second.empty()) unsaved_charges_.erase(u);
    }
  }
  if (group_) {
    // The receipt waits in memory for the commit (one log row per peer); a charge the file
    // holds is settled in the open batch.
    if (charge && (!settled_in_memory || shortfall > 0)) IDN_RETURN_IF_ERROR(join_batch());
  }
  // Without group commit: one transaction of the log row and the charge's rows.
  std::optional<db::Transaction> tx;
  if (!group_ && charge) {
    IDN_ASSIGN_OR_RETURN(auto t, db::Transaction::begin(*db_));
    tx.emplace(std::move(t));
  }
  if (charge && !settled_in_memory) {
    del_charge_->reset();
    IDN_RETURN_IF_ERROR(del_charge_->bind(1, peer).bind(2, r.request_id).run("settle charge"));
  }
  if (shortfall > 0) {
    // The requester confirmed less than we charged: the rest stays unpaid in our view.
    put_charge_->reset();
    IDN_RETURN_IF_ERROR(put_charge_->bind(1, peer)
                            .bind(2, r.request_id)
                            .bind(3, r.service_id)
                            .bind(4, shortfall)
                            .bind(5, int64_t(0))
                            .bind(6, int64_t(1))
                            .run("record shortfall"));
  }
  if (group_) {
    entry(unwritten_, peer).push_back(held);
  } else {
    IDN_ASSIGN_OR_RETURN(Bytes body, encode_receipt_log(self_, peer, std::span(&held, 1)));
    put_log_->reset();
    IDN_RETURN_IF_ERROR(put_log_->bind(1, peer)
                            .bind(2, held.sequence)
                            .bind(3, held.sequence)
                            .bind(4, body)
                            .run("store receipt"));
    if (tx) IDN_RETURN_IF_ERROR(tx->commit());
  }
  wrote();

  current = next;
  Held& h = entry(held_, peer);
  (we_served ? h.served : h.paid).insert(r.request_id);
  h.after_checkpoint.push_back(std::move(held));
  if (charge) {
    auto& t = entry(totals_, peer);
    uint64_t& ops = charge->second ? t.unpaid_ops : t.pending_ops;
    uint64_t& n = charge->second ? t.unpaid : t.pending;
    ops -= std::min(ops, charge->first);
    n -= std::min<uint64_t>(n, 1);
    auto& pc = entry(open_charges_, peer);
    if (shortfall > 0) {
      t.unpaid_ops += shortfall;
      ++t.unpaid;
      pc[r.request_id] = {shortfall, true};
    } else {
      pc.erase(r.request_id);
    }
  }
  out.applied = true;
  return out;
}

Result<Ledger> LedgerStore::ledger_at(ByteView peer, uint64_t sequence) {
  Ledger l = ledger(peer);
  if (sequence == l.sequence) return l;
  if (sequence > l.sequence) {
    return Status::not_found(
        fmt::format("ledger has only {} receipts, not {}", l.sequence, sequence));
  }
  if (auto cp = checkpoint(peer); cp && sequence < cp->ledger.sequence) {
    return Status::not_found(
        fmt::format("sequence {} is before the checkpoint at {}", sequence, cp->ledger.sequence));
  }
  if (auto it = held_.find(peer); it != held_.end()) {
    for (const HeldReceipt& h : it->second.after_checkpoint) {
      if (h.sequence <= sequence) continue;
      uint64_t& d = same(h.receipt.signer, l.node1) ? l.debt1 : l.debt2;
      if (h.receipt.operations > d) return Status::corruption("receipts exceed the ledger's debts");
      d -= h.receipt.operations;
    }
  }
  l.sequence = sequence;
  return l;
}

std::optional<Checkpoint> LedgerStore::checkpoint(ByteView peer) {
  auto it = checkpoints_.find(peer);
  if (it == checkpoints_.end()) return std::nullopt;
  return it->second;
}

Status LedgerStore::store_checkpoint(ByteView peer, const Checkpoint& c, bool verified) {
  Ledger pair = Ledger::between(self_, peer);
  if (c.ledger.node1 != pair.node1 || c.ledger.node2 != pair.node2) {
    return Status::peer_misbehaved("checkpoint is of another pair of nodes");
  }
  auto held = checkpoint(peer);
  if (verified) {
    if (!c.fully_signed() || (held && c.ledger.sequence < held->ledger.sequence)) {
      return Status::invalid_argument("checkpoint to store is not signed by both or is stale");
    }
  } else {
    IDN_RETURN_IF_ERROR(verify_checkpoint(c, held ? held->ledger.sequence : 0));
  }
  if (held && held->ledger.sequence == c.ledger.sequence) {
    if (held->ledger == c.ledger) return Status::ok();  // the same balance, signed again
    return Status::peer_misbehaved(
        fmt::format("checkpoint at sequence {} contradicts the one we hold", c.ledger.sequence));
  }
  IDN_RETURN_IF_ERROR(join_batch());
  IDN_ASSIGN_OR_RETURN(auto s, db_->prepare("INSERT OR REPLACE INTO checkpoints(peer, debt1,"
                                            " debt2, sequence, unix_ms, sig1, sig2)"
                                            " VALUES(?,?,?,?,?,?,?)"));
  IDN_RETURN_IF_ERROR(s.bind(1, peer)
                          .bind(2, c.ledger.debt1)
                          .bind(3, c.ledger.debt2)
                          .bind(4, c.ledger.sequence)
                          .bind(5, c.unix_ms)
                          .bind(6, c.sig1)
                          .bind(7, c.sig2)
                          .run("store checkpoint"));
  wrote();
  checkpoints_[to_bytes(peer)] = c;
  // The receipts the checkpoint covers leave memory; their keys stay one more window, so a
  // late replay of one is still recognised.
  if (auto it = held_.find(peer); it != held_.end()) {
    Held& h = it->second;
    auto first_after =
        std::find_if(h.after_checkpoint.begin(), h.after_checkpoint.end(),
                     [&](const HeldReceipt& r) { return r.sequence > c.ledger.sequence; });
    std::unordered_set<uint64_t> served, paid;
    for (auto r = first_after; r != h.after_checkpoint.end(); ++r)
      (same(r->receipt.server, self_) ? served : paid).insert(r->receipt.request_id);
    h.older_served = std::move(h.served);
    h.older_paid = std::move(h.paid);
    for (uint64_t id : served) h.older_served.erase(id);
    for (uint64_t id : paid) h.older_paid.erase(id);
    h.served = std::move(served);
    h.paid = std::move(paid);
    h.after_checkpoint.erase(h.after_checkpoint.begin(), first_after);
  }
  return Status::ok();
}

Result<Evidence> LedgerStore::evidence(ByteView peer) {
  Evidence e;
  e.checkpoint = checkpoint(peer);
  if (auto it = held_.find(peer); it != held_.end()) e.receipts = it->second.after_checkpoint;
  return e;
}

Status LedgerStore::adopt(ByteView peer, const Reconciled& r) {
  Ledger pair = Ledger::between(self_, peer);
  if (r.ledger.node1 != pair.node1 || r.ledger.node2 != pair.node2) {
    return Status::invalid_argument("reconciled ledger is of another pair of nodes");
  }
  uint64_t base = r.base ? r.base->ledger.sequence : 0;
  // Its own transaction, after whatever the batch holds (rare: once per disagreeing Open).
  IDN_RETURN_IF_ERROR(commit());
  IDN_ASSIGN_OR_RETURN(auto tx, db::Transaction::begin(*db_));
  if (r.base) {
    IDN_ASSIGN_OR_RETURN(auto s, db_->prepare("INSERT OR REPLACE INTO checkpoints(peer, debt1,"
                                              " debt2, sequence, unix_ms, sig1, sig2)"
                                              " VALUES(?,?,?,?,?,?,?)"));
    IDN_RETURN_IF_ERROR(s.bind(1, peer)
                            .bind(2, r.base->ledger.debt1)
                            .bind(3, r.base->ledger.debt2)
                            .bind(4, r.base->ledger.sequence)
                            .bind(5, r.base->unix_ms)
                            .bind(6, r.base->sig1)
                            .bind(7, r.base->sig2)
                            .run("store base checkpoint"));
  }
  // After the base the log holds exactly the agreed receipts, numbered as agreed. A receipt we
  // held at or below the base in our numbering but after it in the agreed one (we lost others
  // before it) takes the agreed number: it is kept once, so the file sums to the agreed ledger.
  auto key = [&](const protocol::Receipt& x) {
    return std::pair<bool, uint64_t>{same(x.server, self_), x.request_id};
  };
  std::set<std::pair<bool, uint64_t>> agreed;
  for (const auto& h : r.receipts) agreed.insert(key(h.receipt));
  std::vector<HeldReceipt> kept;  // from rows reaching past the base: ours at or below it
  {
    IDN_ASSIGN_OR_RETURN(auto s, db_->prepare("SELECT body FROM receipt_log WHERE peer = ? AND"
                                              " last_seq > ? ORDER BY first_seq"));
    s.bind(1, peer).bind(2, base);
    for (;;) {
      IDN_ASSIGN_OR_RETURN(bool row, s.step());
      if (!row) break;
      IDN_ASSIGN_OR_RETURN(auto records, decode_receipt_log(self_, peer, s.blob(0)));
      for (auto& rec : records)
        if (rec.sequence <= base && !agreed.count(key(rec.receipt))) kept.push_back(std::move(rec));
    }
    IDN_ASSIGN_OR_RETURN(auto del, db_->prepare("DELETE FROM receipt_log WHERE peer = ? AND"
                                                " last_seq > ?"));
    IDN_RETURN_IF_ERROR(del.bind(1, peer).bind(2, base).run("drop receipts after checkpoint"));
  }
  std::vector<HeldReceipt> agreed_run(r.receipts.begin(), r.receipts.end());
  for (auto& h : agreed_run) h.receipt.signature.clear();
  std::sort(agreed_run.begin(), agreed_run.end(),
            [](const HeldReceipt& a, const HeldReceipt& b) { return a.sequence < b.sequence; });
  for (const auto* run : {&kept, &agreed_run}) {
    if (run->empty()) continue;
    IDN_ASSIGN_OR_RETURN(Bytes body, encode_receipt_log(self_, peer, *run));
    put_log_->reset();
    IDN_RETURN_IF_ERROR(put_log_->bind(1, peer)
                            .bind(2, run->front().sequence)
                            .bind(3, run->back().sequence)
                            .bind(4, body)
                            .run("store agreed receipts"));
  }
  IDN_ASSIGN_OR_RETURN(auto settle, db_->prepare("DELETE FROM charges WHERE peer = ? AND"
                                                 " request_id = ?"));
  for (const auto& h : r.receipts) {
    if (!same(h.receipt.server, self_)) continue;
    settle.reset();
    IDN_RETURN_IF_ERROR(settle.bind(1, peer).bind(2, h.receipt.request_id).run("settle"));
  }
  IDN_RETURN_IF_ERROR(tx.commit());
  // Charge totals changed in SQL; the cache is rebuilt from the file (rare: once per Open).
  return load();
}

}  // namespace idn::swap
