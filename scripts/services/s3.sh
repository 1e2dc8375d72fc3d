#!/usr/bin/env bash
# A throwaway S3-compatible server (SeaweedFS `weed mini`) on loopback, for
# the tests and for trying `--store s3://…` by hand.
#
#   scripts/services/s3.sh start   start it (backgrounded), wait for S3, print the env
#   scripts/services/s3.sh env     print the AWS_* variables and the store URL
#   scripts/services/s3.sh stop    stop it and remove its data
#
# WHEELWRIGHT_S3_DIR picks the state directory (default: one per user under
# /tmp), so a test can run a second, dedicated instance and stop it.
set -euo pipefail
cd "$(dirname "$0")/../.."
state=${WHEELWRIGHT_S3_DIR:-${TMPDIR:-/tmp}/wheelwright-s3-$(id -u)}
weed=${WEED:-$PWD/.venv/bin/weed}
bucket=wheelwright
access_key=wheelwright
secret_key=wheelwright-test-secret

print_env() {
  [ -f "$state/port" ] || { echo "s3.sh: not running (no $state/port)" >&2; exit 1; }
  local port
  port=$(cat "$state/port")
  echo "export AWS_ENDPOINT_URL=http://127.0.0.1:$port"
  echo "export AWS_REGION=us-east-1"
  echo "export AWS_ACCESS_KEY_ID=$access_key"
  echo "export AWS_SECRET_ACCESS_KEY=$secret_key"
  echo "export WHEELWRIGHT_TEST_S3=s3://$bucket/tests"
}

# Free loopback ports, held open together so that no two are the same
# (weed binds them a moment later; a clash makes start fail, not misbehave).
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

running() {
  [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null
}

start() {
  if running; then
    print_env
    return
  fi
  [ -x "$weed" ] || { echo "s3.sh: $weed is missing (run scripts/setup.sh)" >&2; exit 1; }
  rm -rf "$state"
  mkdir -p "$state/data"
  cat >"$state/s3.json" <<EOF
{"identities": [{"name": "wheelwright",
  "credentials": [{"accessKey": "$access_key", "secretKey": "$secret_key"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
EOF
  # shellcheck disable=SC2046
  set -- $(free_ports 10)
  # Every listener on loopback, each on its own free port; the extras
  # (WebDAV, Iceberg, Lance, the admin UI) off.
  "$weed" mini -dir="$state/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -bucket="$bucket" \
    -s3.config="$state/s3.json" \
    -master.port="$1" -master.port.grpc="$2" -volume.port="$3" -volume.port.grpc="$4" \
    -filer.port="$5" -filer.port.grpc="$6" -s3.port="$7" -s3.port.grpc="$8" \
    -admin.port="$9" -admin.port.grpc="${10}" -admin.ui=false \
    -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 \
    >"$state/weed.log" 2>&1 </dev/null &
  echo $! >"$state/pid"
  echo "$7" >"$state/port"
  # Up when the S3 port answers and the bucket exists (an anonymous HEAD of
  # it gets 403 once the server knows it; 404 or no answer before).
  for _ in $(seq 1 300); do
    if ! running; then
      echo "s3.sh: weed exited; its log:" >&2
      tail -n 30 "$state/weed.log" >&2
      exit 1
    fi
    code=$(curl -s -o /dev/null -w '%{http_code}' -I "http://127.0.0.1:$7/$bucket" || true)
    if [ "$code" = 403 ] || [ "$code" = 200 ]; then
      print_env
      return
    fi
    sleep 0.1
  done
  echo "s3.sh: the S3 port $7 did not answer in 30 s; weed's log:" >&2
  tail -n 30 "$state/weed.log" >&2
  stop
  exit 1
}

stop() {
  if [ -f "$state/pid" ]; then
    pid=$(cat "$state/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -rf "$state"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) print_env ;;
  *)
    echo "usage: $0 start|stop|env" >&2
    exit 2
    ;;
esac
