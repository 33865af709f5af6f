#!/usr/bin/env bash
# `idn daimon attack bruteforce` end to end: the CSV (one row per (n, eps)), values a closed
# form gives (on the 2-sphere, n = 3, the cap is exactly eps of a hemisphere), the plot, and a
# clear error for an eps without a meaning. Usage: daimon_test.sh PATH_TO_IDN
set -euo pipefail
idn="$1"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$idn" daimon attack bruteforce --n 3,256 --eps 0.1,0.25 --out "$dir/bf.csv" >"$dir/out"
[ "$(head -1 "$dir/bf.csv")" = "n,eps,beta_rad,p,log10_p,log10_trials" ] || fail "CSV header"
[ "$(tail -n +2 "$dir/bf.csv" | wc -l)" = 4 ] || fail "CSV does not have 2 x 2 rows"
grep -Eq '^3,0.25,[0-9.]+,0.25,' "$dir/bf.csv" || fail "n = 3, eps = 0.25: p is not 0.25"
grep -Eq '^3,0.1,0.451026811' "$dir/bf.csv" || fail "beta is not acos(1 - eps)"
grep -Eq '^ +256 +0\.100 .* 6\.09e-94 ' "$dir/out" || fail "table row n = 256, eps = 0.1 missing"
grep -q "dissertation: n = 256" "$dir/out" || fail "no comparison with the dissertation"
[ "$(head -c 4 "$dir/bf.png" | tail -c 3)" = PNG ] || fail "plot is not a PNG"

set +e
"$idn" daimon attack bruteforce --eps 1.5 --out "$dir/x.csv" 2>"$dir/err" >/dev/null
rc=$?
set -e
[ "$rc" = 2 ] || fail "--eps 1.5 exited $rc, not 2"
grep -q "outside (0, 1]" "$dir/err" || fail "--eps 1.5 error does not say what is wrong"
echo ok
