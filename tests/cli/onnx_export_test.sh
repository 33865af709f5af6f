#!/usr/bin/env bash
# `idn export onnx` end to end on the tiny B-LeNet: every stage and exit graph and the manifest
# written; bad packages and a --out holding other files refused in one clear line; the ONNX
# project's checker (python3-onnx) accepts the graphs; onnxruntime-node, running them stage by
# stage with the manifest's exit rule (interop/onnx_run.mjs), gives `idn infer`'s prediction, exit
# and confidence on FashionMNIST test images; --publish stores the ONNX directory by CID beside
# the package and names it in the service descriptor, leaving `idn publish`'s IDs unchanged.
# The checker's and onnxruntime's parts are skipped, saying so, when they are not installed.
# Usage: onnx_export_test.sh PATH_TO_IDN FIXTURES_DIR
set -euo pipefail
idn="$1"
fixtures="$2"
here="$(cd "$(dirname "$0")/../.." && pwd)"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

# must_fail WHAT PATTERN COMMAND...: exit status 1 or 2, one "idn: error:" line naming PATTERN.
must_fail() {
  local what="$1" pattern="$2" rc=0
  shift 2
  "$@" >"$dir/out" 2>"$dir/err" || rc=$?
  [ $rc = 1 ] || [ $rc = 2 ] || fail "$what: exit status $rc: $(cat "$dir/err")"
  [ "$(grep -c '^idn: error:' "$dir/err")" = 1 ] || fail "$what: not one error line: $(cat "$dir/err")"
  grep -q -- "$pattern" "$dir/err" || fail "$what: error does not mention '$pattern': $(cat "$dir/err")"
}

model="$(tiny_model)" || fail "training the test model"

"$idn" export onnx --help >"$dir/help"
grep -q -- "--publish" "$dir/help" || fail "export onnx --help does not mention --publish"

"$idn" export onnx "$model" --out "$dir/onnx" >"$dir/export.out" 2>"$dir/export.err" ||
  fail "export: $(cat "$dir/export.err")"
for f in stage_0.onnx stage_1.onnx exit_0.onnx exit_1.onnx manifest.json; do
  [ -s "$dir/onnx/$f" ] || fail "export wrote no $f: $(cat "$dir/export.out")"
done
grep -q '^wrote stage_0.onnx .* image \[N,1,28,28\] ->' "$dir/export.out" ||
  fail "export output: $(cat "$dir/export.out")"
python3 - "$dir/onnx/manifest.json" "$model/model.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
spec = json.load(open(sys.argv[2]))
assert m["format"] == "idn-onnx" and m["opset"] == 13, m
assert [s["name"] for s in m["stages"]] == [s["name"] for s in spec["stages"]], m["stages"]
for e, want in zip(m["exits"], spec["exits"]):
    for k in ("criterion", "threshold", "temperature", "stage"):
        assert e[k] == want[k], (k, e, want)
    assert [o["name"] for o in e["outputs"]] == ["logits", "probs"], e
assert m["input"]["shape"] == ["N", 1, 28, 28], m["input"]
assert m["model"]["hash"].startswith("Qm"), m["model"]
PY
# The same package again: the same bytes (a re-export is reproducible, so is its CID).
"$idn" export onnx "$model" --out "$dir/onnx2" >/dev/null
cmp -s "$dir/onnx/manifest.json" "$dir/onnx2/manifest.json" || fail "a second export differs"

must_fail "no package" "nowhere: not a model package" "$idn" export onnx "$dir/nowhere" --out "$dir/x"
mkdir -p "$dir/notpkg" && echo '{}' >"$dir/notpkg/model.json"
must_fail "not a package" "notpkg" "$idn" export onnx "$dir/notpkg" --out "$dir/x"
echo keep >"$dir/onnx2/notes.txt"
must_fail "foreign file in --out" "notes.txt" "$idn" export onnx "$model" --out "$dir/onnx2"
rc=0
"$idn" export onnx "$model" >/dev/null 2>"$dir/err" || rc=$?
[ $rc != 0 ] && grep -q -- "--out" "$dir/err" || fail "export without --out: rc $rc: $(cat "$dir/err")"

