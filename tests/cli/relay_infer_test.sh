#!/usr/bin/env bash
# `idn infer` reaches a JavaScript peer through a node's circuit relay: an @idn/client peer in
# Node (tests/cli/relay_infer_peer.mjs, createIdn({ relay: true })) reserves a slot on an
# `idn node` that stores (does not host) a tiny B-LeNet published with its ONNX form, serves the
# service and announces it; the node's kad front then names it at its circuit address; `idn infer
# --provider <that address>` (the C++ client dialling through the relay: p2p/circuit_transport.h)
# gets the local engine's class, exit and confidence from it; so does `idn infer --bootstrap
# <the node>` with no --provider, which finds the peer in the DHT (the node's relayed-provider
# record, routing/record.h) and asks it through the relay.
# Exits 77 (skipped) when node or js/node_modules (with onnxruntime-web) is missing.
# Usage: relay_infer_test.sh PATH_TO_IDN FIXTURES_DIR
set -euo pipefail
idn="$1"
fixtures="$2"
here="$(cd "$(dirname "$0")/../.." && pwd)"
if ! command -v node >/dev/null 2>&1 || [ ! -d "$here/js/node_modules/libp2p" ] ||
  [ ! -d "$here/js/node_modules/onnxruntime-web" ]; then
  echo "relay_infer_test: skipped: node or js/node_modules (onnxruntime-web) missing (run scripts/setup)"
  exit 77
fi
dir="$(mktemp -d)"
pids=()
cleanup() {
  exec 3>&- 2>/dev/null || true
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$dir"/*.log "$dir"/peer.out "$dir"/infer*.out "$dir"/cpp.txt; do
    [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
  done
  exit 1
}
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

model="$(tiny_model)" || fail "training the test model"
n=2
write_test_images "$n" >/dev/null || fail "writing the test images"
local_answers "$model" "$n" &
cpp=$!
"$idn" export onnx "$model" --out "$dir/onnx" --publish --data-dir "$dir/a" >"$dir/export.out" \
  2>"$dir/export.log" || fail "idn export onnx --publish"
sid="$(line service "$dir/export.out")"
[ -n "$sid" ] || fail "export printed no service ID"
# The node keeps the package (the JS peer fetches its ONNX form from it) but does not host the
# service: the JS peer is its only provider.
rm -f "$dir/a/hosted"
cat >"$dir/node.toml" <<TOML
listen = ["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws"]
http = "127.0.0.1:0"
[dht]
withdraw_on_stop = false
TOML
"$idn" node --config "$dir/node.toml" --data-dir "$dir/a" >"$dir/a.out" 2>"$dir/a.log" &
pids+=($!)
wait_for "the node" 30 grep -qs '^ready' "$dir/a.out"
addr_a="$(grep '^listening .*/tcp/[0-9]*/p2p/' "$dir/a.out" | head -n 1 | cut -d' ' -f2)"
ws_a="$(grep '^listening .*/tcp/[0-9]*/ws/p2p/' "$dir/a.out" | head -n 1 | cut -d' ' -f2)"
if [ -z "$addr_a" ] || [ -z "$ws_a" ]; then fail "the node printed no TCP or /ws address"; fi

mkfifo "$dir/stdin"
node "$here/tests/cli/relay_infer_peer.mjs" --bootstrap "$ws_a" --service "$sid" \
  <"$dir/stdin" >"$dir/peer.out" 2>"$dir/peer.log" &
pids+=($!)
exec 3>"$dir/stdin"
wait_for "the JS peer" 60 grep -qs '"\(peerId\|error\)"' "$dir/peer.out"
peer="$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline()).get("peerId",""))' "$dir/peer.out")"
[ -n "$peer" ] || fail "the JS peer did not serve: $(cat "$dir/peer.out")"
# The ADD_PROVIDER gets no answer: the peer may print before the node has read it.
wait_for "the node to take the JS peer's announcement" 10 grep -qs "relay: $peer provides" "$dir/a.log"

circuit="$addr_a/p2p-circuit/p2p/$peer"
wait "$cpp" || fail "idn infer (local)"
for ((i = 0; i < n; i++)); do
  "$idn" infer --service "$sid" --provider "$circuit" --input "$dir/img$i.pgm" >"$dir/infer$i.out" \
    2>"$dir/infer$i.log" || fail "idn infer --provider $circuit"
done
# Without --provider: a client node that joins through the node finds the JS peer in the DHT
# (the node's relayed-provider record names it at its circuit address) and asks it there.
for ((i = 0; i < n; i++)); do
  "$idn" infer --service "$sid" --bootstrap "$addr_a" --input "$dir/img$i.pgm" \
    >"$dir/infer_dht$i.out" 2>"$dir/infer_dht$i.log" || fail "idn infer --bootstrap (no --provider)"
done
python3 - "$dir" "$n" "$peer" <<'PY' || fail "the answers through the relay differ from the local engine's"
import re, sys
d, n, peer = sys.argv[1], int(sys.argv[2]), sys.argv[3]
local = {int(i): (int(c), int(e) - 1, float(p)) for i, c, e, p in (l.split() for l in open(f"{d}/cpp.txt"))}
for i, how in [(i, how) for how in ("", "_dht") for i in range(n)]:
    finals = [l for l in open(f"{d}/infer{how}{i}.out") if l.startswith("answer") and "(final)" in l]
    m = re.search(r"class (\d+)\s+exit (\d+)\s+confidence ([0-9.]+)\s+peer (\S+)\s+([0-9.]+) ms", finals[-1])
    c, e, p, who, ms = int(m[1]), int(m[2]), float(m[3]), m[4], float(m[5])
    print(f"relay_infer_test: image {i} ({'DHT' if how else '--provider'}): class {c} exit {e} confidence {p:.4f} from {who} in {ms} ms "
          f"(local: {local[i]})")
    assert who == peer and (c, e) == local[i][:2] and abs(p - local[i][2]) < 1e-3, (i, finals[-1], local[i])
PY
# The node's own sessions (its HTTP gateway here) take the peer that announced through its relay
# at once, with no DHT lookup: image 0 as a PNG body.
http_a="$(line http "$dir/a.out")"
python3 - "$dir" "$http_a" "$peer" <<'PY' || fail "the gateway's answer did not come from the JS peer"
import json, struct, sys, urllib.request, zlib
d, http, peer = sys.argv[1], sys.argv[2], sys.argv[3]
pix = open(f"{d}/img0.pgm", "rb").read()[-784:]
chunk = lambda t, b: struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b))
png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0)) +
       chunk(b"IDAT", zlib.compress(b"".join(b"\0" + pix[r * 28:(r + 1) * 28] for r in range(28)))) +
       chunk(b"IEND", b""))
