#!/usr/bin/env bash
# `idn demo ddnn` end to end: a tiny config (c) model (trained in seconds into a temporary
# directory) on six device peers, the aggregator and the cloud; one device peer stopped
# mid-stream; every sample is answered and the summary reports exits, accuracy and bytes; the
# package's sections publish as seven services; a bad option is refused with a clear error.
# Usage: demo_ddnn_test.sh PATH_TO_IDN
set -euo pipefail
idn="$1"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$idn" demo ddnn --model "$dir/model" --train-samples 200 --epochs 1 --samples 12 \
  --kill-device-after 5 --quiet >"$dir/out" 2>"$dir/log" ||
  fail "idn demo ddnn: $(cat "$dir/out" "$dir/log")"
grep -q "samples 12, answered 12, lost 0" "$dir/out" || fail "lost samples: $(cat "$dir/out")"
grep -q "stopping device peer 2" "$dir/out" || fail "no device peer was stopped"
grep -Eq "^exits: local [0-9]+ \([0-9.]+%\), cloud [0-9]+" "$dir/out" || fail "no exit line"
grep -Eq "^raw views to the cloud .* [0-9.]+x the DDNN's wire bytes" "$dir/out" ||
  fail "no byte comparison: $(cat "$dir/out")"
grep -q "^eq. 4.1 payload measured" "$dir/out" || fail "no eq. 4.1 line"
[ -f "$dir/model/ddnn.json" ] || fail "the model was not cached"

# Publishing: one service per section (six devices and the cloud), all different.
"$idn" ddnn publish "$dir/model" --data-dir "$dir/node" >"$dir/pub" 2>"$dir/publog" ||
  fail "idn ddnn publish: $(cat "$dir/pub" "$dir/publog")"
[ "$(grep -Ec '^(device[0-5]|cloud) +Qm' "$dir/pub")" = 7 ] || fail "sections: $(cat "$dir/pub")"
[ "$(awk '/Qm/ {print $2}' "$dir/pub" | sort -u | wc -l)" = 7 ] || fail "service IDs repeat"

if "$idn" demo ddnn --model "$dir/model" --kill-device 9 >"$dir/bad" 2>&1; then
  fail "--kill-device 9 was accepted"
fi
grep -q "kill-device must be 0..5" "$dir/bad" || fail "unclear error: $(cat "$dir/bad")"
echo "demo ddnn: ok"
