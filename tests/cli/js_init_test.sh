#!/usr/bin/env bash
# initModel from a descriptor (issue 20, the blog's `idn.initModel(descriptor, { npeers })`):
# node A publishes the tiny B-LeNet; an idle node runs with [ise] auto_host = true. The JS
# client (connected to the idle node only) fetches the descriptor from A's gateway
# (GET /idn/v1/services/{id}) and sends it: the idle node hosts the service and reports its ID;
# the same descriptor described anew (a service ID nobody provides) is hosted too, from the
# package's CID, under the ID the node computed; a malformed descriptor is declined with the
# reason; bad arguments are refused before anything is sent. Then `idn init --descriptor FILE`
# (the gateway's answer, described anew once more) does the same from C++ and prints the ID.
# Exits 77 (skipped) when node or js/node_modules is missing (run scripts/setup).
# Usage: js_init_test.sh PATH_TO_IDN FIXTURES_DIR
set -euo pipefail
idn="$1"
fixtures="$2"
here="$(cd "$(dirname "$0")/../.." && pwd)"
if ! command -v node >/dev/null 2>&1 || [ ! -d "$here/js/node_modules/libp2p" ]; then
  echo "js_init_test: skipped: node or js/node_modules missing (run scripts/setup)"
  exit 77
fi
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
scratch_dir

model="$(tiny_model)" || fail "training the test model"
"$idn" publish "$model" --data-dir "$dir/a" >"$dir/publish.out" 2>"$dir/publish.log" ||
  fail "idn publish"
sid="$(line service "$dir/publish.out")"
"$idn" node --data-dir "$dir/a" --listen /ip4/127.0.0.1/tcp/0 --http 127.0.0.1:0 \
  >"$dir/a.out" 2>"$dir/a.log" &
pids+=($!)
wait_for "node A" 30 grep -q '^ready' "$dir/a.out"
addr_a="$(line listening "$dir/a.out")"
cat >"$dir/idle.toml" <<TOML
listen = ["/ip4/127.0.0.1/tcp/0"]
http = "127.0.0.1:0"
bootstrap = ["$addr_a"]
data_dir = "$dir/idle"
[ise]
auto_host = true
k = 3
TOML
"$idn" node --config "$dir/idle.toml" >"$dir/idle.out" 2>"$dir/idle.log" &
pids+=($!)
wait_for "idle node" 30 grep -q '^ready' "$dir/idle.out"
http_idle="$(line http "$dir/idle.out")"
! hosts_service "$http_idle" "$sid" || fail "the idle node hosts the service before anyone asked"

timeout 60 node "$here/js/test/init_descriptor_check.mjs" --bootstrap "$(line listening "$dir/idle.out")" \
  --gateway "http://$(line http "$dir/a.out")" --service "$sid" >"$dir/js.out" 2>"$dir/js.log" ||
  fail "init_descriptor_check.mjs failed"
anew="$(python3 - "$dir/js.out" "$sid" <<'PY'
import json, sys
lines = {k: v for l in open(sys.argv[1]) for k, v in json.loads(l).items()}
sid = sys.argv[2]
same, anew, bad = lines["same"], lines["anew"], lines["malformed"]
assert same["hosting"] == 1 and same["serviceId"] == sid, same
assert anew["hosting"] == 1 and anew["serviceId"] not in (None, sid), anew
assert bad["hosting"] == 0 and bad["serviceId"] is None and bad["declined"], bad
assert all("bad descriptor" in d["reason"] and "format" in d["reason"] for d in bad["declined"]), bad
assert lines["bad_args"] == ["INVALID_ARGUMENT"] * 4, lines["bad_args"]
print(anew["serviceId"])
PY
)" || fail "unexpected initModel outcomes: $(cat "$dir/js.out")"
hosts_service "$http_idle" "$sid" || fail "the idle node does not host $sid"
hosts_service "$http_idle" "$anew" || fail "the idle node does not host the new service $anew"

# The C++ client: idn init --descriptor with the gateway's answer, described anew.
python3 - "http://$(line http "$dir/a.out")/idn/v1/services/$sid" >"$dir/svc.json" <<'PY' ||
import json, sys, urllib.request
svc = json.load(urllib.request.urlopen(sys.argv[1], timeout=10))
svc["descriptor"]["description"] = "described anew by idn init"
json.dump(svc, sys.stdout, indent=2)
PY
  fail "GET /idn/v1/services/$sid"
"$idn" init --descriptor "$dir/svc.json" --npeers 1 --bootstrap "$(line listening "$dir/idle.out")" \
  --timeout-s 30 >"$dir/init.out" 2>"$dir/init.log" || fail "idn init --descriptor"
cli_sid="$(line service "$dir/init.out")"
[ -n "$cli_sid" ] && [ "$cli_sid" != "$sid" ] && [ "$cli_sid" != "$anew" ] ||
  fail "idn init --descriptor printed service '$cli_sid'"
grep -q "^1 of 1 peer(s) host $cli_sid" "$dir/init.out" || fail "idn init summary line missing"
hosts_service "$http_idle" "$cli_sid" || fail "the idle node does not host $cli_sid"
echo "js_init_test: ok"
