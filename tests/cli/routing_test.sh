#!/usr/bin/env bash
# `idn providers` refuses bad input with actionable errors; `idn bench routing` runs a small
# loopback DHT, prints its latency table and writes one CSV row per query.
# Usage: routing_test.sh PATH_TO_IDN
set -euo pipefail
idn="$1"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

if "$idn" providers not-a-service-id --bootstrap 127.0.0.1:9 2>"$dir/err"; then
  fail "accepted a malformed service ID"
fi
grep -q "service ID 'not-a-service-id'" "$dir/err" || fail "bad-ID error does not name the ID"
sid=QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG
if "$idn" providers "$sid" 2>"$dir/err"; then fail "ran with no way into the DHT"; fi
grep -q -- "--bootstrap" "$dir/err" || fail "no-bootstrap error does not say what to do"
if "$idn" providers "$sid" --bootstrap nohostport 2>"$dir/err"; then fail "accepted a bad bootstrap"; fi
grep -q "host:port" "$dir/err" || fail "bad-bootstrap error does not say the expected form"

"$idn" bench routing --nodes 5 --services 2 --queries 20 --out "$dir/r.csv" >"$dir/out"
grep -q "median_ms" "$dir/out" || fail "no latency table"
[ "$(head -1 "$dir/r.csv")" = "query,node,service,providers_found,latency_ms" ] || fail "CSV header"
[ "$(tail -n +2 "$dir/r.csv" | wc -l)" = 20 ] || fail "expected 20 CSV rows"
awk -F, 'NR > 1 && $4 != 2 { exit 1 }' "$dir/r.csv" || fail "a query missed a provider"
echo "cli.routing: ok"
