#include "swap/ledger_store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <utility>

namespace idn::swap {
namespace {

bool same(ByteView a, ByteView b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

Bytes to_bytes(ByteView b) {
  return Bytes(b.begin(), b.end());
}

constexpr const char* kSchema =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);"
    // Every receipt held, keyed so a replay is recognised; `sequence` is the ledger's after it.
    // The shared ledger with a peer is its checkpoint plus the receipts after it.
    "CREATE TABLE IF NOT EXISTS receipts(peer BLOB NOT NULL, server BLOB NOT NULL,"
    " request_id INTEGER NOT NULL, signer BLOB NOT NULL, service BLOB NOT NULL,"
    " ops INTEGER NOT NULL, unix_ms INTEGER NOT NULL, sequence INTEGER NOT NULL,"
    " PRIMARY KEY(peer, server, request_id)) WITHOUT ROWID;"
    // Receipts after a sequence: checkpoint proposals, evidence at Open.
    "CREATE INDEX IF NOT EXISTS receipts_seq ON receipts(peer, sequence);"
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
  IDN_ASSIGN_OR_RETURN(
      auto put_receipt,
      db_->prepare("INSERT OR IGNORE INTO receipts(peer, server, request_id, signer,"
                   " service, ops, unix_ms, sequence) VALUES(?,?,?,?,?,?,?,?)"));
  put_receipt_.emplace(std::move(put_receipt));
  IDN_ASSIGN_OR_RETURN(auto has_receipt,
                       db_->prepare("SELECT 1 FROM receipts WHERE peer = ? AND server = ? AND"
                                    " request_id = ?"));
  has_receipt_.emplace(std::move(has_receipt));
  IDN_ASSIGN_OR_RETURN(auto put_charge,
                       db_->prepare("INSERT INTO charges(peer, request_id, service, ops,"
                                    " deadline_ms, unpaid) VALUES(?,?,?,?,?,?)"));
  put_charge_.emplace(std::move(put_charge));
  IDN_ASSIGN_OR_RETURN(auto del_charge,
                       db_->prepare("DELETE FROM charges WHERE peer = ? AND request_id = ?"));
  del_charge_.emplace(std::move(del_charge));
  return load();
}

Status LedgerStore::load() {
  ledgers_.clear();
  totals_.clear();
  open_charges_.clear();
  unsaved_charges_.clear();
  checkpoints_.clear();
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
    // Each ledger: its checkpoint (or zero) plus the receipts after it.
    IDN_ASSIGN_OR_RETURN(auto s, db_->prepare("SELECT peer, signer, ops, sequence FROM receipts"));
    for (;;) {
      IDN_ASSIGN_OR_RETURN(bool row, s.step());
      if (!row) break;
      Bytes peer = s.blob(0);
      if (peer.empty() || same(peer, self_))
        return Status::corruption("receipt with a bad peer ID");
      Ledger& l = ledgers_.try_emplace(peer, Ledger::between(self_, peer)).first->second;
      uint64_t seq = s.u64(3);
      auto cp = checkpoints_.find(peer);
      if (cp != checkpoints_.end() && seq <= cp->second.ledger.sequence) continue;
      Bytes signer = s.blob(1);
      if (!l.has(signer)) return Status::corruption("receipt signed outside its ledger");
      uint64_t& d = same(signer, l.node1) ? l.debt1 : l.debt2;
      if (d > UINT64_MAX - s.u64(2)) return Status::corruption("ledger debt overflows");
      d += s.u64(2);
      l.sequence = std::max(l.sequence, seq);
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

Status LedgerStore::save_charges() {
  if (unsaved_charges_.empty()) return Status::ok();
  IDN_RETURN_IF_ERROR(join_batch());
  for (const auto& [peer, charges] : unsaved_charges_) {
    for (const auto& [id, c] : charges) {
      put_charge_->reset();
      IDN_RETURN_IF_ERROR(put_charge_->bind(1, peer)
                              .bind(2, id)
                              .bind(3, c.service_id)
                              .bind(4, c.operations)
                              .bind(5, c.deadline_unix_ms)
                              .bind(6, int64_t(0))
                              .run("record charge"));
    }
  }
  unsaved_charges_.clear();
  return Status::ok();
}

Status LedgerStore::commit() {
  if (!batch_) return Status::ok();
  if (Status st = save_charges(); !st.is_ok()) {
    batch_.reset();  // rolls back
    uncommitted_ = 0;
    unsaved_charges_.clear();
    Status reloaded = load();
    if (!reloaded.is_ok()) spdlog::error("swap ledgers: reload failed: {}", reloaded.to_string());
    return st.with_context("saving open charges");
  }
  db::Transaction tx = std::move(*batch_);
  batch_.reset();
  uint64_t n = std::exchange(uncommitted_, 0);
  Status st = tx.commit();
  if (st.is_ok()) {
    ++commits_;
    return st;
  }
  // The file kept what it had before the batch; so must we.
  Status reloaded = load();
  if (!reloaded.is_ok()) spdlog::error("swap ledgers: reload failed: {}", reloaded.to_string());
  return st.with_context(fmt::format("committing {} ledger updates", n));
}

const Ledger& LedgerStore::ledger(ByteView peer) {
  auto it = ledgers_.find(to_bytes(peer));
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
  return totals_[to_bytes(peer)];
}

Status LedgerStore::add_charge(ByteView peer, uint64_t request_id, ByteView service_id,
                               uint64_t operations, uint64_t deadline_unix_ms) {
  if (same(peer, self_)) return Status::invalid_argument("cannot charge ourselves");
  has_receipt_->reset();
  IDN_ASSIGN_OR_RETURN(bool held,
                       has_receipt_->bind(1, peer).bind(2, self_).bind(3, request_id).step());
  has_receipt_->reset();
  if (held) {
    return Status::invalid_argument(
        fmt::format("request {} of this peer was already receipted", request_id));
  }
  if (group_) {
    // Memory first: the receipt usually settles it before the commit writes it.
    auto& open = open_charges_[to_bytes(peer)];
    if (open.count(request_id)) {
      return Status::invalid_argument(
          fmt::format("request {} of this peer is already charged", request_id));
    }
    IDN_RETURN_IF_ERROR(join_batch());
    unsaved_charges_[to_bytes(peer)][request_id] = {operations, deadline_unix_ms,
                                                    to_bytes(service_id)};
    open[request_id] = {operations, false};
    wrote();
    auto& t = totals_[to_bytes(peer)];
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
  auto& t = totals_[to_bytes(peer)];
  t.pending_ops += operations;
  ++t.pending;
  open_charges_[to_bytes(peer)][request_id] = {operations, false};
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

Result<ReceiptOutcome> LedgerStore::apply_receipt(ByteView peer, const protocol::Receipt& r) {
  bool we_served = same(r.server, self_) && same(r.signer, peer);
  bool we_paid = same(r.server, peer) && same(r.signer, self_);
  if (same(peer, self_) || (!we_served && !we_paid)) {
    return Status::peer_misbehaved(
        fmt::format("receipt for request {} is not between us and this peer", r.request_id));
  }
  ReceiptOutcome out;
  out.we_served = we_served;
  out.ledger = ledger(peer);
  Ledger next = out.ledger;
  IDN_RETURN_IF_ERROR(next.charge(r.signer, r.operations));

  // The charge this receipt settles (provider side).
  std::optional<std::pair<uint64_t, bool>> charge;
  if (we_served) {
    auto pc = open_charges_.find(to_bytes(peer));
    if (pc != open_charges_.end()) {
      auto it = pc->second.find(r.request_id);
      if (it != pc->second.end()) charge = it->second;
    }
  }
  uint64_t shortfall = charge && charge->first > r.operations ? charge->first - r.operations : 0;

  // One row (the receipt), or with a charge to settle, one transaction of two or three
  // (with group commit: the open batch).
  IDN_RETURN_IF_ERROR(join_batch());
  std::optional<db::Transaction> tx;
  if (charge && !group_) {
    IDN_ASSIGN_OR_RETURN(auto t, db::Transaction::begin(*db_));
    tx.emplace(std::move(t));
  }
  put_receipt_->reset();
  IDN_RETURN_IF_ERROR(put_receipt_->bind(1, peer)
                          .bind(2, r.server)
                          .bind(3, r.request_id)
                          .bind(4, r.signer)
                          .bind(5, r.service_id)
                          .bind(6, r.operations)
                          .bind(7, r.unix_ms)
                          .bind(8, next.sequence)
                          .run("store receipt"));
  if (db_->changes() == 0) return out;  // held already: a replay (the transaction rolls back)
  bool settled_in_memory = false;
  if (charge) {
    if (auto u = unsaved_charges_.find(to_bytes(peer)); u != unsaved_charges_.end()) {
      settled_in_memory = u->second.erase(r.request_id) > 0;
      if (u->second.empty()) unsaved_charges_.erase(u);
    }
    if (!settled_in_memory) {
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
    if (tx) IDN_RETURN_IF_ERROR(tx->commit());
  }
  wrote();

  ledgers_[to_bytes(peer)] = next;
  if (charge) {
    auto& t = totals_[to_bytes(peer)];
    uint64_t& ops = charge->second ? t.unpaid_ops : t.pending_ops;
    uint64_t& n = charge->second ? t.unpaid : t.pending;
    ops -= std::min(ops, charge->first);
    n -= std::min<uint64_t>(n, 1);
    auto& pc = open_charges_[to_bytes(peer)];
    if (shortfall > 0) {
      t.unpaid_ops += shortfall;
      ++t.unpaid;
      pc[r.request_id] = {shortfall, true};
    } else {
      pc.erase(r.request_id);
    }
  }
  out.applied = true;
  out.ledger = next;
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
  IDN_ASSIGN_OR_RETURN(auto s, db_->prepare("SELECT signer, ops FROM receipts WHERE peer = ? AND"
                                            " sequence > ?"));
  s.bind(1, peer).bind(2, sequence);
  for (;;) {
    IDN_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    uint64_t& d = same(s.blob(0), l.node1) ? l.debt1 : l.debt2;
    uint64_t ops = s.u64(1);
    if (ops > d) return Status::corruption("receipts exceed the ledger's debts");
    d -= ops;
  }
  l.sequence = sequence;
  return l;
}

std::optional<Checkpoint> LedgerStore::checkpoint(ByteView peer) {
  auto it = checkpoints_.find(to_bytes(peer));
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
  return Status::ok();
}

Result<Evidence> LedgerStore::evidence(ByteView peer) {
  Evidence e;
  e.checkpoint = checkpoint(peer);
  uint64_t base = e.checkpoint ? e.checkpoint->ledger.sequence : 0;
  IDN_ASSIGN_OR_RETURN(auto s, db_->prepare("SELECT server, request_id, signer, service, ops,"
                                            " unix_ms, sequence FROM receipts WHERE peer = ?"
                                            " AND sequence > ? ORDER BY sequence"));
  s.bind(1, peer).bind(2, base);
  for (;;) {
    IDN_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    protocol::Receipt r;
    r.server = s.blob(0);
    r.request_id = s.u64(1);
    r.signer = s.blob(2);
    r.service_id = s.blob(3);
    r.operations = s.u64(4);
    r.unix_ms = s.u64(5);
    e.receipts.push_back({std::move(r), s.u64(6)});
  }
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
  {
    // Receipts after the base: exactly the agreed ones, renumbered as agreed.
    IDN_ASSIGN_OR_RETURN(auto del, db_->prepare("DELETE FROM receipts WHERE peer = ? AND"
                                                " sequence > ?"));
    IDN_RETURN_IF_ERROR(del.bind(1, peer).bind(2, base).run("drop receipts after checkpoint"));
    IDN_ASSIGN_OR_RETURN(auto settle, db_->prepare("DELETE FROM charges WHERE peer = ? AND"
                                                   " request_id = ?"));
    IDN_ASSIGN_OR_RETURN(auto renumber, db_->prepare("UPDATE receipts SET sequence = ? WHERE"
                                                     " peer = ? AND server = ? AND"
                                                     " request_id = ?"));
    for (const auto& h : r.receipts) {
      put_receipt_->reset();
      // A receipt we hold already is not inserted again (see below).
      has_receipt_->reset();
      IDN_ASSIGN_OR_RETURN(bool held, has_receipt_->bind(1, peer)
                                          .bind(2, h.receipt.server)
                                          .bind(3, h.receipt.request_id)
                                          .step());
      has_receipt_->reset();
      if (held) {
        // Held at or below the base in our numbering, after it in the agreed one (we lost
        // others before it): it takes the agreed number, so the file sums to the agreed
        // ledger.
        renumber.reset();
        IDN_RETURN_IF_ERROR(renumber.bind(1, h.sequence)
                                .bind(2, peer)
                                .bind(3, h.receipt.server)
                                .bind(4, h.receipt.request_id)
                                .run("renumber agreed receipt"));
        continue;
      }
      IDN_RETURN_IF_ERROR(put_receipt_->bind(1, peer)
                              .bind(2, h.receipt.server)
                              .bind(3, h.receipt.request_id)
                              .bind(4, h.receipt.signer)
                              .bind(5, h.receipt.service_id)
                              .bind(6, h.receipt.operations)
                              .bind(7, h.receipt.unix_ms)
                              .bind(8, h.sequence)
                              .run("store agreed receipt"));
      if (same(h.receipt.server, self_)) {
        settle.reset();
        IDN_RETURN_IF_ERROR(settle.bind(1, peer).bind(2, h.receipt.request_id).run("settle"));
      }
    }
  }
  IDN_RETURN_IF_ERROR(tx.commit());
  // Charge totals changed in SQL; the cache is rebuilt from the file (rare: once per Open).
  return load();
}

}  // namespace idn::swap
