// idn id new|show: create a node identity of a chosen difficulty (§7.1 GENERATENODEID) and store
// its key encrypted; show the peer ID, its CID form, difficulty and public key of a key file.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "cli.h"
#include "identity/keystore.h"
#include "identity/peer_id.h"

namespace idn::cli {
namespace {

struct NewArgs {
  std::string out;
  int difficulty = 0;
  std::string passphrase_file;
  bool insecure_no_passphrase = false;
  bool force = false;
};

struct ShowArgs {
  std::string file;
  std::string passphrase_file;
};

int run_new(const NewArgs& a) {
  std::optional<std::string> passphrase;
  if (!a.insecure_no_passphrase) {
    auto p = identity::resolve_passphrase(a.passphrase_file, /*allow_none=*/false);
    if (!p.ok()) return report(p.status());
    passphrase = std::move(*p);
  } else if (!a.passphrase_file.empty()) {
    return report(Status::invalid_argument(
        "--insecure-no-passphrase and --passphrase-file contradict each other"));
  }
  std::error_code ec;
  if (!a.force && std::filesystem::exists(a.out, ec)) {
    return report(Status::invalid_argument(a.out + " already exists; pass --force to replace it"));
  }

  identity::GenerateOptions opt;
  opt.difficulty = a.difficulty;
  opt.progress_every = 4096;
  auto start = std::chrono::steady_clock::now();
  bool printed = false;
  opt.progress = [&](uint64_t attempts, int best) {
    printed = true;
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "\r  %llu attempts, best difficulty %d of %d, %.0f keys/s",
                 static_cast<unsigned long long>(attempts), best, a.difficulty,
                 secs > 0 ? attempts / secs : 0.0);
    std::fflush(stderr);
    return true;
  };
  if (a.difficulty > 0) {
    std::fprintf(stderr, "generating an identity with difficulty %d (expected %.0f attempts)\n",
                 a.difficulty, static_cast<double>(uint64_t{1} << std::min(a.difficulty, 63)));
  }
  auto g = identity::generate_with_difficulty(opt);
  if (printed) std::fprintf(stderr, "\n");
  if (!g.ok()) return report(g.status());
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  Status s = identity::save_key(a.out, g->key, passphrase, a.force);
  if (!s.is_ok()) return report(s);
  std::printf("peer_id:    %s\n", g->id.to_base58().c_str());
  std::printf("cid:        %s\n", g->id.to_cid_string().c_str());
  std::printf("difficulty: %d (required %d)\n", g->id.difficulty(), a.difficulty);
  std::printf("attempts:   %llu in %.2f s\n", static_cast<unsigned long long>(g->attempts), secs);
  std::printf("key_file:   %s (%s)\n", a.out.c_str(),
              passphrase ? "encrypted" : "NOT encrypted: anyone who reads it is this node");
  return 0;
}

int run_show(const ShowArgs& a) {
  auto key = load_key_file(a.file, a.passphrase_file);
  if (!key.ok()) return report(key.status());
  identity::PeerId id = identity::PeerId::from_public_key(key->public_key());
  std::printf("peer_id:    %s\n", id.to_base58().c_str());
  std::printf("cid:        %s\n", id.to_cid_string().c_str());
  std::printf("difficulty: %d\n", id.difficulty());
  std::printf("public_key: %s\n", hex_encode(key->public_key().raw()).c_str());
  std::printf("key_type:   Ed25519\n");
  return 0;
}

}  // namespace

Result<identity::KeyPair> load_key_file(const std::string& file,
                                        const std::string& passphrase_file) {
  // An unencrypted file needs no passphrase; an encrypted one reports how to supply it.
  IDN_ASSIGN_OR_RETURN(auto p, identity::resolve_passphrase(passphrase_file, /*allow_none=*/true));
  std::optional<std::string_view> pass;
  if (p) pass = *p;
  return identity::load_key(file, pass);
}

void register_id(CLI::App& app) {
  auto* id = app.add_subcommand("id", "Create or inspect a node identity (Ed25519 key, peer ID)");
  id->require_subcommand(1);

  auto na = std::make_shared<NewArgs>();
  auto* nw = id->add_subcommand(
      "new",
      "Generate a node key whose ID has at least --difficulty leading zero bits in "
      "SHA-256(peer ID) and store it encrypted (passphrase from --passphrase-file or "
      "$IDN_PASSPHRASE)");
  nw->add_option("--out", na->out, "Key file to write (mode 0600)")->required();
  nw->add_option("--difficulty", na->difficulty, "Leading zero bits required (0-64)")
      ->capture_default_str()
      ->check(CLI::Range(0, identity::kMaxDifficulty));
  nw->add_option("--passphrase-file", na->passphrase_file,
                 "File whose first line is the passphrase (else $IDN_PASSPHRASE)");
  nw->add_flag("--insecure-no-passphrase", na->insecure_no_passphrase,
               "Store the key unencrypted (tests and throwaway nodes only)");
  nw->add_flag("--force", na->force, "Replace an existing key file");
  nw->callback([na] { run_or_exit(run_new(*na)); });

  auto sa = std::make_shared<ShowArgs>();
  auto* show = id->add_subcommand(
      "show", "Print a key file's peer ID (base58 and CID), difficulty and public key");
  show->add_option("file", sa->file, "Key file")->required();
  show->add_option("--passphrase-file", sa->passphrase_file,
                   "File whose first line is the passphrase (else $IDN_PASSPHRASE)");
  show->callback([sa] { run_or_exit(run_show(*sa)); });
}

}  // namespace idn::cli
