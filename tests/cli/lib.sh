# Helpers shared by the CLI tests. Source it, then either call scratch_dir (which defines
# `fail`) or define your own `fail MESSAGE`, which must exit, before using the helpers.

# scratch_dir [PATTERN...]: $dir, a new temporary directory; $pids, the background processes
# the test starts (append to it); at exit they get TERM, are reaped, and $dir is removed. Defines
# `fail MESSAGE`: prints MESSAGE and the last 20 lines of each file in $dir matching a PATTERN
# (default: *.log *.out), then exits 1.
scratch_dir() {
  dir="$(mktemp -d)"
  pids=()
  scratch_show=("$@")
  [ ${#scratch_show[@]} -gt 0 ] || scratch_show=('*.log' '*.out')
  trap scratch_cleanup EXIT
  fail() {
    echo "FAIL: $*" >&2
    local pattern f
    for pattern in "${scratch_show[@]}"; do
      for f in "$dir"/$pattern; do
        [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
      done
    done
    exit 1
  }
}
scratch_cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}

# wait_for WHAT SECONDS COMMAND...: polls COMMAND until it succeeds or the deadline passes.
wait_for() {
  local what="$1" secs="$2"
  shift 2
  local until=$((SECONDS + secs))
  until "$@"; do
    [ $SECONDS -lt $until ] || fail "timed out waiting for $what"
    sleep 0.1
  done
}

# expect_error WHAT PATTERN COMMAND...: COMMAND must fail cleanly: an exit status in 1..MAX
# (MAX is $expect_max_status, default 127: CLI11's option checks exit with their own codes; a
# status of 128 or more is a signal), stderr mentioning PATTERN, and with
# $expect_one_error_line = 1 exactly one "idn: error:" line. Output lands in $dir/out, $dir/err.
expect_error() {
  local what="$1" pattern="$2" max="${expect_max_status:-127}"
  shift 2
  local rc=0
  "$@" >"$dir/out" 2>"$dir/err" || rc=$?
  if [ $rc -lt 1 ] || [ $rc -gt "$max" ]; then
    fail "$what: exit status $rc (want 1..$max): $(cat "$dir/err")"
  fi
  if [ "${expect_one_error_line:-0}" = 1 ]; then
    [ "$(grep -c '^idn: error:' "$dir/err")" = 1 ] || fail "$what: not one error line: $(cat "$dir/err")"
  fi
  grep -q -- "$pattern" "$dir/err" || fail "$what: error does not mention '$pattern': $(cat "$dir/err")"
}

# line KEY FILE: the rest of the first line of FILE that starts with "KEY ".
line() { sed -n "s/^$1 //p" "$2" | head -n 1; }

# hosts_service HOST:PORT SERVICE_ID: true when the node's /status lists the service as hosted.
hosts_service() {
  python3 - "$1" "$2" <<'PY'
import json, sys, urllib.request
try:
    s = json.load(urllib.request.urlopen(f"http://{sys.argv[1]}/status", timeout=2))
except Exception:
    sys.exit(1)
sys.exit(0 if any(x["service_id"] == sys.argv[2] for x in s.get("services", [])) else 1)
PY
}

# tiny_model: prints the path of a tiny B-LeNet package: the build tree's cached one
# ($fixtures/tiny-b-lenet), else one trained here with $idn (log in $dir/train.log) and cached
# beside it for the next run. Fails when training fails.
tiny_model() {
  local model="$fixtures/tiny-b-lenet"
  if [ -f "$model/model.json" ] && [ -f "$model/weights.safetensors" ]; then
    echo "$model"
    return 0
  fi
  model="$fixtures/cli-tiny-b-lenet"
  if [ ! -f "$model/model.json" ]; then
    mkdir -p "$fixtures"
    local tmp="$model.tmp$$"
    "$idn" train branchynet --arch b-lenet --out "$tmp" --epochs 1 --limit 600 --validation 300 \
      --threads 1 >/dev/null 2>"$dir/train.log" || return 1
    rm -rf "$tmp/checkpoint"
    mv -T "$tmp" "$model" 2>/dev/null || rm -rf "$tmp" # another run cached it first
  fi
  echo "$model"
}

# The first N FashionMNIST test images as $dir/img<i>.pgm (what `idn infer --input` and the JS
# tests read); prints their paths joined by commas.
write_test_images() {
  local n="$1"
  python3 - "$dir" "$n" <<'PY' || return 1
import gzip, sys
d = gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").read()
for i in range(int(sys.argv[2])):
    open(f"{sys.argv[1]}/img{i}.pgm", "wb").write(b"P5\n28 28\n255\n" + d[16 + i * 784:16 + (i + 1) * 784])
PY
  local i
  for ((i = 0; i < n; i++)); do printf '%s' "${i:+,}$dir/img$i.pgm"; done | sed 's/^,//'
}

# The local engine's answers to the first N images as lines "i class exit(1-based) confidence",
# into $dir/cpp.txt (run it in the background beside the nodes' start).
local_answers() {
  local model="$1" n="$2" i
  for ((i = 0; i < n; i++)); do
    "$idn" infer "$model" --input "$dir/img$i.pgm" --threads 1 2>>"$dir/infer.log" |
      sed -n "s/^prediction \([0-9]*\) .* exit .* (\([0-9]*\) of [0-9]*)  confidence \([0-9.]*\).*/$i \1 \2 \3/p"
  done >"$dir/cpp.txt"
}

# Two `idn node`s (a, then b bootstrapping from a) that both host MODEL from the start (both
# data dirs hold the published package: no fetch), each listening on TCP and WebSocket, without
# DHT tombstones at stop (they would wait for peers that are stopping too). Sets sid, addr_a
# (TCP) and ws_a (/ws); appends the nodes to pids. Needs fail(), pids and dir from the caller.
start_two_ws_nodes() {
  local model="$1"
  "$idn" publish "$model" --data-dir "$dir/a" >"$dir/publish.out" 2>"$dir/publish.log" ||
    fail "idn publish"
  cp -r "$dir/a" "$dir/b"
  sid="$(line service "$dir/publish.out")"
  [ -n "$sid" ] || fail "publish printed no service ID"
  cat >"$dir/node.toml" <<TOML
listen = ["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws"]
http = "127.0.0.1:0"
[dht]
withdraw_on_stop = false
TOML
  "$idn" node --config "$dir/node.toml" --data-dir "$dir/a" >"$dir/a.out" 2>"$dir/a.log" &
  pids+=($!)
  wait_for "node a" 30 grep -qs '^ready' "$dir/a.out"
  addr_a="$(grep '^listening .*/tcp/[0-9]*/p2p/' "$dir/a.out" | head -n 1 | cut -d' ' -f2)"
  ws_a="$(grep '^listening .*/tcp/[0-9]*/ws/p2p/' "$dir/a.out" | head -n 1 | cut -d' ' -f2)"
  if [ -z "$addr_a" ] || [ -z "$ws_a" ]; then fail "node a printed no TCP or /ws address"; fi
  "$idn" node --config "$dir/node.toml" --data-dir "$dir/b" --bootstrap "$addr_a" \
    >"$dir/b.out" 2>"$dir/b.log" &
  pids+=($!)
  wait_for "node b" 30 grep -qs '^ready' "$dir/b.out"
  wait_for "node a hosting the service" 30 hosts_service "$(line http "$dir/a.out")" "$sid"
  wait_for "node b hosting the service" 30 hosts_service "$(line http "$dir/b.out")" "$sid"
}
