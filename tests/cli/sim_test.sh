#!/usr/bin/env bash
# `idn sim computeswap` end to end: summary, per-minute CSV (three kinds per minute), hosts per
# service, summary.json, the three plots, byte-identical CSV from the same seed, and a clear
# error for a scenario without cooperators.
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
[ "$(head -1 "$csv")" = "minute,kind,requests,answered,local,refusals,unserved,stale,caught,ops" ] ||
  fail "CSV header"
[ "$(tail -n +2 "$csv" | wc -l)" = 18 ] || fail "CSV does not have 6 minutes x 3 kinds"
cmp -s "$csv" "$dir/b/computeswap_minutes.csv" || fail "the same seed gave different CSV"
grep -q "40 peers (28 cooperators, 8 freeloaders, 4 liars)" "$dir/out" || fail "summary line"
grep -q "freeloaders' share of all work served" "$dir/out" || fail "no freeloader share"
for png in work_share hosts debt_ratios; do
  [ "$(head -c 4 "$dir/a/computeswap_$png.png" | tail -c 3)" = PNG ] || fail "$png plot is not a PNG"
done
[ "$(head -1 "$dir/a/computeswap_services.csv")" = "rank,popularity,requests,mean_hosts,hosts_at_end" ] ||
  fail "services CSV header"
[ "$(tail -n +2 "$dir/a/computeswap_services.csv" | wc -l)" = 4 ] || fail "not one row per service"
cmp -s "$dir/a/computeswap_services.csv" "$dir/b/computeswap_services.csv" ||
  fail "the same seed gave different hosting"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["peers"] == 40 and "spearman_hosts_popularity" in j' \
  "$dir/a/summary.json" || fail "summary.json"
grep -q "hosts per service vs popularity: Spearman" "$dir/out" || fail "no hosting summary"

# A sweep: one row per value in the medians, a plot per parameter, and a named bad parameter.
"$idn" sim computeswap --peers 30 --services 3 --hours 0.05 --rate 10 --sweep m=2,8 --seeds 2 \
  --out "$dir/sw" >"$dir/sweep.out"
[ "$(head -1 "$dir/sw/sweep_medians.csv" | cut -d, -f1-4)" = "param,value,runs,freeloader_work_share" ] ||
  fail "sweep medians header"
[ "$(tail -n +2 "$dir/sw/sweep_medians.csv" | cut -d, -f1-3 | tr '\n' ' ')" = "m,2,2 m,8,2 " ] ||
  fail "sweep medians rows"
[ "$(tail -n +2 "$dir/sw/sweep.csv" | wc -l)" = 4 ] || fail "sweep runs: 2 values x 2 seeds"
[ "$(head -c 4 "$dir/sw/sweep_m.png" | tail -c 3)" = PNG ] || fail "sweep plot is not a PNG"

set +e
"$idn" sim computeswap --sweep q=1 --out "$dir/x" 2>"$dir/err" >/dev/null
rc=$?
set -e
[ "$rc" = 2 ] || fail "an unknown sweep parameter exited $rc, not 2"
grep -q "PARAM one of m, n" "$dir/err" || fail "the sweep error does not list the parameters"

set +e
"$idn" sim computeswap --freeloaders 0.6 --liars 0.4 --out "$dir/x" 2>"$dir/err" >/dev/null
rc=$?
set -e
[ "$rc" = 2 ] || fail "no cooperators exited $rc, not 2"
grep -q "leave some cooperators" "$dir/err" || fail "error does not say what is wrong"
echo ok
