#!/usr/bin/env bash
# The node's own page, in a real browser: `idn demo --serve` keeps a 3-provider network up and
# serves the client node's page (/, src/node/web/index.html) with test images. Checks the page
# (js/test/node_page_check.mjs in Debian's headless Chromium via playwright-core): it shows
# the node's ID and peers; a test image asked through the page gets progressive answers whose
# final one equals the gateway's JSON answer for the same image; a drawing (sent as PNG) is
# answered; a bad service ID gets a clear error; the live chart fills. Without a browser the
# HTTP part still runs: / is HTML, /idn/v1/ the plain index, /idn/demo/samples.json the images.
# With the browser bundle (js/node_modules), the page's "serve it from this tab" makes the tab a
# peer behind the node's relay, and gateway requests fanned out to every provider reach it.
# SIGTERM ends the demo cleanly (exit 0). A screenshot is kept in $IDN_TEST_ARTIFACTS (default:
# test-artifacts/ beside FIXTURES_DIR) as node_page.png.
# Usage: node_page_test.sh PATH_TO_IDN FIXTURES_DIR
set -euo pipefail
idn="$1"
fixtures="$2"
here="$(cd "$(dirname "$0")/../.." && pwd)"
chromium="${IDN_CHROMIUM:-/usr/bin/chromium}"
dir="$(mktemp -d)"
demo=""
cleanup() {
  [ -n "$demo" ] && kill -TERM "$demo" 2>/dev/null && wait "$demo" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$dir"/demo.out "$dir"/page.out "$dir"/page.log; do
    [ -f "$f" ] && { echo "--- $f" >&2; tail -n 30 "$f" >&2; }
  done
  exit 1
}
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

browser=0
if command -v node >/dev/null 2>&1 && [ -x "$chromium" ] && [ -d "$here/js/node_modules/playwright-core" ]; then
  browser=1
fi
# The browser bundle and onnxruntime-web's WASM files, for the page's "serve it from this tab".
web=()
if [ "$browser" = 1 ] && [ -d "$here/js/node_modules/esbuild" ] && [ -d "$here/js/node_modules/onnxruntime-web" ]; then
  (cd "$here/js" && node scripts/build-browser.mjs --outfile "$dir/web/idn.browser.js") >"$dir/bundle.log" 2>&1 ||
    fail "building the browser bundle: $(cat "$dir/bundle.log")"
  web=(--web-dir "$dir/web")
fi
tabpeer=$([ "${#web[@]}" -gt 0 ] && echo 1 || echo 0)
model="$(tiny_model)" || fail "training the test model"
"$idn" demo --serve --requests 3 --quiet --model "$model" --http 127.0.0.1:0 "${web[@]}" >"$dir/demo.out" 2>&1 &
demo=$!
# The URL line is printed once the network is up and the page is served (or the demo failed).
serving_or_exited() {
  grep -q '^serving ' "$dir/demo.out" || ! kill -0 "$demo" 2>/dev/null
}
wait_for "idn demo --serve to print its URL" 60 serving_or_exited
url="$(awk '/^serving /{print $2; exit}' "$dir/demo.out")"
[ -n "$url" ] || fail "no URL printed"
base="${url%%/\?*}"
sid="${url##*service=}"

curl -sf -D "$dir/h" "$base/" -o "$dir/page.html" || fail "GET /"
grep -qi '^content-type: text/html' "$dir/h" || fail "/ is not HTML: $(cat "$dir/h")"
grep -q '<title>IDN node</title>' "$dir/page.html" || fail "/ is not the node's page"
curl -sf "$base/idn/v1/" | grep -q '^/metrics' || fail "the plain index moved from /idn/v1/"
curl -sf "$base/idn/demo/samples.json" -o "$dir/samples.json" || fail "GET /idn/demo/samples.json"
python3 - "$dir/samples.json" <<'PY' || fail "samples.json is not the test images"
import json, sys
s = json.load(open(sys.argv[1]))
assert len(s["labels"]) == 10 and len(s["samples"]) == 24, (len(s["labels"]), len(s["samples"]))
for x in s["samples"]:
    n = 1
    for d in x["shape"]:
        n *= d
    assert len(x["data"]) == n and 0 <= x["label"] < 10 and all(0 <= v <= 1 for v in x["data"])
PY

if [ "${#web[@]}" -gt 0 ]; then
  curl -sf -D "$dir/h" -o /dev/null "$base/idn/web/ort-wasm-simd-threaded.wasm" || fail "GET /idn/web/…wasm"
  grep -qi '^content-type: application/wasm' "$dir/h" || fail "wasm media type: $(cat "$dir/h")"
  # Nothing outside the directory: a dot name, an encoded separator, a name not there.
  for bad in "..%2fdemo.out" "%2e%2e%2fdemo.out" ".hidden" "demo.out"; do
    code="$(curl -s -o /dev/null -w '%{http_code}' "$base/idn/web/$bad")"
    [ "$code" = 400 ] || [ "$code" = 404 ] || fail "GET /idn/web/$bad answered $code"
  done
fi

if [ "$browser" = 1 ]; then
  artifacts="${IDN_TEST_ARTIFACTS:-$(dirname "$fixtures")/test-artifacts}"
  mkdir -p "$artifacts"
  timeout 90 node "$here/js/test/node_page_check.mjs" --url "$url" \
    --screenshot "$artifacts/node_page.png" --tab-peer "$tabpeer" >"$dir/page.out" 2>"$dir/page.log" ||
    fail "node_page_check.mjs failed"
  python3 - "$dir/page.out" "$sid" "$tabpeer" <<'PY' || fail "the page disagrees: $(cat "$dir/page.out")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
got = {k: v for l in lines for k, v in l.items()}
assert got["done"] is True, got
assert got["service_field"] == sys.argv[2], got
assert len(got["peers_shown"]) >= 3, got["peers_shown"]
assert got["samples_shown"] == 24, got
rows = got["sample_answers"]
assert rows and rows[-1]["final"] and all(not r["final"] for r in rows[:-1]), rows
ref = got["reference"]
final = rows[-1]
assert final["class"].endswith("(%d)" % ref["class"]), (final, ref)
assert final["exit"] == ref["exit"] and abs(final["confidence"] - ref["confidence"]) < 1e-4, (final, ref)
assert all(r["peer"].startswith("12D3") for r in rows), rows
assert "event(s)" in got["head"], got["head"]
assert got["drawing_answers"] >= 1, got
assert "QmNotAServiceId" in got["bad_service"] or "service" in got["bad_service"], got["bad_service"]
assert "requests served" in got["chart"], got["chart"]
if sys.argv[3] != "0":
    assert got["tab_peer"].startswith("this tab serves it"), got["tab_peer"]
    assert got["gateway_answered"] == 8, got
    st = got["tab_peer_stats"]
    assert st["requests"] >= 1 and st["completed"] >= 1 and st["failed"] == 0, st
PY
else
  echo "node_page_test: browser part skipped: node, $chromium or js/node_modules/playwright-core missing (run scripts/setup)"
fi

kill -TERM "$demo"
rc=0
wait "$demo" || rc=$?
demo=""
[ "$rc" = 0 ] || fail "idn demo --serve exited $rc on SIGTERM"
grep -q '^stopping' "$dir/demo.out" || fail "no clean stop"
echo "node_page_test: ok"
