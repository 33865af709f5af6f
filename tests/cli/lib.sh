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
