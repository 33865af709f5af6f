# Helpers shared by the CLI tests (source it after defining `fail MESSAGE`, which must exit).

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
