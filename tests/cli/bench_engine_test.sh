#!/usr/bin/env bash
# `idn bench engine` end to end on the tiny B-LeNet and a random-weight LeNet: every stage, exit
# head and whole pass has a LibTorch and a cpu-executor row at each batch size, with positive
# times ordered mean/median <= p99, the table and plot are written, and bad options are refused
# with one clear error line. Not a timing test: 20 iterations say nothing about speed.
# Usage: bench_engine_test.sh PATH_TO_IDN FIXTURES_DIR
set -euo pipefail
idn="$1"
fixtures="$2"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

model="$(tiny_model)" || fail "training the test model"
"$idn" bench engine --model "$model" --arch lenet --batch 1,4 --iterations 20 --warmup 2 \
  --out "$dir/bench" >"$dir/stdout" 2>"$dir/stderr" ||
  fail "idn bench engine: $(cat "$dir/stdout" "$dir/stderr")"
grep -q "^| .* | 1 | exit0 head | " "$dir/stdout" || fail "no table: $(cat "$dir/stdout")"
python3 - "$dir/bench/engine.csv" <<'PY' || fail "engine.csv: $(cat "$dir/bench/engine.csv")"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
by = {}
for r in rows:
    by.setdefault((r["model"], r["batch"], r["item"]), set()).add(r["backend"])
    mean, med, p99 = float(r["mean_us"]), float(r["median_us"]), float(r["p99_us"])
    assert 0 < med <= p99 and 0 < mean, r
    assert int(r["iterations"]) == 20, r
models = {m for m, _, _ in by}
assert len(models) == 2, models  # the package and --arch lenet
for key, backends in by.items():
    assert backends == {"libtorch", "cpu"}, (key, backends)
for m in models:
    for b in ("1", "4"):
        items = {i for mm, bb, i in by if mm == m and bb == b}
        assert "stage0" in items and "exit0 head" in items, (m, b, items)
print("csv ok:", len(rows), "rows")
PY
if command -v gnuplot >/dev/null; then
  [ -s "$dir/bench/engine.png" ] || fail "no engine.png"
fi

expect_error "bad batch" "--batch values in" "$idn" bench engine --model "$model" --batch 0
expect_error "bad arch" "unknown architecture 'nope'" "$idn" bench engine --arch nope
echo "bench engine: ok"