# The ONNX project's own checker (Debian's python3-onnx is for /usr/bin/python3).
py=""
for p in python3 /usr/bin/python3; do
  if "$p" -c 'import onnx' 2>/dev/null; then
    py="$p"
    break
  fi
done
if [ -n "$py" ]; then
  "$py" "$here/interop/onnx_check.py" "$dir/onnx" >"$dir/check" 2>&1 || fail "onnx checker: $(cat "$dir/check")"
  grep -q "4 graphs pass" "$dir/check" || fail "onnx checker output: $(cat "$dir/check")"
else
  echo "onnx_export_test: skipped the ONNX checker: no python with the onnx module (python3-onnx)"
fi

# onnxruntime-node runs the graphs with the exit rule; idn infer runs the engine.
if command -v node >/dev/null 2>&1 && [ -d "$here/interop/node_modules/onnxruntime-node" ]; then
  images=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
  [ -f "$images" ] || fail "missing $images (dataset-fashion-mnist)"
  indices="0 1 2 3 4 5 6 7"
  node "$here/interop/onnx_run.mjs" --dir "$dir/onnx" --images "$images" \
    --indices "$(echo $indices | tr ' ' ,)" >"$dir/ort" 2>&1 || fail "onnx_run: $(cat "$dir/ort")"
  for i in $indices; do
    "$idn" infer "$model" --test-index "$i" >"$dir/infer"
    want="$(sed -nE 's/^prediction ([0-9]+) .* exit [^ ]+ \(([0-9]+) of [0-9]+\)  confidence ([0-9.]+) .*/\1 \2 \3/p' "$dir/infer")"
    read -r pred exit_no conf <<<"$want"
    [ -n "$conf" ] || fail "cannot read idn infer's output: $(cat "$dir/infer")"
    got="$(grep "^index $i " "$dir/ort")"
    [ "$got" = "index $i prediction $pred exit $((exit_no - 1)) confidence $conf" ] ||
      fail "image $i: onnxruntime says '$got', idn infer says '$(cat "$dir/infer")'"
  done
else
  echo "onnx_export_test: skipped onnxruntime-node: node or interop/node_modules missing (run scripts/setup)"
fi

# --publish: the ONNX directory is content in the node's store, named by the descriptor.
"$idn" export onnx "$model" --out "$dir/onnx" --publish --data-dir "$dir/node" \
  >"$dir/pub.out" 2>"$dir/pub.err" || fail "export --publish: $(cat "$dir/pub.err")"
onnx_cid="$(line onnx "$dir/pub.out")"
model_cid="$(line model "$dir/pub.out")"
sid="$(line service "$dir/pub.out")"
[ -n "$onnx_cid" ] && [ -n "$model_cid" ] && [ -n "$sid" ] || fail "publish output: $(cat "$dir/pub.out")"
grep -q "^$sid\$" "$dir/node/hosted" || fail "the service is not in the node's hosted list"
# Another peer fetches the ONNX directory by CID over Bitswap from the publisher's store.
"$idn" share --store "$dir/node/store" >"$dir/share.out" 2>"$dir/share.log" &
share_pid=$!
trap 'kill "$share_pid" 2>/dev/null || true; wait "$share_pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
wait_for "idn share" 30 grep -q /p2p/ "$dir/share.out"
"$idn" fetch "$onnx_cid" --from "$(grep -m1 /p2p/ "$dir/share.out")" --store "$dir/peer" \
  --out "$dir/fetched" --timeout 20 >/dev/null 2>"$dir/fetch.err" ||
  fail "fetch the ONNX CID: $(cat "$dir/fetch.err")"
diff -r "$dir/onnx" "$dir/fetched" >/dev/null || fail "the fetched ONNX directory differs from the export"
# Plain `idn publish`: the same package CID, and its own (older) service ID.
"$idn" publish "$model" --data-dir "$dir/plain" >"$dir/plain.out" 2>/dev/null
[ "$(line model "$dir/plain.out")" = "$model_cid" ] || fail "package CID changed with --publish"
[ "$(line service "$dir/plain.out")" != "$sid" ] || fail "the descriptor does not name the ONNX CID"
echo "onnx_export_test: ok"
