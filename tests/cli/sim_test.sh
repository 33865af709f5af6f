#!/usr/bin/env bash
# `idn sim computeswap` end to end: summary, per-minute CSV (three kinds per minute), the plot,
# byte-identical CSV from the same seed, and a clear error for a scenario without cooperators.
# Usage: sim_test.sh PATH_TO_IDN
set -euo pipefail
idn="$1"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

args=(sim computeswap --peers 40 --services 4 --hours 0.1 --rate 20 --liars 0.1 --seed 3)
"$idn" "${args[@]}" --out "$dir/a" >"$dir/out"
"$idn" "${args[@]}" --out "$dir/b" >/dev/null
csv="$dir/a/computeswap_minutes.csv"
[ "$(head -1 "$csv")" = "minute,kind,requests,answered,refusals,unserved,caught,ops" ] ||
  fail "CSV header"
[ "$(tail -n +2 "$csv" | wc -l)" = 18 ] || fail "CSV does not have 6 minutes x 3 kinds"
cmp -s "$csv" "$dir/b/computeswap_minutes.csv" || fail "the same seed gave different CSV"
grep -q "40 peers (28 cooperators, 8 freeloaders, 4 liars)" "$dir/out" || fail "summary line"
grep -q "freeloaders' share of all work served" "$dir/out" || fail "no freeloader share"
[ "$(head -c 4 "$dir/a/computeswap_work_share.png" | tail -c 3)" = PNG ] || fail "plot is not a PNG"

set +e
"$idn" sim computeswap --freeloaders 0.6 --liars 0.4 --out "$dir/x" 2>"$dir/err" >/dev/null
rc=$?
set -e
[ "$rc" = 2 ] || fail "no cooperators exited $rc, not 2"
grep -q "leave some cooperators" "$dir/err" || fail "error does not say what is wrong"
echo ok
