#!/usr/bin/env bash
# @idn/client in a real browser: the browser bundle (js/scripts/build-browser.mjs, esbuild,
# WebSockets transport) in headless Chromium (Debian's, driven by playwright-core through
# js/test/browser_check.mjs) against a 3-node network on 127.0.0.1: nodes a and b host a tiny
# B-LeNet, node c does not. The page joins through a's and c's /ws addresses and initModels the
# service (c then hosts it too), finds all three providers through the kad-dht bridge, infers
# with npeers 3 over WebSockets, and its predictions (class, exit, confidence) equal `idn
# infer`'s on the same test images; finish() on the first answer ends the stream; a malformed
# input gets the clear INVALID_ARGUMENT error in the page too.
# The bundle is built here, from the current js/src, into the test's temporary directory. A
# screenshot of the page is kept in $IDN_TEST_ARTIFACTS (default: test-artifacts/ beside
# FIXTURES_DIR, in the build tree) as browser_client.png.
# Exits 77 (skipped) when node, chromium, js/node_modules, esbuild or playwright-core is
# missing (run scripts/setup).
# Usage: browser_client_test.sh PATH_TO_IDN FIXTURES_DIR
set -euo pipefail
idn="$1"
fixtures="$2"
here="$(cd "$(dirname "$0")/../.." && pwd)"
chromium="${IDN_CHROMIUM:-/usr/bin/chromium}"
if ! command -v node >/dev/null 2>&1 || [ ! -x "$chromium" ] ||
  [ ! -d "$here/js/node_modules/libp2p" ] || [ ! -d "$here/js/node_modules/esbuild" ] ||
  [ ! -d "$here/js/node_modules/playwright-core" ]; then
  echo "browser_client_test: skipped: node, $chromium, or js/node_modules (esbuild, playwright-core) missing (run scripts/setup)"
  exit 77
fi
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
scratch_dir '*.log' browser.out cpp.txt

# Beside the nodes' start: the bundle (well under a second).
(cd "$here/js" && node scripts/build-browser.mjs --outfile "$dir/idn.browser.js") >"$dir/bundle.log" 2>&1 &
bundle=$!

model="$(tiny_model)" || fail "training the test model"
# FashionMNIST test images as PGM files: the page and `idn infer --input` read the same.
n=3
inputs="$(write_test_images "$n")" || fail "writing the test images"
# The C++ client's answers (class, exit printed 1-based, confidence), beside the nodes' start.
local_answers "$model" "$n" &
cpp=$!
start_two_ws_nodes "$model"
# Node c: in the network, not hosting the service until the page's initModel asks it to (its
# ISE may host what peers ask for).
{ cat "$dir/node.toml"; printf '[ise]\nauto_host = true\nk = 1\n'; } >"$dir/c.toml"
"$idn" node --config "$dir/c.toml" --data-dir "$dir/c" --bootstrap "$addr_a" \
  >"$dir/c.out" 2>"$dir/c.log" &
pids+=($!)
wait_for "node c" 30 grep -qs '^ready' "$dir/c.out"
ws_c="$(grep '^listening .*/tcp/[0-9]*/ws/p2p/' "$dir/c.out" | head -n 1 | cut -d' ' -f2)"
[ -n "$ws_c" ] || fail "node c printed no /ws address"
hosts_service "$(line http "$dir/c.out")" "$sid" && fail "node c hosts the service before initModel"
peer_c="${ws_c##*/p2p/}"
wait "$bundle" || fail "building the browser bundle: $(cat "$dir/bundle.log")"

artifacts="${IDN_TEST_ARTIFACTS:-$(dirname "$fixtures")/test-artifacts}"
mkdir -p "$artifacts"
timeout 90 node "$here/js/test/browser_check.mjs" --bootstrap "$ws_a,$ws_c" --service "$sid" \
  --inputs "$inputs" --npeers 3 --init 2 --bundle "$dir/idn.browser.js" \
  --screenshot "$artifacts/browser_client.png" \
  >"$dir/browser.out" 2>"$dir/browser.log" || fail "browser_check.mjs failed"
grep -q '"done":true' "$dir/browser.out" || fail "browser_check.mjs did not finish"
wait "$cpp" || fail "idn infer"
hosts_service "$(line http "$dir/c.out")" "$sid" || fail "node c does not host the service after initModel"
# /status names the engine backend that runs it (auto: the cpu executor when it agrees).
curl -sf "http://$(line http "$dir/c.out")/status" | python3 -c '
import json, sys
s = json.load(sys.stdin)
b = next(x["backend"] for x in s["services"] if x["service_id"] == sys.argv[1])
assert b["name"] in ("cpu", "torch") and b["reason"], b
' "$sid" || fail "/status does not say which backend runs the service"
python3 - "$dir/browser.out" "$dir/cpp.txt" "$n" "$peer_c" <<'PY' || fail "the browser client disagrees: $(cat "$dir/browser.out")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert lines[0]["browser"].startswith("HeadlessChrome/"), lines[0]
cpp = {int(i): (int(c), int(e) - 1, float(p)) for i, c, e, p in (l.split() for l in open(sys.argv[2]))}
js = {l["input"]: l for l in lines if "input" in l}
assert len(cpp) == int(sys.argv[3]) and set(js) == set(cpp), (js.keys(), cpp)
init = next(l["init"] for l in lines if "init" in l)
# The page is connected to a (hosting already) and c (asked to host): both say they host it.
assert sys.argv[4] in init["hosting"] and len(init["hosting"]) == 2, init
assert not init["declined"] and not init["unanswered"], init
for i, (c, e, p) in cpp.items():
    assert (js[i]["class"], js[i]["exit"]) == (c, e), (i, js[i], c, e)
    assert abs(js[i]["confidence"] - p) < 1e-4, (i, js[i], p)
    assert js[i]["final"], js[i]
    # All three providers (c since the initModel) were found through the kad-dht bridge and
    # asked, over WebSockets. The page lists its connections when the answer arrives; a dial may
    # still be under way then (a final answer ends the request), so only "all /ws" is sure.
    assert len(set(js[i]["asked"])) == 3 and sys.argv[4] in js[i]["asked"], js[i]
    assert len(js[i]["remote"]) >= 1 and all("/ws" in a for a in js[i]["remote"]), js[i]
prog = next(l["progressive"] for l in lines if "progressive" in l)
# Progressive events in the page: an early exit's answer first, the last exit's final at the end.
assert len(prog) >= 2 and prog[0]["exit"] == 0 and prog[-1]["exit"] >= 1 and prog[-1]["final"], prog
assert all(a["exit"] <= b["exit"] for a, b in zip(prog, prog[1:])), prog
fin = next(l["finish"] for l in lines if "finish" in l)
assert fin["events"] == 1 and fin["done"], fin
assert len(fin["outcomes"]) == 3, fin
bad = next(l["bad_input"] for l in lines if "bad_input" in l)
assert bad["code"] == "INVALID_ARGUMENT" and "needs 784" in bad["message"] and bad["idnError"], bad
PY
cat "$dir/browser.out"
echo "browser_client_test: $n images in Chromium agree with idn infer; finish, bad input ok"
echo "browser_client_test: screenshot $artifacts/browser_client.png"
echo "browser_client_test: ok"
