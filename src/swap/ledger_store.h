// One node's ComputeSwap ledgers with all its peers, persisted in SQLite (WAL) under the
// node's data dir: the receipts (a log of compact records, swap/receipt_log.h, one row per
// peer and commit), the provider's provisional charges awaiting a receipt, and the last
// checkpoint both sides signed. A ledger is its checkpoint plus the receipts after it, summed
// when the file is opened; memory keeps the ledgers, the receipts after each checkpoint and
// the keys that recognise a replayed receipt. Every update is its own transaction, or with
// group commit on, joins one open transaction that commit() ends. Not thread-safe: one owner
// (the node's io thread, through swap::ComputeSwap).
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"
#include "db/sqlite.h"
#include "swap/ledger.h"
#include "swap/receipt_log.h"

namespace idn::swap {

// A provider's charge for a request it answered: pending until the receipt comes, unpaid
// once the receipt timeout passed (a late receipt still settles it).
struct Charge {
  Bytes peer;
  uint64_t request_id = 0;
  Bytes service_id;
  uint64_t operations = 0;
  uint64_t deadline_unix_ms = 0;
  bool unpaid = false;
};

struct ChargeTotals {
  uint64_t pending_ops = 0, unpaid_ops = 0;
  uint64_t pending = 0, unpaid = 0;  // counts
};

struct ReceiptOutcome {
  bool applied = false;    // false: already held (a replay), nothing changed
  bool we_served = false;  // true: the peer paid us; false: we paid the peer
  uint64_t sequence = 0;   // the ledger's sequence after the receipt
};

class LedgerStore {
 public:
  // Opens (creating) the database at `path` for the node `self` (peer ID bytes). By default
  // the file stays locked while open (db::OpenOptions::exclusive): the node owns its ledgers.
  static Result<std::unique_ptr<LedgerStore>> open(const std::filesystem::path& path, Bytes self,
                                                   db::OpenOptions options = {.exclusive = true});
  LedgerStore(const LedgerStore&) = delete;
  LedgerStore& operator=(const LedgerStore&) = delete;

  const Bytes& self() const { return self_; }
  // The shared ledger with `peer` (zero if there is none yet).
  const Ledger& ledger(ByteView peer);
  // The same without creating one: nullptr when there is none.
  const Ledger* find_ledger(ByteView peer) const;
  // Peers with a stored ledger or charge.
  std::vector<Bytes> peers() const;

  // Provider side: `peer` was answered; `operations` await its receipt until the deadline.
  // A second charge for the same request, or one for a request already receipted (as
  // apply_receipt recognises a replay), is InvalidArgument.
  Status add_charge(ByteView peer, uint64_t request_id, ByteView service_id, uint64_t operations,
                    uint64_t deadline_unix_ms);
  const ChargeTotals& charges(ByteView peer);
  // Both at once (one lookup, for the per-request paths).
  struct Balance {
    const Ledger& ledger;
    const ChargeTotals& charges;
  };
  Balance balance(ByteView peer);
  // Pending charges past their deadline become unpaid; returns them.
  Result<std::vector<Charge>> expire_charges(uint64_t now_unix_ms);

  // Folds a receipt between self and `peer` into their ledger, in either direction: a
  // requester calls it before sending the receipt, a provider when it arrives (settling the
  // charge; operations charged beyond the receipt's stay unpaid). A receipt already held (by
  // which side served and request ID, among the receipts after the last checkpoint and, while
  // the store is open, those of the checkpoint window before) is a no-op. PeerMisbehaved when
  // the receipt is not between self and `peer`; InvalidArgument for a service ID over 255
  // bytes.
  Result<ReceiptOutcome> apply_receipt(ByteView peer, const protocol::Receipt& r);

  // The ledger as it was at `sequence` (current minus the receipts after it). NotFound when
  // `sequence` is beyond the current one or before the stored checkpoint.
  Result<Ledger> ledger_at(ByteView peer, uint64_t sequence);
  std::optional<Checkpoint> checkpoint(ByteView peer);
  // Stores a fully signed checkpoint, not older than the one held. Both signatures are
  // verified here unless the caller already did (`verified`: it checked the peer's and made
  // ours), which saves two Ed25519 verifications per checkpoint.
  Status store_checkpoint(ByteView peer, const Checkpoint& c, bool verified = false);

