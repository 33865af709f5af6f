#!/usr/bin/env bash
# @idn/client's peer mode in Node: a tiny B-LeNet is exported and published with its ONNX form
# (idn export onnx --publish) and hosted by an `idn node`; a js-libp2p peer (js/test/
# peer_check.mjs) serves the same service: it fetches the descriptor and the ONNX directory by
# CID over Bitswap from that node (every block and graph verified), runs them with
# onnxruntime-web (WASM) and answers /idn/infer/1.0.0. Its answers equal the C++ node's for
# every exit (class, exit, confidence, entropy, operations within 1e-4, probabilities within
# 1e-4) under the package's exit rule and under lastExit; `idn infer --provider <the JS peer>`
# (the C++ client dialling it directly) gets the local engine's class, exit and confidence;
# bad shapes, unknown services and bad thresholds get the C++ provider's errors, and requests
# held inside the peer (provider option beforeStage) show its Cancel, deadline and full-queue
# (BUSY) answers; two requests share a keep_open stream; serve() of an
# unknown service, of one published without an ONNX form and of a malformed ID fails clearly;
# after stop() the peer no longer answers.
# Exits 77 (skipped) when node or js/node_modules (with onnxruntime-web) is missing.
# Usage: js_peer_test.sh PATH_TO_IDN FIXTURES_DIR
set -euo pipefail
idn="$1"
fixtures="$2"
here="$(cd "$(dirname "$0")/../.." && pwd)"
if ! command -v node >/dev/null 2>&1 || [ ! -d "$here/js/node_modules/libp2p" ] ||
  [ ! -d "$here/js/node_modules/onnxruntime-web" ]; then
  echo "js_peer_test: skipped: node or js/node_modules (onnxruntime-web) missing (run scripts/setup)"
  exit 77
fi
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
scratch_dir '*.log' peer.out cpp.txt

model="$(tiny_model)" || fail "training the test model"
n=3
inputs="$(write_test_images "$n")" || fail "writing the test images"
local_answers "$model" "$n" &
cpp=$!

# The same package twice: with its ONNX form (the service the JS peer serves) and without.
"$idn" export onnx "$model" --out "$dir/onnx" --publish --data-dir "$dir/a" >"$dir/export.out" \
  2>"$dir/export.log" || fail "idn export onnx --publish"
sid="$(line service "$dir/export.out")"
"$idn" publish "$model" --data-dir "$dir/a" >"$dir/publish.out" 2>"$dir/publish.log" ||
  fail "idn publish"
plain="$(line service "$dir/publish.out")"
[ -n "$sid" ] && [ -n "$plain" ] && [ "$sid" != "$plain" ] || fail "no or equal service IDs"
cat >"$dir/node.toml" <<TOML
listen = ["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws"]
http = "127.0.0.1:0"
[dht]
withdraw_on_stop = false
TOML
"$idn" node --config "$dir/node.toml" --data-dir "$dir/a" >"$dir/a.out" 2>"$dir/a.log" &
pids+=($!)
wait_for "node a" 30 grep -qs '^ready' "$dir/a.out"
addr_a="$(grep '^listening .*/tcp/[0-9]*/p2p/' "$dir/a.out" | head -n 1 | cut -d' ' -f2)"
wait_for "node a hosting the service" 30 hosts_service "$(line http "$dir/a.out")" "$sid"

timeout 90 node "$here/js/test/peer_check.mjs" --bootstrap "$addr_a" --service "$sid" \
  --inputs "$inputs" --idn "$idn" --plain-service "$plain" \
  >"$dir/peer.out" 2>"$dir/peer.log" || fail "peer_check.mjs failed"
