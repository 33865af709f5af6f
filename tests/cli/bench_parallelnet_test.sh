#!/usr/bin/env bash
# `idn bench parallelnet --quick` end to end (trains its tiny geneses on first run, cached in
# build/models): every figure's rows are in the CSV with one column count, the early-exit sweep
# is consistent with the no-exit curve, --no-grid leaves the grid out, --candidates checks each
# generated model on held-out images, and bad options are refused with one clear error line. Usage: bench_parallelnet_test.sh PATH_TO_IDN
set -euo pipefail
idn="$1"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# Commands that must fail cleanly (lib.sh: expect_error).

"$idn" bench parallelnet --quick --out "$dir/full" >"$dir/full.txt" 2>"$dir/full.log" ||
  fail "idn bench parallelnet --quick: $(tail -5 "$dir/full.log")"
grep -q "^Fig. 5.10 at p = 0.45: .*x faster than the genesis at batch 1, .*x at batch 32" \
  "$dir/full.txt" || fail "no Fig. 5.10 speed-up line: $(cat "$dir/full.txt")"
grep -q "^Where the curve (early exit or N = 1..4) beats the genesis model:" "$dir/full.txt" ||
  fail "no Fig. 5.13 verdict"
grep -q "^| 1.00 |" "$dir/full.txt" || fail "no p_train 1.00 row in the grid"
python3 - "$dir/full/parallelnet.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
head, rows = rows[0], rows[1:]
assert head[:7] == ["kind", "p_test", "seed_or_n", "parameters", "flops", "accuracy",
                    "us_per_sample"], head
assert all(len(r) == len(head) for r in rows), [r for r in rows if len(r) != len(head)]
col = {k: i for i, k in enumerate(head)}
kinds = {r[0] for r in rows}
for k in ["genesis", "model", "time", "speedup", "ensemble", "no_exit", "early_exit", "grid_model",
          "grid_ensemble"]:
    assert k in kinds, (k, kinds)
f = lambda r, k: float(r[col[k]])
for r in rows:
    if r[0] in ("model", "time", "genesis"):
        assert f(r, "us_per_sample") > 0 and f(r, "us_per_sample_b32") > 0, r
no_exit = [r for r in rows if r[0] == "no_exit"]
early = [r for r in rows if r[0] == "early_exit"]
assert [int(r[col["seed_or_n"]]) for r in no_exit] == [1, 2, 3, 4], no_exit
times = [f(r, "us_per_sample") for r in no_exit]
# Parallel (the default): waiting for one more answer never takes less time (the slowest of
# those waited for); the timings themselves are too noisy here to compare with a sum.
assert times == sorted(times), times
used = [f(r, "mean_models") for r in early]
assert all(1 <= u <= 4 for u in used) and used == sorted(used), used  # T ascending
for r in early:  # every sample ran all four members: the no-exit N = 4 point
    if f(r, "mean_models") == 4:
        assert f(r, "accuracy") == f(no_exit[-1], "accuracy"), (r, no_exit[-1])
        assert abs(f(r, "us_per_sample") - f(no_exit[-1], "us_per_sample")) < 1e-6
grid = [r for r in rows if r[0].startswith("grid_")]
assert {r[col["p_train"]] for r in grid} == {"0.45", "1"}, grid
assert len(grid) == 2 * 2 * 3, len(grid)
PY
if command -v gnuplot >/dev/null; then
  for f in accuracy ensemble time early_exit early_exit_b32 grid grid_ensemble; do
    [ -s "$dir/full/parallelnet_$f.png" ] || fail "no plot parallelnet_$f.png"
  done
fi

grep -q "^Fig. 5.13: 4 members at p 0.45 run in parallel" "$dir/full.txt" ||
  fail "parallel timing not reported: $(grep Fig "$dir/full.txt")"

"$idn" bench parallelnet --quick --no-grid --exit-p 0.3,1.0 --rule logits --exit-timing sequential \
  --candidates 2 --out "$dir/nogrid" >"$dir/nogrid.txt" 2>"$dir/nogrid.log" ||
  fail "--no-grid run failed: $(tail -5 "$dir/nogrid.log")"
grep -q "each generated model: the best of 2 masks on 1000 validation images" "$dir/nogrid.log" ||
  fail "--candidates not applied: $(head -5 "$dir/nogrid.log")"
! grep -q "^grid_" "$dir/nogrid/parallelnet.csv" || fail "--no-grid still wrote grid rows"
grep -q "^Fig. 5.13: 4 members at p 0.3/1 run one after another, combined by the mean of the logits" \
  "$dir/nogrid.txt" || fail "mixed --exit-p not reported: $(grep Fig "$dir/nogrid.txt")"
python3 - "$dir/nogrid/parallelnet.csv" <<'PY' || fail "sequential times do not add up"
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
col = {k: i for i, k in enumerate(rows[0])}
t = [float(r[col["us_per_sample"]]) for r in rows[1:] if r[0] == "no_exit"]
assert len(t) == 4 and all(b > a for a, b in zip(t, t[1:])), t  # each member adds its time
PY

expect_error "bad rule" "--rule" "$idn" bench parallelnet --quick --rule median
expect_error "bad exit timing" "--exit-timing" "$idn" bench parallelnet --quick --exit-timing both
expect_error "bad exit p" "--exit-p values must be in (0, 1]" \
  "$idn" bench parallelnet --quick --exit-p 0
expect_error "bad grid p" "--grid-p-train values must be in (0, 1]" \
  "$idn" bench parallelnet --quick --grid-p-train 1.5
expect_error "bad candidates" "--candidates" "$idn" bench parallelnet --quick --candidates 0
echo "bench parallelnet: ok"
