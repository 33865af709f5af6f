#!/usr/bin/env bash
# `idn bench transport` refuses bad options with a clear error, and a short run (no js-libp2p)
# prints the table with IDN and plain-TCP rows and writes transport.csv and transport.md.
# Usage: bench_transport_test.sh PATH_TO_IDN
set -euo pipefail
idn="$1"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

if "$idn" bench transport --iterations 0 --no-js --out "$dir/x" 2>"$dir/err"; then
  fail "accepted --iterations 0"
fi
grep -q -- "--iterations" "$dir/err" || fail "bad --iterations error does not name the option"
if "$idn" bench transport --bulk-mib 0 --no-js --out "$dir/x" 2>"$dir/err"; then
  fail "accepted --bulk-mib 0"
fi
grep -q -- "--bulk-mib" "$dir/err" || fail "bad --bulk-mib error does not name the option"
if "$idn" bench transport --threads 3 --no-js --out "$dir/x" 2>"$dir/err"; then
  fail "accepted --threads 3"
fi
grep -q -- "--threads" "$dir/err" || fail "bad --threads error does not name the option"

"$idn" bench transport --iterations 50 --warmup 5 --bulk-mib 4 --no-js --out "$dir/o" \
  >"$dir/out" 2>/dev/null
grep -q "| transport | payload | n | median us | p99 us | throughput |" "$dir/out" ||
  fail "no table"
grep -q "skipped (--no-js)" "$dir/out" || fail "js baseline not reported as skipped"
grep -q "two io_context threads" "$dir/out" || fail "table does not say how it was measured"
csv="$dir/o/transport.csv"
[ -f "$dir/o/transport.md" ] || fail "no transport.md"
[ "$(head -1 "$csv")" = "transport,payload,n,median_us,p90_us,p99_us,mib_per_s,note" ] ||
  fail "CSV header"
# 2 RTT rows and 2 throughput rows for each of IDN over TCP, IDN over WebSocket and plain TCP.
[ "$(tail -n +2 "$csv" | wc -l)" = 12 ] || fail "expected 12 CSV rows"
awk -F, 'NR > 1 && NF != 8 { exit 1 }' "$csv" || fail "a CSV row has the wrong column count"
# RTT rows: 50 samples with a positive median; throughput rows: positive MiB/s.
awk -F, 'NR > 1 && $4 != "-" && !($3 == 50 && $4 > 0 && $6 >= $4) { exit 1 }' "$csv" ||
  fail "bad RTT row"
awk -F, 'NR > 1 && $7 != "-" && !($7 > 0) { exit 1 }' "$csv" || fail "bad throughput row"
echo "cli.bench_transport: ok"
