#!/usr/bin/env bash
# The network from the command line, as the README shows it: `idn publish` into a data dir,
# `idn node` on it provides the service, a second `idn node --host` finds it in the DHT and
# hosts it, `idn infer --service` gets an answer through the network, `idn fetch --bootstrap`
# fetches the package by CID via the DHT byte for byte, and `idn demo` on the same package loses
# no request while a peer is killed. Every wait polls a condition with a deadline.
# Usage: network_test.sh PATH_TO_IDN
set -euo pipefail
idn="$1"
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
scratch_dir '*.log'

"$idn" train branchynet --arch b-lenet --out "$dir/m" --epochs 1 --limit 600 --validation 300 \
  --threads 1 >/dev/null 2>&1 || fail "training the test model"

"$idn" publish "$dir/m" --data-dir "$dir/a" >"$dir/publish.out" 2>"$dir/publish.log" ||
  fail "idn publish"
grep -q "not published (kept local, not needed to serve): checkpoint/" "$dir/publish.log" ||
  fail "idn publish did not say it left the training checkpoint out: $(cat "$dir/publish.log")"
model="$(line model "$dir/publish.out")"
sid="$(line service "$dir/publish.out")"
[ -n "$model" ] && [ -n "$sid" ] || fail "publish printed no model CID / service ID"
# A package that is not one is refused with one clear line.
mkdir -p "$dir/notpkg"
if "$idn" publish "$dir/notpkg" --data-dir "$dir/a" 2>"$dir/err"; then fail "published an empty dir"; fi
grep -q "^idn: error:" "$dir/err" || fail "bad publish: no error line"

"$idn" node --data-dir "$dir/a" --listen /ip4/127.0.0.1/tcp/0 --http 127.0.0.1:0 \
  >"$dir/a.out" 2>"$dir/a.log" &
pids+=($!)
wait_for "node A" 30 grep -q '^ready' "$dir/a.out"
addr_a="$(line listening "$dir/a.out")"
http_a="$(line http "$dir/a.out")"
wait_for "node A hosting the published service" 60 hosts_service "$http_a" "$sid"

"$idn" node --data-dir "$dir/b" --listen /ip4/127.0.0.1/tcp/0 --http 127.0.0.1:0 \
  --bootstrap "$addr_a" --host "$sid" >"$dir/b.out" 2>"$dir/b.log" &
pids+=($!)
wait_for "node B" 30 grep -q '^ready' "$dir/b.out"
addr_b="$(line listening "$dir/b.out")"
http_b="$(line http "$dir/b.out")"
wait_for "node B hosting the service found in the DHT" 60 hosts_service "$http_b" "$sid"

# A client that knows only B gets an answer from a provider found in the DHT.
"$idn" infer --service "$sid" --bootstrap "$addr_b" --test-index 3 --fanout 2 \
  >"$dir/infer.out" 2>"$dir/infer.log" || fail "idn infer --service"
grep -q '^answer' "$dir/infer.out" || fail "infer printed no answer"
grep -q '(final)' "$dir/infer.out" || fail "infer printed no final answer"
# A service nobody provides is a clear error.
if "$idn" infer --service QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG --bootstrap "$addr_b" \
  --test-index 3 --deadline-ms 3000 2>"$dir/err" >/dev/null; then
  fail "infer of an unknown service succeeded"
fi
grep -q "^idn: error:" "$dir/err" || fail "unknown service: no error line"

# The package by CID, providers from the DHT: exactly what serving needs (the training
# checkpoint stays with the publisher), byte-identical.
"$idn" fetch "$model" --bootstrap "$addr_a" --store "$dir/c/store" --out "$dir/fetched" \
  >/dev/null 2>"$dir/fetch.log" || fail "idn fetch --bootstrap"
[ "$(ls "$dir/fetched" | tr '\n' ' ')" = "model.json weights.safetensors " ] ||
  fail "fetched package holds $(ls "$dir/fetched" | tr '\n' ' '), not model.json and weights"
for f in model.json weights.safetensors; do
  cmp -s "$dir/m/$f" "$dir/fetched/$f" || fail "fetched $f differs from the original"
done

# /metrics passes promtool when it is installed.
if command -v promtool >/dev/null; then
  python3 -c "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('http://$http_b/metrics').read().decode())" \
    >"$dir/metrics.txt"
  promtool check metrics <"$dir/metrics.txt" >/dev/null 2>&1 || fail "promtool rejects /metrics"
  grep -q '^idn_services_hosted 1' "$dir/metrics.txt" || fail "/metrics: idn_services_hosted"
fi

"$idn" demo --model "$dir/m" --peers 3 --requests 40 --kill-peer-after 15 --quiet \
  >"$dir/demo.out" 2>"$dir/demo.log" || fail "idn demo"
grep -q "lost 0" "$dir/demo.out" || fail "demo lost requests: $(cat "$dir/demo.out")"
echo "network_test: ok"
