#!/usr/bin/env bash
# DaiMoN end to end with the CLI: `idn daimon problem create` (a small DEL on the first 300
# FashionMNIST test labels), `prove` for the tiny B-LeNet, `verify` holding (exit 0, a signed
# verdict written), then each tampering rejected with exit 1 and one line naming the check:
# outputs edited after signing (signature), another package claiming the proof (digest), a d_c
# the model does not beat (improvement); a file that is not a proof (exit 2); and the inverse
# attack's contrast (§6.4).
# Usage: daimon_poi_test.sh PATH_TO_IDN FIXTURES_DIR
set -euo pipefail
idn="$1"
fixtures="$2"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$dir"/*.log "$dir"/*.out; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
  exit 1
}
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

model="$(tiny_model)" || fail "training the test model"
"$idn" id new --out "$dir/prover.key" --insecure-no-passphrase >/dev/null
"$idn" id new --out "$dir/verifier.key" --insecure-no-passphrase >/dev/null
"$idn" daimon problem create --out "$dir/problem" --m 300 --n 32 --hidden 64 --epochs 3 \
  --samples-per-epoch 256 --eval-samples 300 --d-c 0.95 --report "$dir/report" \
  >"$dir/create.out" 2>"$dir/create.log" || fail "problem create"
grep -q "^mean |e - d| for label vectors with e < 0.2" "$dir/create.out" || fail "no |e - d| line"
for f in problem.json inputs.safetensors del/model.json del/weights.safetensors; do
  [ -f "$dir/problem/$f" ] || fail "problem lacks $f"
done
! grep -qi label "$dir/problem/problem.json" || fail "problem.json mentions labels"
# The problem is content: `idn add` gives the CID create printed.
cid="$(sed -n 's/^problem cid: \([^ ]*\).*/\1/p' "$dir/create.out")"
[ -n "$cid" ] || fail "create printed no problem cid"
"$idn" add "$dir/problem" --store "$dir/store" >"$dir/add.out" 2>"$dir/add.log" || fail "idn add"
grep -qx "$cid" "$dir/add.out" || fail "idn add gave $(tail -1 "$dir/add.out"), create said $cid"
[ -f "$dir/report/del-training.csv" ] && [ -f "$dir/report/del-gap.png" ] || fail "no report"

"$idn" daimon prove "$model" --problem "$dir/problem" --key "$dir/prover.key" \
  --out "$dir/proof.json" >"$dir/prove.out" 2>"$dir/prove.log" || fail "prove"
"$idn" daimon verify "$dir/proof.json" "$model" --problem "$dir/problem" \
  --key "$dir/verifier.key" --out "$dir/verification.json" >"$dir/verify.out" 2>"$dir/verify.log" ||
  fail "verify of an honest proof"
grep -q "^proof holds" "$dir/verify.out" || fail "verify did not say the proof holds"
grep -q '"holds": true' "$dir/verification.json" || fail "verification JSON does not hold"

rejected() {  # rejected WHAT EXPECTED_TEXT ARGS...: exit 1 and one line naming the check
  local what="$1" text="$2"
  shift 2
  set +e
  "$idn" daimon verify "$@" --problem "$dir/problem" >/dev/null 2>"$dir/err"
  local rc=$?
  set -e
  [ "$rc" = 1 ] || fail "$what: exit $rc, not 1"
  [ "$(wc -l <"$dir/err")" = 1 ] || fail "$what: not one line: $(cat "$dir/err")"
  grep -q "$text" "$dir/err" || fail "$what: '$(cat "$dir/err")' does not name $text"
}
python3 - "$dir/proof.json" "$dir/edited.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
p["y"][0] += 0.01
json.dump(p, open(sys.argv[2], "w"))
PY
rejected "edited outputs" "signature" "$dir/edited.json" "$model"
cp -r "$model" "$dir/renamed"
sed -i 's/"name": "[^"]*"/"name": "someone-else"/' "$dir/renamed/model.json"
rejected "another package" "digest" "$dir/proof.json" "$dir/renamed"
rejected "a d_c not beaten" "improvement" "$dir/proof.json" "$model" --d-c 0.01

# §6.4: the inverse attack recovers x_t from data near it, not from random data.
"$idn" daimon attack inverse --m 100 --n 32 --del-epochs 2 --epochs 4 --samples-per-epoch 256 \
  --hidden 1024 --out "$dir/inverse.csv" >"$dir/inverse.out" 2>"$dir/inverse.log" ||
  fail "attack inverse"
python3 - "$dir/inverse.csv" <<'PY' || fail "attack inverse: near x_t is not below random"
import csv, sys
last = {r["data"]: float(r["error"]) for r in csv.DictReader(open(sys.argv[1]))}
sys.exit(0 if last["near x_t"] < 0.2 and last["random"] > 0.5 else 1)
PY

echo '{"format": "x"}' >"$dir/bad.json"
set +e
"$idn" daimon verify "$dir/bad.json" "$model" --problem "$dir/problem" >/dev/null 2>"$dir/err"
rc=$?
set -e
[ "$rc" = 2 ] || fail "a non-proof: exit $rc, not 2"
echo ok