  // The last checkpoint and the receipts after it, to show the peer at Open.
  Result<Evidence> evidence(ByteView peer);
  // Replaces the ledger with the reconciled one: receipts after the base are exactly `r`'s,
  // charges they settle are removed, the base checkpoint is stored. One transaction.
  Status adopt(ByteView peer, const Reconciled& r);

  // SQLite's integrity check: "ok" when the file is sound.
  Result<std::string> integrity_check() { return db_->integrity_check(); }

  // Group commit: when on, updates join one open transaction until commit(). Reads see them
  // at once; a crash loses what was not committed (the owner commits every few ms, and
  // before anything leaves that the peer may hold us to: a receipt we send). Off by default.
  void set_group_commit(bool on);
  // Ends the open transaction, writing first the charges only memory holds, except, with
  // `young_charge_rounds` > 0, those added fewer than that many commits ago: most are settled
  // by their receipt before then and never touch the file. (A crash forgets an unsaved charge;
  // what it loses is the unpaid mark of a request answered in the last few commit intervals
  // whose receipt then never comes. The receipts themselves are never deferred.) On failure
  // the uncommitted updates are dropped from memory too (reloaded from the file), so memory
  // never claims what the file lacks.
  Status commit(uint32_t young_charge_rounds = 0);
  // For commit(): the receipts and settlements only, no open charge saved (what must be in the
  // file before a checkpoint we sign can be held against us).
  static constexpr uint32_t kNoOpenCharges = UINT32_MAX;
  // Updates in the open transaction (receipts, checkpoints, saved charges), charges only
  // memory holds, commits done, and commits that failed (each dropped what was uncommitted, so
  // memory again matches the file). Our receipts are durable when uncommitted() is 0.
  uint64_t uncommitted() const { return uncommitted_; }
  uint64_t unsaved_charges() const { return unsaved_charges_; }
  uint64_t commits() const { return commits_; }
  uint64_t failed_commits() const { return failed_commits_; }
  ~LedgerStore();

 private:
  LedgerStore(std::unique_ptr<db::Database> db, Bytes self)
      : db_(std::move(db)), self_(std::move(self)) {}

  // A provider's charge awaiting its receipt, or unpaid: always in memory, in the file once
  // saved (at once without group commit; with it, at a commit unless a receipt came first).
  struct OpenCharge {
    uint64_t operations = 0, deadline_unix_ms = 0;
    std::shared_ptr<const Bytes> service;
    uint64_t round = 0;  // commit_rounds_ when it was added: its age in commits
    bool unpaid = false, saved = false;
  };
  // Request IDs: a few in a vector (most peers are met once or twice, and a network's worth of
  // books each holding a hash set cost ~100 bytes apiece in a 10,000-peer simulation), a hash
  // set once there are more.
  class KeySet {
   public:
    bool contains(uint64_t k) const {
      return many_ ? many_->count(k) > 0 : std::find(few_.begin(), few_.end(), k) != few_.end();
    }
    void insert(uint64_t k) {
      if (many_) {
        many_->insert(k);
      } else if (!contains(k)) {
        if (few_.size() < kFew) {
          few_.push_back(k);
        } else {
          many_ = std::make_unique<std::unordered_set<uint64_t>>(few_.begin(), few_.end());
          many_->insert(k);
          few_ = {};
        }
      }
    }
    void erase(uint64_t k) {
      if (many_) {
        many_->erase(k);
      } else if (auto it = std::find(few_.begin(), few_.end(), k); it != few_.end()) {
        *it = few_.back();
        few_.pop_back();
      }
    }

