#!/usr/bin/env bash
# `idn bench engine` end to end on the tiny B-LeNet and a random-weight LeNet: every stage, exit
# head, whole pass and (--layers) layer has a LibTorch and a cpu-executor row at each batch size, and an ONNX
# Runtime row (plus the Identity call-overhead row) when node and interop/node_modules'
# onnxruntime-node are installed, else the table says the column was skipped; positive times
# ordered mean/median <= p99, the table and plot are written, and bad options are refused with
# one clear error line. Not a timing test: 20 iterations say nothing about speed.
# Usage: bench_engine_test.sh PATH_TO_IDN FIXTURES_DIR
set -euo pipefail
idn="$1"
fixtures="$2"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
here="$(cd "$(dirname "$0")/../.." && pwd)"
ort=0
if command -v node >/dev/null 2>&1 && [ -d "$here/interop/node_modules/onnxruntime-node" ]; then
  ort=1
fi

model="$(tiny_model)" || fail "training the test model"
"$idn" bench engine --model "$model" --arch lenet --batch 1,4 --iterations 20 --warmup 2 --layers \
  --ort-script "$here/interop/onnx_bench.mjs" --out "$dir/bench" >"$dir/stdout" 2>"$dir/stderr" ||
  fail "idn bench engine: $(cat "$dir/stdout" "$dir/stderr")"
grep -q "^| .* | 1 | exit0 head | " "$dir/stdout" || fail "no table: $(cat "$dir/stdout")"
if [ "$ort" = 1 ]; then
  grep -q "^ONNX Runtime: onnxruntime-node" "$dir/stdout" || fail "no ORT column: $(cat "$dir/stdout")"
else
  echo "bench_engine_test: onnxruntime-node not installed; checking the skip note only"
  grep -q "^ONNX Runtime: skipped: needs node" "$dir/stdout" || fail "no skip note: $(cat "$dir/stdout")"
fi
python3 - "$dir/bench/engine.csv" "$ort" <<'PY' || fail "engine.csv: $(cat "$dir/bench/engine.csv")"
import csv, sys
ort = sys.argv[2] == "1"
rows = list(csv.DictReader(open(sys.argv[1])))
by = {}
for r in rows:
    by.setdefault((r["model"], r["batch"], r["item"]), set()).add(r["backend"])
    mean, med, p99 = float(r["mean_us"]), float(r["median_us"]), float(r["p99_us"])
    assert 0 < med <= p99 and 0 < mean, r
    assert int(r["iterations"]) == 20, r
models = {m for m, _, _ in by}
assert len(models) == 2, models  # the package and --arch lenet
overhead = "ORT call overhead (Identity)"
for (m, b, item), backends in by.items():
    if item == overhead:
        assert ort and backends == {"onnxruntime"}, (m, b, item, backends)
    else:
        want = {"libtorch", "cpu"} | ({"onnxruntime"} if ort else set())
        assert backends == want, (m, b, item, backends)
for m in models:
    for b in ("1", "4"):
        items = {i for mm, bb, i in by if mm == m and bb == b}
        assert "stage0" in items and "exit0 head" in items, (m, b, items)
        # --layers: a row per layer that runs an op, on every backend (checked above).
        assert any(i.startswith("layer conv1: conv2d") for i in items), (m, b, items)
        assert (overhead in items) == ort, (m, b, items)
print("csv ok:", len(rows), "rows")
PY
# --test-set: the tiny B-LeNet against a random LeNet on 50 test images; both backends take the
# same exits and answers, and the exit mix adds up.
"$idn" bench engine --test-set --arch lenet --model "$model" --limit 50 --warmup 2 \
  --out "$dir/test-set" >"$dir/stdout" 2>&1 || fail "--test-set: $(cat "$dir/stdout")"
grep -q "^| tiny-b-lenet | " "$dir/stdout" || fail "--test-set table: $(cat "$dir/stdout")"
python3 - "$dir/test-set/engine_test_set.csv" <<'PY' || fail "engine_test_set.csv: $(cat "$dir/test-set/engine_test_set.csv")"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 2, rows
for r in rows:
    assert int(r["images"]) == 50, r
    assert 0 <= float(r["accuracy"]) <= 1 and float(r["agree"]) >= 0.98, r
    assert abs(sum(float(f) for f in r["exit_fractions"].split(" / ")) - 100) < 0.2, r
    assert 0 < float(r["cpu_median_us"]) and 0 < float(r["torch_median_us"]), r
# --model packages come first, then --arch ones.
assert rows[0]["model"] == "tiny-b-lenet" and float(rows[0]["accuracy"]) > 0.5, rows[0]
assert len(rows[0]["exit_fractions"].split(" / ")) == 2, rows[0]
PY
# --no-ort, and a script that is not there: the column is skipped with a note, not an error.
"$idn" bench engine --arch lenet --batch 1 --iterations 2 --warmup 0 --no-ort \
  --out "$dir/no-ort" >"$dir/stdout" 2>&1 || fail "--no-ort: $(cat "$dir/stdout")"
grep -q "^ONNX Runtime: skipped (--no-ort)" "$dir/stdout" || fail "--no-ort: $(cat "$dir/stdout")"
"$idn" bench engine --arch lenet --batch 1 --iterations 2 --warmup 0 \
  --ort-script "$dir/none/onnx_bench.mjs" --out "$dir/no-script" >"$dir/stdout" 2>&1 ||
  fail "missing script: $(cat "$dir/stdout")"
grep -q "^ONNX Runtime: skipped: needs node" "$dir/stdout" || fail "missing script: $(cat "$dir/stdout")"
! grep -q onnxruntime "$dir/no-script/engine.csv" || fail "ORT rows without ORT"
if command -v gnuplot >/dev/null; then
  [ -s "$dir/bench/engine.png" ] || fail "no engine.png"
fi

expect_error "bad batch" "--batch values in" "$idn" bench engine --model "$model" --batch 0
expect_error "bad arch" "unknown architecture 'nope'" "$idn" bench engine --arch nope
echo "bench engine: ok"
