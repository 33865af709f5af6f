#!/usr/bin/env bash
# `idn demo parallelnet` end to end: four peers each serving their own generated member, one
# stopped mid-stream and one answering garbage; every request is answered and the summary names
# the liar; options that leave no honest peer are refused with a clear error.
# Usage: demo_parallelnet_test.sh PATH_TO_IDN
set -euo pipefail
idn="$1"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$idn" demo parallelnet --peers 4 --requests 8 --kill 1 --kill-after 3 --byzantine 1 --quiet \
  >"$dir/out" 2>"$dir/log" || fail "idn demo parallelnet: $(cat "$dir/out" "$dir/log")"
grep -q "requests 8, answered 8, lost 0" "$dir/out" || fail "lost requests: $(cat "$dir/out")"
grep -q "stopping peer 0" "$dir/out" || fail "no peer was stopped"
grep -Eq "byzantine peer 3 excluded in [0-9]+ of 8 answered requests" "$dir/out" ||
  fail "no line for the liar: $(cat "$dir/out")"
grep -Eq "^members  p_test 0.50: [0-9]+ of [0-9]+ parameters" "$dir/out" || fail "no member sizes"

if "$idn" demo parallelnet --peers 4 --kill 3 --byzantine 1 >"$dir/bad" 2>&1; then
  fail "4 peers with 3 stopped and 1 lying were accepted"
fi
grep -q "leave at least one honest peer" "$dir/bad" || fail "unclear error: $(cat "$dir/bad")"
echo "demo parallelnet: ok"