   private:
    static constexpr size_t kFew = 16;
    std::vector<uint64_t> few_;
    std::unique_ptr<std::unordered_set<uint64_t>> many_;
  };
  // Everything about one peer, found with one lookup on the per-request paths.
  struct Book {
    Ledger ledger;
    ChargeTotals totals;
    std::unordered_map<uint64_t, OpenCharge> open;  // by request ID
    // Group commit: request IDs charged and not yet saved, oldest first (settled ones are
    // skipped when the commit comes).
    std::vector<uint64_t> unsaved;
    // On the heap: most books (a peer met once or twice) never get one, and a Checkpoint is
    // 128 bytes inline.
    std::unique_ptr<Checkpoint> checkpoint;
    // The receipts after the checkpoint in sequence order (evidence, ledger_at); with group
    // commit the last `unwritten` of them are not yet in the file.
    std::vector<LogRecord> after_checkpoint;
    size_t unwritten = 0;
    // Keys of held receipts (request IDs by who served): after the checkpoint, and the window
    // before it (forgotten at restart).
    KeySet served, paid, older_served, older_paid;
  };

  Status init();
  Status load();
  using Books = std::unordered_map<Bytes, Book, BytesHash, BytesEqual>;
  using Entry = Books::value_type*;
  // The book of `peer`, created (zero ledger) if there is none yet; book_entry gives its map
  // entry (stable until load() clears the map: a hash map's nodes do not move), for the lists
  // that point at books.
  Entry book_entry(ByteView peer);
  Book& book(ByteView peer) { return book_entry(peer)->second; }
  // Group commit: opens the shared transaction if none is open. No-op otherwise.
  Status join_batch();
  // Group commit: writes the charges still open that only memory holds and are at least
  // `min_rounds` commits old (0: all).
  Status save_charges(uint32_t min_rounds = 0);
  // One update was written (counts toward uncommitted()).
  void wrote() { uncommitted_ += group_ ? 1 : 0; }
  // Old files kept one row per receipt: moved into the log once, when opened.
  Status migrate_receipt_rows();
  // Group commit: writes the receipts applied since the last commit, one log row per peer.
  Status write_log();
  Status write_log(ByteView peer, Book& b);
  // Whether a receipt (by which side served and request ID) is held: see apply_receipt.
  static bool holds(const Book& b, bool we_served, uint64_t request_id);
  // `service` as a shared record field: one copy per service among the recent ones, whatever
  // the book (a node serves a few services to many peers).
  std::shared_ptr<const Bytes> share_service(ByteView service);

  std::unique_ptr<db::Database> db_;
  Bytes self_;
  Books books_;
  // share_service's recent services (a bounded ring: a peer cannot grow it with made-up IDs).
  static constexpr size_t kSharedServices = 32;
  std::vector<std::shared_ptr<const Bytes>> services_;
  size_t next_service_ = 0;
  // Group commit: the books that gained unwritten receipts since the last write (the commit
  // writes those, not every book).
  std::vector<Entry> unwritten_books_;
  // Group commit: the books whose `unsaved` is not empty (a commit walks these only).
  std::vector<Entry> unsaved_books_;
  // Kept prepared: the per-request paths (charge, receipt, commit) run them thousands of times.
  std::optional<db::Statement> put_log_, put_charge_, del_charge_;
  bool group_ = false;
  size_t unsaved_entries_ = 0;    // entries of all books' `unsaved`
  uint64_t unsaved_charges_ = 0;  // open charges only memory holds
  // Pending charges by deadline (a min-heap; settled ones leave it when their deadline comes):
  // expire_charges looks only at those due.
  struct Due {
    uint64_t deadline_unix_ms = 0, request_id = 0;
    Entry book;
  };
  static bool due_later(const Due& a, const Due& b) {
    return a.deadline_unix_ms != b.deadline_unix_ms ? a.deadline_unix_ms > b.deadline_unix_ms
                                                    : a.request_id > b.request_id;
  }
  void add_due(uint64_t deadline_unix_ms, uint64_t request_id, Entry book);
  std::vector<Due> due_;
  std::optional<db::Transaction> batch_;  // the open group-commit transaction; after db_
  uint64_t uncommitted_ = 0, commits_ = 0, failed_commits_ = 0;
  uint64_t commit_rounds_ = 0;  // commit() calls, for the age of unsaved charges
};

}  // namespace idn::swap
