#!/usr/bin/env bash
# Browser tabs as IDN peers: two pages in headless Chromium (Debian's, through playwright-core;
# js/test/browser_peer_check.mjs) load @idn/client's bundle, connect to an `idn node` over /ws,
# reserve a circuit relay v2 slot on it (createIdn({ relay: true })), serve a tiny B-LeNet
# published with its ONNX form (fetched by CID over Bitswap from the node, run with
# onnxruntime-web's WASM build) and announce themselves. A js-libp2p client in Node reaches the
# pages through the node (/p2p/NODE/p2p-circuit/p2p/PAGE): page 0's answers equal `idn infer`'s
# on the same images, and so do `idn infer --provider <page 0's circuit address>`'s (the C++
# client dialling through the node); the node's kad bridge names both pages as providers (they
# announced themselves); then 20 requests held inside page 0 (before their first stage) are all
# answered after the page is closed (each replaced by page 1, the second provider).
# A screenshot of page 1 is kept in $IDN_TEST_ARTIFACTS (default: test-artifacts/ beside
# FIXTURES_DIR) as browser_peer.png.
# Exits 77 (skipped) when node, chromium, js/node_modules (esbuild, playwright-core,
# onnxruntime-web) is missing (run scripts/setup).
# Usage: browser_peer_test.sh PATH_TO_IDN FIXTURES_DIR
set -euo pipefail
idn="$1"
fixtures="$2"
here="$(cd "$(dirname "$0")/../.." && pwd)"
chromium="${IDN_CHROMIUM:-/usr/bin/chromium}"
if ! command -v node >/dev/null 2>&1 || [ ! -x "$chromium" ] ||
  [ ! -d "$here/js/node_modules/libp2p" ] || [ ! -d "$here/js/node_modules/esbuild" ] ||
  [ ! -d "$here/js/node_modules/playwright-core" ] || [ ! -d "$here/js/node_modules/onnxruntime-web" ]; then
  echo "browser_peer_test: skipped: node, $chromium, or js/node_modules (esbuild, playwright-core, onnxruntime-web) missing (run scripts/setup)"
  exit 77
fi
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
scratch_dir '*.log' browser.out cpp.txt

# The bundle and onnxruntime-web's WASM runtime beside it.
(cd "$here/js" && node scripts/build-browser.mjs --outfile "$dir/bundle/idn.browser.js") >"$dir/bundle.log" 2>&1 &
bundle=$!
model="$(tiny_model)" || fail "training the test model"
n=3
inputs="$(write_test_images "$n")" || fail "writing the test images"
local_answers "$model" "$n" &
cpp=$!

"$idn" export onnx "$model" --out "$dir/onnx" --publish --data-dir "$dir/a" >"$dir/export.out" \
  2>"$dir/export.log" || fail "idn export onnx --publish"
sid="$(line service "$dir/export.out")"
[ -n "$sid" ] || fail "export printed no service ID"
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
ws_a="$(grep '^listening .*/tcp/[0-9]*/ws/p2p/' "$dir/a.out" | head -n 1 | cut -d' ' -f2)"
if [ -z "$addr_a" ] || [ -z "$ws_a" ]; then fail "node a printed no TCP or /ws address"; fi
wait "$bundle" || fail "building the browser bundle: $(cat "$dir/bundle.log")"

artifacts="${IDN_TEST_ARTIFACTS:-$(dirname "$fixtures")/test-artifacts}"
mkdir -p "$artifacts"
timeout 100 node "$here/js/test/browser_peer_check.mjs" --bootstrap "$ws_a" --service "$sid" \
  --client-bootstrap "$addr_a" --inputs "$inputs" --bundle "$dir/bundle/idn.browser.js" \
  --pages 2 --requests 20 --screenshot "$artifacts/browser_peer.png" --idn "$idn" \
  >"$dir/browser.out" 2>"$dir/browser.log" || fail "browser_peer_check.mjs failed"
grep -q '"done":true' "$dir/browser.out" || fail "browser_peer_check.mjs did not finish"
wait "$cpp" || fail "idn infer"
node_id="${addr_a##*/}"
python3 - "$dir/browser.out" "$dir/cpp.txt" "$n" "$node_id" <<'PY' || fail "the browser peers disagree: $(cut -c1-800 "$dir/browser.out")"
import json, re, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
n, node_id = int(sys.argv[3]), sys.argv[4]
local = {int(i): (int(c), int(e) - 1, float(p)) for i, c, e, p in (l.split() for l in open(sys.argv[2]))}
assert lines[0]["browser"].startswith("HeadlessChrome/"), lines[0]
pages = [l for l in lines if "page" in l]
assert len(pages) == 2, pages
for p in pages:
    # Reserved on node a: reached at .../p2p/NODE/p2p-circuit/p2p/PAGE (its /ws address among them).
    assert p["relayAddresses"] and all(a.endswith(f"/p2p/{node_id}/p2p-circuit/p2p/{p['peerId']}") for a in p["relayAddresses"]), p
    assert any(f"/ws/p2p/{node_id}/p2p-circuit/" in a for a in p["relayAddresses"]), p
    assert p["announced"] and p["announced"]["ok"], p
answers = {l["input"]: l for l in lines if "input" in l}
assert set(answers) == set(range(n)), answers
for i, (c, e, conf) in local.items():
    a = answers[i]
    assert a["peer"] == pages[0]["peerId"] and a["final"], a
    assert (a["class"], a["exit"]) == (c, e) and abs(a["confidence"] - conf) < 1e-4, (i, a, local[i])
# The C++ client dialled page 0 through the node (its circuit transport) and got the same.
cpp = {l["cpp"]["input"]: l["cpp"] for l in lines if "cpp" in l}
assert set(cpp) == set(range(n)), cpp
for i, (c, e, conf) in local.items():
    assert "/p2p-circuit/" in cpp[i]["via"], cpp[i]
    m = re.findall(r"^answer  class (\d+)  exit (\d+)  confidence ([0-9.]+)  peer (\S+)", cpp[i]["out"], re.M)
    assert m and m[-1][3] == pages[0]["peerId"], cpp[i]
    assert (int(m[-1][0]), int(m[-1][1])) == (c, e) and abs(float(m[-1][2]) - conf) < 1e-4, (i, cpp[i], local[i])
# The pages announced themselves: the node's kad bridge names them as providers.
found = next(l["lookup"]["providers"] for l in lines if "lookup" in l)
assert all(p["peerId"] in found for p in pages), (found, pages)
r = next(l["reroute"] for l in lines if "reroute" in l)
# Every request had asked page 0 before it closed, none was lost: page 1 answered them all.
assert r["answered"] == r["requests"] == 20 and not r["errors"], r
assert r["heldInPage0"] == 20 and r["failedOn0"] == 20, r
assert r["byPeer"] == {pages[1]["peerId"]: 20}, r
st = next(l["pageStats"] for l in lines if "pageStats" in l)
assert st["completed"] == 20 and st["failed"] == 0, st
PY
grep -E '"(page|lookup|reroute)"' "$dir/browser.out" | cut -c1-400
echo "browser_peer_test: two browser peers answered through node a's relay; $n images agree with idn infer (JS and C++ clients); found by lookup; 20 requests survived closing one page"
echo "browser_peer_test: screenshot $artifacts/browser_peer.png"
echo "browser_peer_test: ok"
