#!/usr/bin/env bash
# `idn train | eval | infer` end to end on a tiny FashionMNIST subset, and the error paths a
# user meets: corrupt or mismatched packages, missing data, wrong input shapes — each must be
# one clear line on stderr and a non-zero exit, never a crash. Usage: ml_test.sh PATH_TO_IDN
set -euo pipefail
idn="$1"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# Commands that must fail cleanly: exit 1 or 2 (not a signal), one "idn: error:" line.
expect_max_status=2
expect_one_error_line=1

"$idn" train branchynet --arch b-lenet --out "$dir/m" --epochs 1 --limit 600 --validation 300 \
  --threads 1 >"$dir/train" 2>/dev/null
grep -q "operating point" "$dir/train" || fail "train printed no operating point"
python3 - "$dir/m/model.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
assert len(m["exits"]) == 2, m["exits"]
assert all(e["temperature"] > 0 for e in m["exits"])
assert "rule" in m["operating_point"]
PY

"$idn" eval "$dir/m" --limit 200 --json >"$dir/eval.json"
python3 - "$dir/eval.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
m = j["measured"]
assert 0.3 < m["accuracy"] <= 1.0, m
assert abs(sum(m["exit_fraction"]) - 1.0) < 1e-9, m
assert m["median_us"] > 0 and m["p99_us"] >= m["median_us"], m
assert j["backend"] in ("torch", "cpu") and j["backend_reason"], j
PY
"$idn" infer "$dir/m" --test-index 3 >"$dir/infer"
grep -Eq '^prediction [0-9] .* exit exit[01] .* confidence 0\.[0-9]+' "$dir/infer" || fail "infer output: $(cat "$dir/infer")"
# Both backends give the same answer (all but the time).
for b in torch cpu; do
  "$idn" infer "$dir/m" --test-index 3 --backend $b | sed 's/time [0-9.]* us//' >"$dir/infer.$b"
done
cmp -s "$dir/infer.torch" "$dir/infer.cpu" ||
  fail "backends disagree: $(cat "$dir/infer.torch" "$dir/infer.cpu")"
"$idn" eval "$dir/m" --limit 50 --backend cpu | grep -q "^engine backend cpu: asked for" ||
  fail "idn eval does not say which backend ran"

# A 27x28 image is the wrong shape.
printf 'P5\n28 27\n255\n' >"$dir/bad.pgm"
head -c $((28 * 27)) /dev/zero >>"$dir/bad.pgm"
expect_error "wrong input shape" "expects \[1, 28, 28\]" "$idn" infer "$dir/m" --input "$dir/bad.pgm"
expect_error "missing package" "not a model package" "$idn" eval "$dir/nope"
expect_error "missing data" "$dir/nodata" "$idn" eval "$dir/m" --data "$dir/nodata"

cp -r "$dir/m" "$dir/corrupt"
head -c 100 "$dir/m/weights.safetensors" >"$dir/corrupt/weights.safetensors"
expect_error "truncated weights" "weights.safetensors" "$idn" infer "$dir/corrupt" --test-index 0

cp -r "$dir/m" "$dir/mismatch"
sed -i 's/"out_features": 500/"out_features": 400/' "$dir/mismatch/model.json"
expect_error "weights that do not match model.json" "fc" "$idn" infer "$dir/mismatch" --test-index 0

echo '{"format": "idn-model", "version": 1' >"$dir/corrupt/model.json"
expect_error "corrupt model.json" "model.json" "$idn" infer "$dir/corrupt" --test-index 0
echo "ml_test: ok"
