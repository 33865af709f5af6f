#!/usr/bin/env bash
# `idn init` as the issue asks: node A publishes the tiny B-LeNet; three idle nodes run with
# [ise] auto_host = true and k = 1 and host nothing; `idn init --npeers 2` asking all three makes
# exactly two of them host the service (each /status says so), and an `idn init` that cannot be
# met says how many did and exits non-zero. Every wait polls a condition with a deadline.
# Usage: init_test.sh PATH_TO_IDN FIXTURES_DIR
set -euo pipefail
idn="$1"
fixtures="$2"
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
scratch_dir

model="$(tiny_model)" || fail "training the test model"
"$idn" publish "$model" --data-dir "$dir/a" >"$dir/publish.out" 2>"$dir/publish.log" ||
  fail "idn publish"
sid="$(line service "$dir/publish.out")"
"$idn" node --data-dir "$dir/a" --listen /ip4/127.0.0.1/tcp/0 --http 127.0.0.1:0 \
  >"$dir/a.out" 2>"$dir/a.log" &
pids+=($!)
wait_for "node A" 30 grep -q '^ready' "$dir/a.out"
addr_a="$(line listening "$dir/a.out")"

addrs=()
https=()
for i in 1 2 3; do
  cat >"$dir/idle$i.toml" <<TOML
listen = ["/ip4/127.0.0.1/tcp/0"]
http = "127.0.0.1:0"
bootstrap = ["$addr_a"]
data_dir = "$dir/idle$i"
[ise]
auto_host = true
k = 1
TOML
  "$idn" node --config "$dir/idle$i.toml" >"$dir/idle$i.out" 2>"$dir/idle$i.log" &
  pids+=($!)
  wait_for "idle node $i" 30 grep -q '^ready' "$dir/idle$i.out"
  addrs+=(--bootstrap "$(line listening "$dir/idle$i.out")")
  https+=("$(line http "$dir/idle$i.out")")
done
hosting() {
  local n=0
  for h in "${https[@]}"; do hosts_service "$h" "$sid" && n=$((n + 1)); done
  echo "$n"
}
[ "$(hosting)" = 0 ] || fail "an idle node hosts the service before anyone asked"

"$idn" init --service "$sid" --npeers 2 "${addrs[@]}" >"$dir/init.out" 2>"$dir/init.log" ||
  fail "idn init --npeers 2"
[ "$(grep -c '^hosting' "$dir/init.out")" = 2 ] || fail "idn init did not name 2 hosting peers"
grep -q "^2 of 2 peer(s) host $sid" "$dir/init.out" || fail "idn init summary line missing"
[ "$(hosting)" = 2 ] || fail "$(hosting) idle nodes host the service, not exactly 2"

# Asking for more peers than there are: the three host it, and the shortfall is an error.
if "$idn" init --service "$sid" --npeers 4 "${addrs[@]}" --timeout-s 30 >"$dir/init4.out" \
  2>"$dir/init4.log"; then
  fail "idn init --npeers 4 with 3 peers succeeded"
fi
grep -q "^3 of 4 peer(s) host" "$dir/init4.out" || fail "idn init --npeers 4 did not report 3 of 4"
grep -q "^idn: error: .*only 3 of the 4" "$dir/init4.log" || fail "no error line for the shortfall"
[ "$(hosting)" = 3 ] || fail "after --npeers 4, $(hosting) idle nodes host the service, not 3"
echo ok
