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
