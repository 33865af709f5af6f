#!/usr/bin/env bash
# A node built without LibTorch (idn-node: the torch-free CLI, the cpu engine) serves a model:
# its binary loads no libtorch or libc10 (ldd), --help says what it leaves out, --backend torch
# is a clear error, and a node of it on 127.0.0.1 hosting the tiny B-LeNet with backend "cpu"
# answers `idn-node infer --service` with the class, exit and confidence that LibTorch (`idn infer
# --backend torch`, the full build) gives for the same images.
# Usage: notorch_node_test.sh PATH_TO_IDN_NODE PATH_TO_IDN FIXTURES_DIR
set -euo pipefail
idn_node="$1"
idn="$2"
fixtures="$3"
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
scratch_dir '*.log' '*.out' err

# The check itself must see LibTorch where it is: in the full idn.
# ldd's output is read whole first: `ldd | grep -q` under pipefail fails when grep exits
# before ldd has written everything (SIGPIPE), as it did in a fresh Debian root.
deps="$(ldd "$idn")" || fail "ldd $idn failed"
grep -q 'libtorch' <<<"$deps" || fail "ldd does not show libtorch in $idn: the check would prove nothing"
deps="$(ldd "$idn_node")" || fail "ldd $idn_node failed"
if grep -E 'libtorch|libc10' <<<"$deps"; then fail "$idn_node loads LibTorch"; fi

"$idn_node" --help >"$dir/help.out" || fail "idn-node --help"
grep -q "built without LibTorch" "$dir/help.out" || fail "--help does not say it was built without LibTorch"
if grep -qE "^  (train|eval) " "$dir/help.out"; then fail "idn-node lists train or eval"; fi

model="$(tiny_model)" || fail "training the test model"
n=3
write_test_images "$n" >/dev/null || fail "writing the test images"

expect_error "idn-node infer --backend torch" "built without LibTorch" \
  "$idn_node" infer "$model" --backend torch --input "$dir/img0.pgm"

# The reference: LibTorch in the full build; and the torch-free cpu engine in this process.
for ((i = 0; i < n; i++)); do
  "$idn" infer "$model" --backend torch --input "$dir/img$i.pgm" >"$dir/torch$i.out" \
    2>"$dir/torch$i.log" || fail "idn infer --backend torch"
  "$idn_node" infer "$model" --input "$dir/img$i.pgm" >"$dir/local$i.out" 2>"$dir/local$i.log" ||
    fail "idn-node infer (local, auto = cpu)"
done

"$idn_node" publish "$model" --data-dir "$dir/a" >"$dir/publish.out" 2>"$dir/publish.log" ||
  fail "idn-node publish"
sid="$(line service "$dir/publish.out")"
[ -n "$sid" ] || fail "publish printed no service ID"
cat >"$dir/node.toml" <<TOML
listen = ["/ip4/127.0.0.1/tcp/0"]
http = "127.0.0.1:0"
[dht]
withdraw_on_stop = false
[engine]
backend = "cpu"
TOML
"$idn_node" node --config "$dir/node.toml" --data-dir "$dir/a" >"$dir/node.out" 2>"$dir/node.log" &
pids+=($!)
wait_for "the node" 30 grep -qs '^ready' "$dir/node.out"
addr="$(grep '^listening .*/tcp/[0-9]*/p2p/' "$dir/node.out" | head -n 1 | cut -d' ' -f2)"
[ -n "$addr" ] || fail "the node printed no TCP address"
wait_for "the node hosting the service" 30 hosts_service "$(line http "$dir/node.out")" "$sid"
for ((i = 0; i < n; i++)); do
  "$idn_node" infer --service "$sid" --bootstrap "$addr" --input "$dir/img$i.pgm" \
    >"$dir/remote$i.out" 2>"$dir/remote$i.log" || fail "idn-node infer --service"
done

python3 - "$dir" "$n" <<'PY' || fail "the torch-free node's answers differ from LibTorch's"
import re, sys
d, n = sys.argv[1], int(sys.argv[2])
local_re = r"prediction (\d+) .* exit .* \((\d+) of \d+\)  confidence ([0-9.]+)"
for i in range(n):
    t = re.search(local_re, open(f"{d}/torch{i}.out").read())
    c = re.search(local_re, open(f"{d}/local{i}.out").read())
    want = (int(t[1]), int(t[2]) - 1, float(t[3]))
    got_local = (int(c[1]), int(c[2]) - 1, float(c[3]))
    finals = [l for l in open(f"{d}/remote{i}.out") if l.startswith("answer") and "(final)" in l]
    m = re.search(r"class (\d+)\s+exit (\d+)\s+confidence ([0-9.]+)", finals[-1])
    got = (int(m[1]), int(m[2]), float(m[3]))
    print(f"notorch_node_test: image {i}: torch {want}, idn-node local {got_local}, node {got}")
    # The backends agree within 1e-4; the confidences are printed to 4 places.
    for g in (got_local, got):
        assert g[:2] == want[:2] and abs(g[2] - want[2]) <= 2e-4, (i, want, g)
PY
echo "notorch_node_test: ok"