grep -q '"done":true' "$dir/peer.out" || fail "peer_check.mjs did not finish"
wait "$cpp" || fail "idn infer"
python3 - "$dir/peer.out" "$dir/cpp.txt" "$n" "$sid" <<'PY' || fail "the JS peer disagrees: $(cut -c1-600 "$dir/peer.out")"
import json, re, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
n, sid = int(sys.argv[3]), sys.argv[4]
local = {int(i): (int(c), int(e) - 1, float(p)) for i, c, e, p in (l.split() for l in open(sys.argv[2]))}
serving = next(l["serving"] for l in lines if "serving" in l)
assert serving["name"] == "b-lenet" and serving["onnxCid"].startswith("bafy"), serving
peer_id = serving["addresses"][0].rsplit("/", 1)[1]
pairs = [l for l in lines if "rule" in l]
assert len(pairs) == 2 * n, pairs
for l in pairs:
    assert len(l["peer"]) == len(l["node"]) >= 1, l
    assert l["rule"] != "lastExit" or len(l["peer"]) == 2, l
    for a, b in zip(l["peer"], l["node"]):
        for k in ("exit", "class", "final", "operations"):
            assert a[k] == b[k], (k, l["input"], l["rule"], a[k], b[k])
        for k in ("confidence", "entropy"):
            assert abs(a[k] - b[k]) < 1e-4, (k, l["input"], a[k], b[k])
        assert len(a["outputs"]) == 10 and max(abs(x - y) for x, y in zip(a["outputs"], b["outputs"])) < 1e-4, l
    best = l["peer"][-1]
    if l["rule"] == "default":
        c, e, p = local[l["input"]]
        assert (best["class"], best["exit"]) == (c, e) and abs(best["confidence"] - p) < 1e-4, (l["input"], best, local)
cpp = {l["cpp"]["input"]: l["cpp"]["out"] for l in lines if "cpp" in l}
assert set(cpp) == set(range(n)), cpp
for i, out in cpp.items():
    m = re.findall(r"^answer  class (\d+)  exit (\d+)  confidence ([0-9.]+)  peer (\S+)", out, re.M)
    assert m, out
    c, e, p, who = m[-1]
    assert who == peer_id and (int(c), int(e)) == local[i][:2] and abs(float(p) - local[i][2]) < 1e-4, (i, out, local[i])
    assert re.search(rf"^peer    {peer_id}  answered", out, re.M), out
errors = next(l["errors"] for l in lines if "errors" in l)
assert "INVALID_REQUEST: input shape [1, 28, 27], model 'b-lenet' expects [1, 28, 28]" in errors["shape"]["message"], errors
assert errors["unknown"]["code"] == "UNKNOWN_SERVICE", errors
assert "threshold 1.5 is outside [0, 1]" in errors["threshold"]["message"], errors
se = next(l["serve_errors"] for l in lines if "serve_errors" in l)
assert se["unknown"]["code"] == "NOT_FOUND" and "does not have it" in se["unknown"]["message"], se
assert se["plain"]["code"] == "FAILED_PRECONDITION" and "has no ONNX form" in se["plain"]["message"], se
assert se["malformed"]["code"] == "INVALID_ARGUMENT", se
stopped = next(l["stopped"] for l in lines if "stopped" in l)
assert stopped.get("code") == "UNAVAILABLE" and "/idn/infer/1.0.0" in stopped["message"], stopped
held = next(l["held"] for l in lines if "held" in l)
# As the C++ server: a Cancel stops a held request, a passed deadline is answered
# DEADLINE_EXCEEDED (5), a request beyond the queue BUSY with a retry time.
assert held["cancelled"] == 1 and held["busyCount"] == 1, held
assert held["deadline"]["error"] == 5 and "deadline of 200 ms passed" in held["deadline"]["message"], held
busy = [b for b in held["busy"] if "code" in b]
assert len(busy) == 1 and "BUSY: 2 requests already queued; retry in about" in busy[0]["message"], held
assert sum(1 for b in held["busy"] if "class" in b) == 3, held
ko = next(l["keep_open"] for l in lines if "keep_open" in l)
# The second request inherits the service and lastExit from the first; both finals keep it open.
assert [(k["id"], k["exits"], k["stream_open"], k["error"]) for k in ko] == [(1, [0, 1], True, 0), (2, [0, 1], True, 0)], ko
st = next(l for l in lines if "stats" in l)
s = st["stats"]
assert s["completed"] == 3 * n + 2 + 3 and s["cancelled"] == 1 and s["deadline_exceeded"] == 1 and s["busy"] == 1 and s["invalid"] == 2 and s["unknown_service"] == 1 and s["failed"] == 0, s
assert st["serving_after_stop"] == [], st
PY
grep '"serving"' "$dir/peer.out"
expect_error "idn infer --provider with a malformed address" "provider" \
  "$idn" infer --service "$sid" --provider not-a-multiaddr --input "$dir/img0.pgm"
echo "js_peer_test: the JS peer's answers to $n images equal the C++ node's at every exit; idn infer --provider agrees; errors ok"
echo "js_peer_test: ok"
