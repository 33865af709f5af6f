#!/usr/bin/env bash
# Circuit relay v2 on an `idn node` with two stock js-libp2p peers (interop/relay_peer.mjs,
# @libp2p/circuit-relay-v2): one connects to the node over /ws, as a browser would, and listens
# through it (a reservation); the other dials it at .../p2p/NODE/p2p-circuit/p2p/PEER over TCP,
# identifies it, pings it and echoes 256 KiB through the circuit, on a connection js-libp2p does
# not mark limited (the node sends no Limit). The listener also announces a service (kad-dht
# ADD_PROVIDER to the node, as @idn/client's announce() does); a third peer finds it through the
# node's kad-dht front at its circuit address and pings it there. When the listener goes, its
# reservation ends and the node names it no more.
# Exits 77 (skipped) when node or interop/node_modules is missing (run scripts/setup).
# Usage: relay_js_test.sh PATH_TO_IDN
set -euo pipefail
idn="$1"
here="$(cd "$(dirname "$0")/../.." && pwd)"
if ! command -v node >/dev/null 2>&1 ||
  [ ! -d "$here/interop/node_modules/@libp2p/circuit-relay-v2" ]; then
  echo "relay_js_test: skipped: node or interop/node_modules missing (run scripts/setup)"
  exit 77