sid = open(f"{d}/export.out").read().split("service ")[1].split()[0]
req = urllib.request.Request(f"http://{http}/idn/v1/services/{sid}/infer", data=png,
                             headers={"Content-Type": "image/png"})
ans = json.load(urllib.request.urlopen(req, timeout=20))
local = open(f"{d}/cpp.txt").readline().split()
print(f"relay_infer_test: gateway: class {ans['class']} exit {ans['exit']} from {ans['peer']} "
      f"in {ans['latency_ms']} ms (local class {local[1]})")
assert ans["peer"] == peer and ans["class"] == int(local[1]), ans
PY
# The DHT names the peer at its circuit address until its reservation ends; then the node
# withdraws the record.
dht_a="$(line dht "$dir/a.out")"
[ -n "$dht_a" ] || fail "the node printed no DHT endpoint"
"$idn" providers "$sid" --bootstrap "$dht_a" >"$dir/providers.out" 2>"$dir/providers.log" ||
  fail "idn providers (with the JS peer up)"
grep -q "^$peer .*/p2p-circuit/p2p/$peer" "$dir/providers.out" ||
  fail "the DHT does not name the JS peer at its circuit address: $(cat "$dir/providers.out")"
exec 3>&-
wait_for "the JS peer to stop" 20 grep -qs '"stopped"' "$dir/peer.out"
wait_for "the node to end the reservation" 10 grep -qs "reservation of $peer ended" "$dir/a.log"
gone() {
  local rc=0
  "$idn" providers "$sid" --bootstrap "$dht_a" >"$dir/providers.out" 2>"$dir/providers.log" || rc=$?
  [ "$rc" = 3 ]
}
wait_for "the node to withdraw the relayed record" 20 gone
echo "relay_infer_test: ok"
