#!/usr/bin/env bash
# `idn swap probability` end to end: the table, the CSV (one row per (r, n)), the plot, and a
# clear error for parameters without a meaning. Usage: swap_test.sh PATH_TO_IDN
set -euo pipefail
idn="$1"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$idn" swap probability --m 4 --n 1,2,4,8,16 --csv "$dir/p.csv" >"$dir/out"
[ "$(head -1 "$dir/p.csv")" = "r,n,p" ] || fail "CSV header is not r,n,p"
# r = 0, 0.1, ..., 5.0: 51 values x 5 curves.
[ "$(tail -n +2 "$dir/p.csv" | wc -l)" = 255 ] || fail "CSV does not have 51 x 5 rows"
grep -q '^2.5000,1,0.500000$' "$dir/p.csv" || fail "p(2.5) for n = 1 is not 0.5 (linear for n = 1)"
grep -q '^1.0000,16,1.000000$' "$dir/p.csv" || fail "p(1) is not 1"
grep -q '^4.0000,2,0.000000$' "$dir/p.csv" || fail "p(m) is not 0"
grep -Eq '^ +2\.50 +0\.5000 ' "$dir/out" || fail "table row for r = 2.5 missing"

if command -v gnuplot >/dev/null; then
  "$idn" swap probability --m 4 --n 1,16 --plot "$dir/p.png" >/dev/null
  [ "$(head -c 4 "$dir/p.png" | tail -c 3)" = PNG ] || fail "plot is not a PNG"
fi

set +e
"$idn" swap probability --m 1 2>"$dir/err" >/dev/null
rc=$?
set -e
[ "$rc" = 2 ] || fail "--m 1 exited $rc, not 2"
grep -q "m must be a number > 1" "$dir/err" || fail "--m 1 error does not say what is wrong"
echo ok