fi
dir="$(mktemp -d)"
pid=""
lpid=""
cleanup() {
  [ -n "$lpid" ] && kill -TERM "$lpid" 2>/dev/null && wait "$lpid" 2>/dev/null || true
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$dir"/node.log "$dir"/listen.out "$dir"/listen.log "$dir"/dial.out "$dir"/dial.log \
    "$dir"/find.out "$dir"/find.log; do
    [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
  done
  exit 1
}
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

# A misspelt [relay] key is one error line naming it.
printf '[relay]\nmax_reservation = 4\n' >"$dir/bad.toml"
expect_one_error_line=1 expect_error "a bad [relay] key" "unknown key 'relay.max_reservation'" \
  "$idn" node --config "$dir/bad.toml" --data-dir "$dir/bad"

cat >"$dir/node.toml" <<TOML
listen = ["/ip4/127.0.0.1/tcp/0/ws", "/ip4/127.0.0.1/tcp/0"]
http = "127.0.0.1:0"
[dht]
enabled = false
TOML
"$idn" node --config "$dir/node.toml" --data-dir "$dir/a" >"$dir/node.out" 2>"$dir/node.log" &
pid=$!
wait_for "the node" 30 grep -qs '^ready' "$dir/node.out"
ws="$(grep '^listening .*/tcp/[0-9]*/ws/p2p/' "$dir/node.out" | head -n 1 | cut -d' ' -f2)"
tcp="$(grep '^listening .*/tcp/[0-9]*/p2p/' "$dir/node.out" | head -n 1 | cut -d' ' -f2)"
[ -n "$ws" ] && [ -n "$tcp" ] || fail "the node printed no /ws or TCP address"

# The listener keeps its stdin open (a fifo) until the test closes it.
mkfifo "$dir/stdin"
service="$(python3 -c 'import hashlib; print("1220" + hashlib.sha256(b"relay_js_test").hexdigest())')"
node "$here/interop/relay_peer.mjs" listen "$ws" --provide "$service" <"$dir/stdin" >"$dir/listen.out" 2>"$dir/listen.log" &
lpid=$!
exec 3>"$dir/stdin"
wait_for "the reservation" 30 grep -qs '"event":"\(listening\|error\)"' "$dir/listen.out"
peer="$(python3 -c 'import json,sys; e=json.loads(open(sys.argv[1]).readline()); print(e.get("peer_id",""))' "$dir/listen.out")"
[ -n "$peer" ] || fail "the js peer did not get a reservation"
grep -q "relay: $peer reserved a slot" "$dir/node.log" || fail "the node logged no reservation"

circuit="$tcp/p2p-circuit/p2p/$peer"
node "$here/interop/relay_peer.mjs" dial "$circuit" --pings 3 --echo-bytes 262144 \
  >"$dir/dial.out" 2>"$dir/dial.log" || fail "js-libp2p could not dial $circuit"
python3 - "$dir/dial.out" "$peer" <<'PY' || fail "the relayed connection did not identify, ping and echo"
import json, sys
events = [json.loads(l) for l in open(sys.argv[1])]
ident = next(e for e in events if e["event"] == "identify")
pings = [e for e in events if e["event"] == "ping"]
echo = next(e for e in events if e["event"] == "echo")
print(f"relay_js_test: through the relay: identified {ident['peer_id']} ({ident['agent']}) at "
      f"{ident['remote_addr']}, limited {ident['limited']}, rtt {[round(p['rtt_ms'], 2) for p in pings]} ms, "
      f"echo {echo['bytes']} bytes in {echo['ms']:.1f} ms")
ok = (ident["peer_id"] == sys.argv[2] and "/p2p-circuit/" in ident["remote_addr"]
      and ident["limited"] is False and len(pings) == 3 and events[-1]["event"] == "done")
sys.exit(0 if ok else 1)
PY
wait_for "the announcement" 30 grep -qs '"event":"\(provided\|error\)"' "$dir/listen.out"
grep -q '"event":"provided"' "$dir/listen.out" || fail "the js peer could not announce its service"
# The ADD_PROVIDER gets no answer: the peer may print before the node has read it.
wait_for "the node to take the announcement" 10 grep -qs "relay: $peer provides" "$dir/node.log"
node "$here/interop/relay_peer.mjs" dial "$tcp" --find "$service" --pings 2 \
  >"$dir/find.out" 2>"$dir/find.log" || fail "js-libp2p could not find and dial the relayed provider"
python3 - "$dir/find.out" "$peer" <<'PY' || fail "the provider found was not the relayed peer at its circuit address"
import json, sys
events = [json.loads(l) for l in open(sys.argv[1])]
provs = next(e for e in events if e["event"] == "providers")["providers"]
ident = next(e for e in events if e["event"] == "identify")
print(f"relay_js_test: found providers {provs}; identified {ident['peer_id']} at {ident['remote_addr']}")
ok = (provs[0]["peer_id"] == sys.argv[2] and any("/p2p-circuit" in a for a in provs[0]["addrs"])
      and ident["peer_id"] == sys.argv[2] and "/p2p-circuit/" in ident["remote_addr"]
      and events[-1]["event"] == "done")
sys.exit(0 if ok else 1)
PY
wait_for "the listener's relayed connection" 10 grep -qs '"event":"relayed"' "$dir/listen.out"
grep '"event":"relayed"' "$dir/listen.out" | grep -q '"limited":false' ||
  fail "the listener saw a limited relayed connection"

# The node's metrics count the reservation and the circuits it spliced.
python3 - "$(line http "$dir/node.out")" <<'PY' || fail "the node's /metrics do not show the relay's work"
import re, sys, urllib.request
text = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=5).read().decode()
def value(name):
    m = re.search(r"^" + re.escape(name) + r" ([0-9.e+]+)$", text, re.M)
    return float(m[1]) if m else None
res, ok, spliced = (value("idn_relay_reservations"), value('idn_relay_connects_total{outcome="ok"}'),
                    value("idn_relay_bytes_total"))
print(f"relay_js_test: metrics: {res:.0f} reservation(s), {ok:.0f} circuits, {spliced:.0f} bytes relayed")
sys.exit(0 if res == 1 and ok >= 2 and spliced >= 2 * 262144 else 1)
PY

# The listener leaves: its reservation ends with its connection.
exec 3>&-
wait "$lpid" || fail "the js listener did not stop cleanly"
lpid=""
wait_for "the reservation to end" 10 grep -qs "relay: reservation of $peer ended" "$dir/node.log"
# ...and its announcement with it: the node's kad front names nobody for the service any more.
if node "$here/interop/relay_peer.mjs" dial "$tcp" --find "$service" --timeout-ms 2000 \
  >"$dir/find2.out" 2>"$dir/find2.log"; then
  fail "the node still names the departed peer: $(cat "$dir/find2.out")"
fi
grep -q 'findProviders did not complete' "$dir/find2.out" ||
  fail "finding the departed peer failed otherwise: $(cat "$dir/find2.out")"
echo "relay_js_test: ok"
