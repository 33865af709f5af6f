#!/usr/bin/env bash
# `idn bench ddnn --quick` end to end with a fresh model cache: every table's rows are in the CSV
# with plausible values (not fixed numbers: two epochs on 400 samples), Table 4.2's on-the-wire
# column measured with the model deployed on loopback peers, the plots are written, and a second
# run reuses the cached models and gives the same CSV (but the wire column, which depends on
# timing: a device that misses its deadline sends nothing). Bad options are refused.
# Usage: bench_ddnn_test.sh PATH_TO_IDN
set -euo pipefail
idn="$1"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$idn" bench ddnn --quick --threads 1 --cache "$dir/models" --out "$dir/out" >"$dir/stdout" \
  2>"$dir/stderr" || fail "idn bench ddnn --quick: $(cat "$dir/stdout" "$dir/stderr")"
for table in "Table 4.1" "Table 4.2" "Fig. 4.8" "Fig. 4.9" "Fig. 4.10" "Targets"; do
  grep -q "### $table" "$dir/stdout" || fail "no $table in the output"
done
grep -q "training ddnn-bench-MP-CC" "$dir/stderr" || fail "the first run trained nothing"
grep -q -- "- on the wire at T = .* B per sample against" "$dir/stdout" ||
  fail "no on-the-wire target line: $(grep -A8 '### Targets' "$dir/stdout")"
grep -q -- "- all three at one T: the fewest bytes within 1 point of cloud-only is T = " \
  "$dir/stdout" || fail "no joint target line: $(grep -A8 '### Targets' "$dir/stdout")"
ls "$dir/models" | grep -q "ddnn-bench-individual" || fail "individual accuracies not cached"

python3 - "$dir/out/ddnn.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
by = {}
for r in rows:
    by.setdefault(r["table"], []).append(r)
def acc(r, k):
    v = float(r[k])
    assert 0 <= v <= 1, (k, r)
    return v
# Table 4.1: the nine local-cloud pairs, once each.
agg = by["aggregation"]
assert sorted(r["scheme"] for r in agg) == sorted(
    f"{l}-{c}" for l in ("MP", "AP", "CC") for c in ("MP", "AP", "CC")), agg
for r in agg:
    for k in ("local_accuracy", "cloud_accuracy", "overall_accuracy", "local_exit"):
        acc(r, k)
    assert int(r["devices"]) == 6
# Table 4.2: the quick thresholds; T = 0 sends everything to the cloud, T = 1 exits everything
# locally, the share exiting grows with T and bytes fall with it.
th = sorted(by["threshold"], key=lambda r: float(r["threshold"]))
assert [float(r["threshold"]) for r in th] == [0, 0.5, 0.8, 1.0], th
assert float(th[0]["local_exit"]) == 0 and float(th[-1]["local_exit"]) == 1
assert abs(float(th[0]["overall_accuracy"]) - float(th[0]["cloud_accuracy"])) < 1e-9
assert abs(float(th[-1]["overall_accuracy"]) - float(th[-1]["local_accuracy"])) < 1e-9
exits = [float(r["local_exit"]) for r in th]
assert exits == sorted(exits), exits
dev = [float(r["device_bytes_per_sample"]) for r in th]
assert dev == sorted(dev, reverse=True) and dev[-1] < dev[0], dev
# Everything local sends no features and nothing to the cloud: fewer bytes than cloud-only.
assert float(th[-1]["wire_bytes_per_sample"]) < float(th[0]["wire_bytes_per_sample"]), th
for r in th:
    assert float(r["raw_bytes_per_sample"]) > 20 * float(r["device_bytes_per_sample"]), r
    assert 12 <= float(r["eq41_bytes_per_device"]) <= 12 + 4 * 16 * 16 / 8, r
    # Measured on loopback peers: far below the raw views (a sample's wire bytes also carry
    # the requests, framing and the answers, which the counted column leaves out).
    assert 0 < float(r["wire_bytes_per_sample"]) < float(r["raw_bytes_per_sample"]) / 5, r
    assert 0 < int(r["device_param_bytes"]) < 2048, r  # §4.5.7's budget
# Fig. 4.8: 1..6 devices, each with the individual accuracy of the camera it adds.
d = by["devices"]
assert [int(r["devices"]) for r in d] == [1, 2, 3, 4, 5, 6], d
assert sorted(r["views"].split("+")[-1] for r in d) == [str(v) for v in range(6)], d
ind = [acc(r, "individual_accuracy") for r in d]
assert ind == sorted(ind), ("cameras not added worst first", ind)
for r in d:
    acc(r, "local_accuracy"), acc(r, "cloud_accuracy"), acc(r, "overall_accuracy")
# Fig. 4.9: the quick filter counts; more filters, more bytes and parameters.
f = sorted(by["filters"], key=lambda r: int(r["filters"]))
assert [int(r["filters"]) for r in f] == [1, 4], f
assert float(f[0]["eq41_bytes_per_device"]) < float(f[1]["eq41_bytes_per_device"]), f
assert int(f[0]["device_param_bytes"]) < int(f[1]["device_param_bytes"]), f
for r in f:
    assert 0.6 <= float(r["local_exit"]) <= 0.9, r  # T chosen for about 75 % local exits
# Fig. 4.10: none, each single camera, then 2..5 failed.
fl = {r["failed"]: r for r in by["failure"]}
for name in ["none"] + [str(v) for v in range(6)]:
    assert name in fl, (name, sorted(fl))
several = [k for k in fl if "+" in k]
assert sorted(len(k.split("+")) for k in several) == [2, 3, 4, 5], several
for r in fl.values():
    acc(r, "overall_accuracy")
print("csv ok:", {k: len(v) for k, v in by.items()})
PY
for p in threshold devices filters failures; do
  [ -s "$dir/out/ddnn_$p.png" ] || fail "no ddnn_$p.png"
done

# A rerun trains nothing and measures the same (without the deployment: --wire-samples 0).
cp "$dir/out/ddnn.csv" "$dir/first.csv"
"$idn" bench ddnn --quick --threads 1 --wire-samples 0 --cache "$dir/models" --out "$dir/out" \
  >"$dir/stdout2" \
  2>"$dir/stderr2" || fail "second run: $(cat "$dir/stderr2")"
if grep -q "training" "$dir/stderr2"; then fail "the rerun trained: $(cat "$dir/stderr2")"; fi
no_wire() { python3 -c 'import csv,sys
r = csv.reader(open(sys.argv[1])); h = next(r); i = h.index("wire_bytes_per_sample")
for row in [h] + list(r): print(",".join(row[:i] + row[i + 1:]))' "$1"; }
no_wire "$dir/first.csv" >"$dir/first.nowire"
no_wire "$dir/out/ddnn.csv" >"$dir/second.nowire"
cmp -s "$dir/first.nowire" "$dir/second.nowire" ||
  fail "the rerun measured something else: $(diff "$dir/first.nowire" "$dir/second.nowire")"

if "$idn" bench ddnn --quick --scheme MP --cache "$dir/models" --out "$dir/bad" >"$dir/err" 2>&1; then
  fail "--scheme MP was accepted"
fi
grep -q "idn: error: .*--scheme must be LOCAL-CLOUD" "$dir/err" || fail "unclear error: $(cat "$dir/err")"
echo "bench ddnn: ok"
