#!/usr/bin/env bash
# Stock js-libp2p pings a busy node: `idn node` hosts a published model and answers `idn infer
# --service` requests (a client in a loop) while 20 fresh js-libp2p nodes (interop/ping_burst.mjs,
# the pinned js-libp2p 3) each dial it, wait for identify and ping 50 times back to back.
# js-libp2p allows one outbound ping stream per connection and counts a stream until both sides
# closed it, so every one of the 1,000 pings fails unless the node's FIN for the previous ping
# stream reaches the pinger in time. 0 failures expected, and inference answered meanwhile.
# Exits 77 (skipped) when node or interop/node_modules is missing (run scripts/setup).
# Usage: js_ping_test.sh PATH_TO_IDN FIXTURES_DIR
#   FIXTURES_DIR: the build tree's cache of trained test models (tiny-b-lenet, trained by the
#   C++ tests' tiny_package(), is used when present; else a tiny B-LeNet is trained once).
set -euo pipefail
idn="$1"
fixtures="$2"
here="$(cd "$(dirname "$0")/../.." && pwd)"
burst="$here/interop/ping_burst.mjs"
if ! command -v node >/dev/null 2>&1 || [ ! -d "$here/interop/node_modules/libp2p" ]; then
  echo "js_ping_test: skipped: node or interop/node_modules missing (run scripts/setup)"
  exit 77
fi
dir="$(mktemp -d)"
pids=()
cleanup() {
  # The node first: the inference loops then see the stop file after at most one failed
  # request (bounded by its --deadline-ms) and end by themselves.
  touch "$dir/stop"
  [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[0]}" 2>/dev/null || true
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$dir"/*.log "$dir"/burst.out; do
    [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
  done
  exit 1
}
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
answered() { [ "$(cat "$dir/answers" 2>/dev/null | wc -l)" -ge "$1" ]; }

model="$(tiny_model)" || fail "training the test model"

"$idn" publish "$model" --data-dir "$dir/a" >"$dir/publish.out" 2>"$dir/publish.log" ||
  fail "idn publish"
sid="$(line service "$dir/publish.out")"
[ -n "$sid" ] || fail "publish printed no service ID"
"$idn" node --data-dir "$dir/a" --listen /ip4/127.0.0.1/tcp/0 --http 127.0.0.1:0 \
  >"$dir/node.out" 2>"$dir/node.log" &
pids+=($!)
wait_for "the node" 30 grep -q '^ready' "$dir/node.out"
addr="$(line listening "$dir/node.out")"
http="$(line http "$dir/node.out")"
wait_for "the node hosting the published service" 60 hosts_service "$http" "$sid"

# Inference load: a client asking the service, one request after another (each a new process,
# connection, identify and DHT lookup). Each answered request is a line: its start and end
# (ms since the epoch).
(
  i=0
  while [ ! -e "$dir/stop" ]; do
    t0=$(date +%s%3N)
    if "$idn" infer --service "$sid" --bootstrap "$addr" --test-index $((i % 100)) \
      --deadline-ms 5000 >"$dir/infer.out" 2>>"$dir/infer.log" &&
      grep -q '^answer' "$dir/infer.out"; then
      echo "$t0 $(date +%s%3N)" >>"$dir/answers"
    fi
    i=$((i + 1))
  done
) &
pids+=($!)
wait_for "a first inference answer" 60 answered 1

start=$(date +%s%3N)
node "$burst" "$addr" --nodes 20 --pings 50 >"$dir/burst.out" 2>"$dir/burst.log" || true
end=$(date +%s%3N)
grep -q '"event":"done"' "$dir/burst.out" || fail "ping_burst did not finish"
summary="$(grep '"event":"done"' "$dir/burst.out")"
echo "js_ping_test: $summary ($((end - start)) ms)"
python3 - "$summary" <<'PY' || fail "js-libp2p pings failed: $summary"
import json, sys
d = json.loads(sys.argv[1])
sys.exit(0 if d["failed_nodes"] == 0 and d["pings"] == d["nodes"] * 50 == 1000 else 1)
PY
# The node was serving inference meanwhile: some answered request overlapped the pings (the
# one in flight when they ended may still be finishing).
overlapping() { awk -v s="$start" -v e="$end" '$1 <= e && $2 >= s' "$dir/answers" | wc -l; }
overlapped() { [ "$(overlapping)" -ge 1 ]; }
wait_for "an answered inference request that overlapped the pings" 30 overlapped
echo "js_ping_test: $(overlapping) inference requests answered while js-libp2p pinged"
echo "js_ping_test: ok"
