#!/usr/bin/env bash
# A stock js-libp2p node (interop/js_peer.mjs: @libp2p/websockets + noise + yamux + identify +
# ping) dials an `idn node`'s /ws address, identifies it and pings it. The node listens on
# WebSocket and TCP from its config file, prints both addresses, and answers a plain HTTP
# request on the WebSocket port with a 400 that says why.
# Exits 77 (skipped) when node or interop/node_modules is missing (run scripts/setup).
# Usage: js_ws_test.sh PATH_TO_IDN
set -euo pipefail
idn="$1"
here="$(cd "$(dirname "$0")/../.." && pwd)"
if ! command -v node >/dev/null 2>&1 || [ ! -d "$here/interop/node_modules/@libp2p/websockets" ]; then
  echo "js_ws_test: skipped: node or interop/node_modules missing (run scripts/setup)"
  exit 77
fi
dir="$(mktemp -d)"
pid=""
cleanup() {
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$dir"/node.log "$dir"/js.out; do
    [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
  done
  exit 1
}
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

cat >"$dir/node.toml" <<TOML
listen = ["/ip4/127.0.0.1/tcp/0/ws", "/ip4/127.0.0.1/tcp/0"]
http = "127.0.0.1:0"
TOML
"$idn" node --config "$dir/node.toml" --data-dir "$dir/a" >"$dir/node.out" 2>"$dir/node.log" &
pid=$!
wait_for "the node" 30 grep -q '^ready' "$dir/node.out"
ws="$(grep '^listening .*/tcp/[0-9]*/ws/p2p/' "$dir/node.out" | head -n 1 | cut -d' ' -f2)"
tcp="$(grep '^listening .*/tcp/[0-9]*/p2p/' "$dir/node.out" | head -n 1 | cut -d' ' -f2)"
[ -n "$ws" ] || fail "the node printed no /ws address"
[ -n "$tcp" ] || fail "the node printed no TCP address"

# Not a WebSocket upgrade: a 400 naming what is expected, and the node keeps serving.
port="$(echo "$ws" | sed -n 's|^/ip4/127.0.0.1/tcp/\([0-9]*\)/ws/.*|\1|p')"
python3 - "$port" <<'PY' || fail "plain HTTP on the /ws port was not refused with a reason"
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=5)
    sys.exit(1)
except urllib.error.HTTPError as e:
    body = e.read().decode()
    print(f"js_ws_test: plain HTTP GET: {e.code} {body.strip()}")
    sys.exit(0 if e.code == 400 and "WebSocket upgrade" in body else 1)
PY

node "$here/interop/js_peer.mjs" dial "$ws" --pings 3 >"$dir/js.out" 2>"$dir/js.log" ||
  fail "js-libp2p dial over /ws failed"
python3 - "$dir/js.out" <<'PY' || fail "js-libp2p did not identify and ping the node over /ws"
import json, sys
events = [json.loads(l) for l in open(sys.argv[1])]
ident = next(e for e in events if e["event"] == "identify")
pings = [e for e in events if e["event"] == "ping"]
print(f"js_ws_test: identified {ident['peer_id']} agent {ident['agent']}, observed "
      f"{ident['observed_addr']}, {len(pings)} pings, rtt {[p['rtt_ms'] for p in pings]} ms")
ok = (ident["agent"].startswith("idn/") and ident["observed_addr"].endswith("/ws")
      and any(a.endswith("/ws") for a in ident["listen_addrs"]) and len(pings) == 3
      and events[-1]["event"] == "done")
sys.exit(0 if ok else 1)
PY
echo "js_ws_test: ok"
