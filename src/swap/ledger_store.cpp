#include "swap/ledger_store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>
#include <span>
#include <tuple>
#include <utility>

#include "swap/receipt_log.h"

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

bool LedgerStore::holds(const Book& b, bool we_served, uint64_t request_id) {
  return we_served ? b.served.contains(request_id) || b.older_served.contains(request_id)
                   : b.paid.contains(request_id) || b.older_paid.contains(request_id);
}

std::shared_ptr<const Bytes> LedgerStore::share_service(ByteView service) {
  for (const auto& s : services_)
    if (same(*s, service)) return s;
  auto s = std::make_shared<const Bytes>(service.begin(), service.end());
  if (services_.size() < kSharedServices) {
    services_.push_back(s);
  } else {
    services_[next_service_] = s;
    next_service_ = (next_service_ + 1) % kSharedServices;
  }
  return s;
}

LedgerStore::Entry LedgerStore::book_entry(ByteView peer) {
  auto it = books_.find(peer);
  if (it == books_.end()) {
    it = books_.emplace(to_bytes(peer), Book{}).first;
    it->second.ledger = Ledger::between(self_, peer);
  }
  return &*it;
}

Status LedgerStore::load() {
  books_.clear();
  unwritten_books_.clear();
  unsaved_books_.clear();
  unsaved_entries_ = 0;
  unsaved_charges_ = 0;
  due_.clear();
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
      Book& b = book(peer);
      b.ledger = c.ledger;
      b.checkpoint = std::make_unique<Checkpoint>(std::move(c));
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
      Book& b = book(peer);
      Ledger& l = b.ledger;
      const uint64_t base = b.checkpoint ? b.checkpoint->ledger.sequence : 0;
      if (s.u64(1) <= base) continue;
      IDN_ASSIGN_OR_RETURN(auto records, decode_log_records(s.blob(2)));
      const bool peer_is_1 = same(l.node1, peer);
      for (auto& rec : records) {
        if (rec.sequence <= base) continue;
        // The debtor is the one who did not serve.
        uint64_t& d = rec.we_served == peer_is_1 ? l.debt1 : l.debt2;
        if (d > UINT64_MAX - rec.operations) return Status::corruption("ledger debt overflows");
        d += rec.operations;
        l.sequence = std::max(l.sequence, rec.sequence);
        (rec.we_served ? b.served : b.paid).insert(rec.request_id);
        b.after_checkpoint.push_back(std::move(rec));
      }
    }
    for (auto& [peer, b] : books_) {
      std::sort(b.after_checkpoint.begin(), b.after_checkpoint.end(),
                [](const LogRecord& x, const LogRecord& y) { return x.sequence < y.sequence; });
    }
  }
  {
    IDN_ASSIGN_OR_RETURN(auto s, db_->prepare("SELECT peer, request_id, service, ops, deadline_ms,"
                                              " unpaid FROM charges"));
    for (;;) {
      IDN_ASSIGN_OR_RETURN(bool row, s.step());
      if (!row) break;
      Bytes peer = s.blob(0);
      if (peer.empty() || same(peer, self_)) return Status::corruption("charge with a bad peer ID");
      const auto entry = book_entry(peer);
      Book& b = entry->second;
      OpenCharge c{.operations = s.u64(3),
                   .deadline_unix_ms = s.u64(4),
                   .service = share_service(s.blob(2)),
                   .unpaid = s.i64(5) != 0,
                   .saved = true};
      (c.unpaid ? b.totals.unpaid_ops : b.totals.pending_ops) += c.operations;
      ++(c.unpaid ? b.totals.unpaid : b.totals.pending);
      const uint64_t id = s.u64(1);
      if (!c.unpaid) add_due(c.deadline_unix_ms, id, entry);
      b.open[id] = std::move(c);
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

Status LedgerStore::save_charges(uint32_t min_rounds) {
  if (unsaved_entries_ == 0) return Status::ok();
  size_t kept = 0;  // books that still have young charges stay listed, in order
  for (const Entry entry : unsaved_books_) {
    const Bytes& peer = entry->first;
    Book& b = entry->second;
    size_t done = 0;
    for (; done < b.unsaved.size(); ++done) {
      auto it = b.open.find(b.unsaved[done]);
      if (it == b.open.end() || it->second.saved) continue;  // settled (or saved) since
      OpenCharge& c = it->second;
      if (commit_rounds_ - c.round < min_rounds) break;  // this one and those after are younger
      // On an error the caller rolls back and reloads, which rebuilds these lists.
      IDN_RETURN_IF_ERROR(join_batch());
      put_charge_->reset();
      IDN_RETURN_IF_ERROR(put_charge_->bind(1, peer)
                              .bind(2, it->first)
                              .bind(3, *c.service)
                              .bind(4, c.operations)
                              .bind(5, c.deadline_unix_ms)
                              .bind(6, int64_t(c.unpaid ? 1 : 0))
                              .run("record charge"));
      wrote();
      c.saved = true;
      --unsaved_charges_;
    }
    b.unsaved.erase(b.unsaved.begin(), b.unsaved.begin() + ptrdiff_t(done));
    unsaved_entries_ -= done;
    if (!b.unsaved.empty()) unsaved_books_[kept++] = entry;
  }
  unsaved_books_.resize(kept);
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
  return book(peer).ledger;
}

const Ledger* LedgerStore::find_ledger(ByteView peer) const {
  auto it = books_.find(peer);
  return it == books_.end() ? nullptr : &it->second.ledger;
}

std::vector<Bytes> LedgerStore::peers() const {
  std::vector<Bytes> out;
  out.reserve(books_.size());
  for (const auto& [p, b] : books_) out.push_back(p);
  std::sort(out.begin(), out.end(), BytesLess{});
  return out;
}

const ChargeTotals& LedgerStore::charges(ByteView peer) {
  return book(peer).totals;
}

LedgerStore::Balance LedgerStore::balance(ByteView peer) {
  const Book& b = book(peer);
  return {b.ledger, b.totals};
}

Status LedgerStore::add_charge(ByteView peer, uint64_t request_id, ByteView service_id,
                               uint64_t operations, uint64_t deadline_unix_ms) {
  if (same(peer, self_)) return Status::invalid_argument("cannot charge ourselves");
  const auto entry = book_entry(peer);
  Book& b = entry->second;
  if (holds(b, /*we_served=*/true, request_id)) {
    return Status::invalid_argument(
        fmt::format("request {} of this peer was already receipted", request_id));
  }
  if (b.open.count(request_id)) {
    return Status::invalid_argument(
        fmt::format("request {} of this peer is already charged", request_id));
  }
  OpenCharge c{.operations = operations,
               .deadline_unix_ms = deadline_unix_ms,
               .service = share_service(service_id),
               .round = commit_rounds_};
  if (group_) {
    // Memory first: the receipt usually settles it before a commit writes it.
    if (b.unsaved.empty()) unsaved_books_.push_back(entry);
    b.unsaved.push_back(request_id);
    ++unsaved_entries_;
    ++unsaved_charges_;
  } else {
    put_charge_->reset();
    IDN_RETURN_IF_ERROR(put_charge_->bind(1, peer)
                            .bind(2, request_id)
                            .bind(3, service_id)
                            .bind(4, operations)
                            .bind(5, deadline_unix_ms)
                            .bind(6, int64_t(0))
                            .run("record charge"));
    c.saved = true;
  }
  b.open.emplace(request_id, std::move(c));
  b.totals.pending_ops += operations;
  ++b.totals.pending;
  add_due(deadline_unix_ms, request_id, entry);
  return Status::ok();
}

void LedgerStore::add_due(uint64_t deadline_unix_ms, uint64_t request_id, Entry book) {
  due_.push_back({deadline_unix_ms, request_id, book});
  std::push_heap(due_.begin(), due_.end(), due_later);
}

Result<std::vector<Charge>> LedgerStore::expire_charges(uint64_t now_unix_ms) {
  std::vector<Charge> out;
  std::vector<std::pair<Book*, uint64_t>> expired;
  bool in_file = false;
  while (!due_.empty() && due_.front().deadline_unix_ms <= now_unix_ms) {
    std::pop_heap(due_.begin(), due_.end(), due_later);
    Due d = due_.back();
    due_.pop_back();
    Book& b = d.book->second;
    auto it = b.open.find(d.request_id);
    // Settled meanwhile (or settled and charged again, with a later deadline): not due.
    if (it == b.open.end() || it->second.unpaid ||
        it->second.deadline_unix_ms != d.deadline_unix_ms)
      continue;
    const OpenCharge& c = it->second;
    in_file = in_file || c.saved;
    expired.emplace_back(&b, d.request_id);
    out.push_back({.peer = d.book->first,
                   .request_id = d.request_id,
                   .service_id = *c.service,
                   .operations = c.operations,
                   .deadline_unix_ms = c.deadline_unix_ms,
                   .unpaid = true});
  }
  if (in_file) {
    // One statement marks every saved charge due (an unsaved one is saved with its mark).
    IDN_RETURN_IF_ERROR(join_batch());
    IDN_ASSIGN_OR_RETURN(auto up, db_->prepare("UPDATE charges SET unpaid = 1 WHERE unpaid = 0"
                                               " AND deadline_ms <= ?"));
    IDN_RETURN_IF_ERROR(up.bind(1, now_unix_ms).run("expire charges"));
    wrote();
  }
  for (auto [b, id] : expired) {
    OpenCharge& c = b->open[id];
    c.unpaid = true;
    auto& t = b->totals;
    t.pending_ops -= std::min(t.pending_ops, c.operations);
    t.pending -= std::min<uint64_t>(t.pending, 1);
    t.unpaid_ops += c.operations;
    ++t.unpaid;
  }
  return out;
}

Status LedgerStore::write_log(ByteView peer, Book& b) {
  if (b.unwritten == 0) return Status::ok();
  auto rs = std::span(b.after_checkpoint).last(b.unwritten);
  Bytes body;
  append_log_records(body, rs);
  IDN_RETURN_IF_ERROR(join_batch());
  put_log_->reset();
  IDN_RETURN_IF_ERROR(put_log_->bind(1, peer)
                          .bind(2, rs.front().sequence)
                          .bind(3, rs.back().sequence)
                          .bind(4, body)
                          .run("store receipts"));
  b.unwritten = 0;
  return Status::ok();
}

Status LedgerStore::write_log() {
  for (auto it : unwritten_books_) IDN_RETURN_IF_ERROR(write_log(it->first, it->second));
  unwritten_books_.clear();
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
  const auto entry = book_entry(peer);
  Book& b = entry->second;
  ReceiptOutcome out;
  out.we_served = we_served;
  out.sequence = b.ledger.sequence;
  if (holds(b, we_served, r.request_id)) return out;  // a replay: nothing changes
  // Charged now, restored if storing the receipt fails.
  struct Restore {
    Ledger& l;
    uint64_t debt1, debt2, sequence;
    bool armed = true;
    ~Restore() {
      if (armed) std::tie(l.debt1, l.debt2, l.sequence) = std::tie(debt1, debt2, sequence);
    }
  } restore{b.ledger, b.ledger.debt1, b.ledger.debt2, b.ledger.sequence};
  IDN_RETURN_IF_ERROR(b.ledger.charge(r.signer, r.operations));

  // The charge this receipt settles (provider side).
  OpenCharge* charge = nullptr;
  if (we_served) {
    if (auto it = b.open.find(r.request_id); it != b.open.end()) charge = &it->second;
  }
  const uint64_t shortfall =
      charge && charge->operations > r.operations ? charge->operations - r.operations : 0;
  LogRecord rec{.request_id = r.request_id,
                .operations = r.operations,
                .unix_ms = r.unix_ms,
                .sequence = b.ledger.sequence,
                .we_served = we_served,
                .service = share_service(r.service_id)};
  // Group commit: the receipt waits in memory for the commit (one log row per peer); a
  // charge the file holds is settled in the open batch. Without: one transaction of the log
  // row and the charge's rows.
  const bool charge_in_file = charge && charge->saved;
  if (group_ && (charge_in_file || shortfall > 0)) IDN_RETURN_IF_ERROR(join_batch());
  std::optional<db::Transaction> tx;
  if (!group_ && charge) {
    IDN_ASSIGN_OR_RETURN(auto t, db::Transaction::begin(*db_));
    tx.emplace(std::move(t));
  }
  if (charge_in_file) {
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
  if (!group_) {
    Bytes body;
    append_log_records(body, std::span(&rec, 1));
    put_log_->reset();
    IDN_RETURN_IF_ERROR(put_log_->bind(1, peer)
                            .bind(2, rec.sequence)
                            .bind(3, rec.sequence)
                            .bind(4, body)
                            .run("store receipt"));
    if (tx) IDN_RETURN_IF_ERROR(tx->commit());
  }
  wrote();
  restore.armed = false;
  (we_served ? b.served : b.paid).insert(r.request_id);
  b.after_checkpoint.push_back(std::move(rec));
  if (group_ && b.unwritten++ == 0) unwritten_books_.push_back(entry);
  if (charge) {
    if (!charge->saved) --unsaved_charges_;  // settled before any commit wrote it
    auto& t = b.totals;
    uint64_t& ops = charge->unpaid ? t.unpaid_ops : t.pending_ops;
    uint64_t& n = charge->unpaid ? t.unpaid : t.pending;
    ops -= std::min(ops, charge->operations);
    n -= std::min<uint64_t>(n, 1);
    if (shortfall > 0) {
      t.unpaid_ops += shortfall;
      ++t.unpaid;
      charge->operations = shortfall;
      charge->unpaid = charge->saved = true;
    } else {
      b.open.erase(r.request_id);
    }
  }
  out.applied = true;
  out.sequence = b.ledger.sequence;
  return out;
}

Result<Ledger> LedgerStore::ledger_at(ByteView peer, uint64_t sequence) {
  const Book& b = book(peer);
  Ledger l = b.ledger;
  if (sequence == l.sequence) return l;
  if (sequence > l.sequence) {
    return Status::not_found(
        fmt::format("ledger has only {} receipts, not {}", l.sequence, sequence));
  }
  if (b.checkpoint && sequence < b.checkpoint->ledger.sequence) {
    return Status::not_found(fmt::format("sequence {} is before the checkpoint at {}", sequence,
                                         b.checkpoint->ledger.sequence));
  }
  const bool peer_is_1 = same(l.node1, peer);
  for (const LogRecord& r : b.after_checkpoint) {
    if (r.sequence <= sequence) continue;
    uint64_t& d = r.we_served == peer_is_1 ? l.debt1 : l.debt2;  // the debtor did not serve
    if (r.operations > d) return Status::corruption("receipts exceed the ledger's debts");
    d -= r.operations;
  }
  l.sequence = sequence;
  return l;
}

std::optional<Checkpoint> LedgerStore::checkpoint(ByteView peer) {
  auto it = books_.find(peer);
  if (it == books_.end()) return std::nullopt;
  const auto& held = it->second.checkpoint;
  return held ? std::optional<Checkpoint>(*held) : std::nullopt;
}

Status LedgerStore::store_checkpoint(ByteView peer, const Checkpoint& c, bool verified) {
  Ledger pair = Ledger::between(self_, peer);
  if (c.ledger.node1 != pair.node1 || c.ledger.node2 != pair.node2) {
    return Status::peer_misbehaved("checkpoint is of another pair of nodes");
  }
  Book& b = book(peer);
  const Checkpoint* held = b.checkpoint.get();
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
  // The receipts it covers leave memory below; those not yet in the file go there first, so
  // the file keeps every receipt.
  IDN_RETURN_IF_ERROR(write_log(peer, b));
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
  b.checkpoint = std::make_unique<Checkpoint>(c);
  // The receipts the checkpoint covers leave memory; their keys stay one more window, so a
  // late replay of one is still recognised.
  auto first_after =
      std::find_if(b.after_checkpoint.begin(), b.after_checkpoint.end(),
                   [&](const LogRecord& r) { return r.sequence > c.ledger.sequence; });
  b.older_served = std::exchange(b.served, KeySet{});
  b.older_paid = std::exchange(b.paid, KeySet{});
  for (auto r = first_after; r != b.after_checkpoint.end(); ++r) {
    (r->we_served ? b.older_served : b.older_paid).erase(r->request_id);
    (r->we_served ? b.served : b.paid).insert(r->request_id);
  }
  b.after_checkpoint.erase(b.after_checkpoint.begin(), first_after);
  return Status::ok();
}

Result<Evidence> LedgerStore::evidence(ByteView peer) {
  Evidence e;
  auto it = books_.find(peer);
  if (it == books_.end()) return e;
  if (it->second.checkpoint) e.checkpoint = *it->second.checkpoint;
  e.receipts.reserve(it->second.after_checkpoint.size());
  for (const LogRecord& r : it->second.after_checkpoint)
    e.receipts.push_back(held_receipt_of(self_, peer, r));
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
