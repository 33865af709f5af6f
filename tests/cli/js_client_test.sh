#!/usr/bin/env bash
# The JavaScript package (js/, @idn/client on stock js-libp2p) against two `idn node`s on
# 127.0.0.1 that both host a tiny B-LeNet: it finds the providers through the first node's
# kad-dht bridge (/ipfs/kad/1.0.0 GET_PROVIDERS), infers with npeers 2, and its predictions
# (class, exit, confidence) equal `idn infer`'s on the same test images (the local engine on 4,
# the C++ network client on the first); the same over WebSockets only; finish() on the first
# answer ends the stream; initModel gets hosting and declining answers with reasons; an
# unknown service and a malformed input get clear errors. Also: the generated schema
# (js/src/proto.js) matches proto/, and the typed example passes `tsc --noEmit`.
# Exits 77 (skipped) when node or js/node_modules is missing (run scripts/setup).
# Usage: js_client_test.sh PATH_TO_IDN FIXTURES_DIR
set -euo pipefail
idn="$1"
fixtures="$2"
here="$(cd "$(dirname "$0")/../.." && pwd)"
if ! command -v node >/dev/null 2>&1 || [ ! -d "$here/js/node_modules/libp2p" ]; then
  echo "js_client_test: skipped: node or js/node_modules missing (run scripts/setup)"
  exit 77
fi
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
scratch_dir '*.log' js.out cpp.txt net.out

# Beside the nodes' start: the schema check and the type check (tsc takes a few seconds).
(cd "$here/js" && node scripts/gen-proto.mjs --check && node node_modules/typescript/bin/tsc -p test/tsconfig.json) \
  >"$dir/tsc.log" 2>&1 &
checks=$!

model="$(tiny_model)" || fail "training the test model"
# FashionMNIST test images as PGM files: the JS client and `idn infer --input` read the same.
n=4
inputs="$(write_test_images "$n")" || fail "writing the test images"
# The C++ client's answers (class, exit printed 1-based, confidence), beside the nodes' start.
local_answers "$model" "$n" &
cpp=$!
start_two_ws_nodes "$model"

# The C++ client over the same network, beside the JS client: input 0 with fan-out 2.
"$idn" infer --service "$sid" --bootstrap "$addr_a" --input "$dir/img0.pgm" --fanout 2 \
  --deadline-ms 10000 >"$dir/net.out" 2>"$dir/net.log" &
net=$!
timeout 60 node "$here/js/test/infer_check.mjs" --bootstrap "$addr_a" --service "$sid" --inputs "$inputs" \
  --npeers 2 --ws-bootstrap "$ws_a" >"$dir/js.out" 2>"$dir/js.log" || fail "infer_check.mjs failed"
grep -q '"done":true' "$dir/js.out" || fail "infer_check.mjs did not finish"
wait "$cpp" || fail "idn infer"
wait "$net" || fail "idn infer --service"
# Its best answer is its last: class, exit (0-based here), confidence.
sed -n 's/^answer  class \([0-9]*\)  exit \([0-9]*\)  confidence \([0-9.]*\) .*/\1 \2 \3/p' "$dir/net.out" |
  tail -n 1 >"$dir/net.txt"
python3 - "$dir/js.out" "$dir/cpp.txt" "$n" "$dir/net.txt" <<'PY' || fail "the JS client disagrees: $(cat "$dir/js.out")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
cpp = {int(i): (int(c), int(e) - 1, float(p)) for i, c, e, p in (l.split() for l in open(sys.argv[2]))}
js = {l["input"]: l for l in lines if "input" in l}
assert len(cpp) == int(sys.argv[3]) and set(js) == set(cpp), (js.keys(), cpp)
for i, (c, e, p) in cpp.items():
    assert (js[i]["class"], js[i]["exit"]) == (c, e), (i, js[i], c, e)
    assert abs(js[i]["confidence"] - p) < 1e-4, (i, js[i], p)
    assert js[i]["final"], js[i]
    # Both providers were found through node a's kad-dht bridge and asked.
    assert len(set(js[i]["asked"])) == 2, js[i]
# idn infer --service (the C++ client on the network) agrees on input 0 too.
c, e, p = open(sys.argv[4]).read().split()
assert (js[0]["class"], js[0]["exit"]) == (int(c), int(e)) and abs(js[0]["confidence"] - float(p)) < 1e-4, (js[0], c, e, p)
fin = next(l["finish"] for l in lines if "finish" in l)
assert fin["events"] == 1 and fin["done"], fin
assert len(fin["outcomes"]) == 2, fin
unk = next(l["unknown"] for l in lines if "unknown" in l)
assert unk["code"] == "NOT_FOUND" and "no provider of service" in unk["message"], unk
unk = next(l["unknown_direct"] for l in lines if "unknown_direct" in l)
assert unk["code"] == "UNKNOWN_SERVICE" and "do not serve service" in unk["message"], unk
init = next(l["init"] for l in lines if "init" in l)
assert init["hosting"] == 2 and not init["declined"], init
# Declined by the first, the next connected peer is asked, and declines too.
assert init["unknown_hosting"] == 0 and len(init["unknown_declined"]) == 2, init
assert "auto_host" in init["unknown_declined"][0]["reason"], init
ws = next(l["ws"] for l in lines if "ws" in l)
assert (ws["class"], ws["exit"]) == cpp[0][:2] and abs(ws["confidence"] - cpp[0][2]) < 1e-4, ws
assert len(set(ws["asked"])) == 2 and ws["remote"] and all("/ws" in a for a in ws["remote"]), ws
bad = next(l["bad_input"] for l in lines if "bad_input" in l)
assert bad["code"] == "INVALID_ARGUMENT" and "needs 784" in bad["message"], bad
PY
# Node a counted the JS clients' lookups on its kad bridge.
python3 - "$(line http "$dir/a.out")" <<'PY' || fail "node a counted no GET_PROVIDERS"
import re, sys, urllib.request
m = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=5).read().decode()
n = re.search(r'^idn_kad_requests_total\{type="get_providers"\} (\S+)$', m, re.M)
sys.exit(0 if n and float(n.group(1)) >= 2 else 1)
PY
wait "$checks" || fail "proto schema or type check: $(cat "$dir/tsc.log")"
cat "$dir/js.out"
echo "js_client_test: $n images agree with idn infer; finish, errors ok"
echo "js_client_test: ok"
