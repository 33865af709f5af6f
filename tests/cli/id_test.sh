#!/usr/bin/env bash
# `idn id new|show` end to end: an encrypted key of the asked difficulty, readable back only with
# the right passphrase. Usage: id_test.sh PATH_TO_IDN
set -euo pipefail
idn="$1"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

unset IDN_PASSPHRASE
if "$idn" id new --out "$dir/k" 2>"$dir/err"; then fail "created a key without any passphrase"; fi
grep -q -- "--insecure-no-passphrase" "$dir/err" || fail "missing-passphrase error does not say what to do"

printf 'hunter2\n' >"$dir/pass"
"$idn" id new --out "$dir/k" --difficulty 6 --passphrase-file "$dir/pass" >"$dir/new" 2>/dev/null
id="$(sed -n 's/^peer_id: *//p' "$dir/new")"
[[ "$id" == 12D3KooW* ]] || fail "peer ID '$id' is not an Ed25519 libp2p peer ID"
[ "$(stat -c %a "$dir/k")" = 600 ] || fail "key file is not mode 0600"
grep -q "BEGIN ENCRYPTED PRIVATE KEY" "$dir/k" || fail "key file is not encrypted PKCS#8"

IDN_PASSPHRASE=hunter2 "$idn" id show "$dir/k" >"$dir/show"
[ "$(sed -n 's/^peer_id: *//p' "$dir/show")" = "$id" ] || fail "show prints another peer ID"
d="$(sed -n 's/^difficulty: *//p' "$dir/show")"
[ "$d" -ge 6 ] || fail "difficulty $d < 6"
grep -q '^cid: *bafzaa' "$dir/show" || fail "no CID form"
grep -Eq '^public_key: *[0-9a-f]{64}$' "$dir/show" || fail "no 32-byte public key"

if IDN_PASSPHRASE=wrong "$idn" id show "$dir/k" 2>"$dir/err" >/dev/null; then
  fail "opened the key with a wrong passphrase"
fi
grep -q "wrong passphrase" "$dir/err" || fail "wrong-passphrase error is unclear: $(cat "$dir/err")"
if "$idn" id new --out "$dir/k" --passphrase-file "$dir/pass" 2>/dev/null >/dev/null; then
  fail "overwrote an existing key without --force"
fi
echo "id_test: ok ($id, difficulty $d)"
