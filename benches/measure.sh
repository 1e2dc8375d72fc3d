# The measurements benches/daemon.sh and benches/warm.sh make alike. Source
# it after benches/bare_toolchain.sh (its `bare`, `now` and `median`), with
# `work`, `base` and `python` set, `files` holding the upload's -F arguments
# and `daemon_build` defined (one build, upload to the end of its live log;
# prints the build's id).

# start_daemon BINARY ARGS...: `BINARY serve` on a free loopback port with
# its data under $work/data and ARGS; sets daemon (its pid) and base (its
# URL), and stops it and removes $work when the benchmark exits.
start_daemon() {
  local bin=$1
  shift
  "$bin" serve --data-dir "$work/data" --bind 127.0.0.1:0 "$@" 2>"$work/serve.log" &
  daemon=$!
  # The daemon and everything it starts (sandboxes, runners, tools) are
  # counted in a CPU accounting group of their own, when there is one.
  cpu_group daemon && echo "$daemon" >"$cpu_root-daemon/cgroup.procs"
  trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null; rm -rf "$work"; cpu_groups_remove' EXIT
  for _ in $(seq 200); do
    base=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/serve.log" | head -n 1)
    [ -n "$base" ] && return
    sleep 0.05
  done
  cat "$work/serve.log"
  exit 1
}

# CPU accounting (cgroup v1 cpuacct, as root): `cpu_group NAME` makes a
# group (fails when there is none to make), `cpu_ns NAME` prints the CPU
# time, ns, its processes used so far (empty without the group).
cpu_root=/sys/fs/cgroup/cpuacct/wheelwright-bench-$$
cpu_group() { [ -w /sys/fs/cgroup/cpuacct ] && mkdir -p "$cpu_root-$1" 2>/dev/null; }
cpu_ns() { cat "$cpu_root-$1/cpuacct.usage" 2>/dev/null || true; }
cpu_groups_remove() { for g in "$cpu_root"-*; do [ -d "$g" ] && rmdir "$g" 2>/dev/null; done; true; }

json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

# submit ARGS...: uploads the form in $files with ARGS to $base and prints
# the new build's id, taken from the Location header: no interpreter starts
# on a measured path (`json_field` is ~20 ms of Python start-up).
submit() {
  local location
  location=$(curl -sf "${files[@]}" "$@" -o /dev/null -w '%header{location}' "$base/api/v1/builds")
  [ -n "$location" ] || return 1
  echo "${location##*/}"
}

# latency_rounds RUNS: RUNS rounds of the bare script then one daemon build,
# back to back; sets lat_bare and lat_daemon (medians, µs) and last (the
# last build's id), and stops the benchmark unless that build succeeded.
latency_rounds() {
  local t0 t1 t2 status
  : >"$work/bare.t"; : >"$work/daemon.t"
  for _ in $(seq "$1"); do
    t0=$(now); bare "$work/bare"; t1=$(now); last=$(daemon_build); t2=$(now)
    echo $(( (t1 - t0) / 1000 )) >>"$work/bare.t"; echo $(( (t2 - t1) / 1000 )) >>"$work/daemon.t"
  done
  status=$(curl -sf "$base/api/v1/builds/$last" | json_field status)
  [ "$status" = succeeded ] || { echo "the last build $status"; exit 1; }
  lat_bare=$(median <"$work/bare.t"); lat_daemon=$(median <"$work/daemon.t")
}

# throughput N VERSION: N bare scripts 2 at a time, then N distinct builds
# (versions VERSION.1 … VERSION.N) through the daemon; sets thr_bare and
# thr_daemon (µs) and cpu_bare and cpu_daemon (CPU ms per build, when
# there are accounting groups), leaves the builds' live logs in $work/streams, and stops
# the benchmark unless every build succeeded. One client process uploads
# all builds (--next) and one follows their live logs in turn, each ending
# with the build's status: a client per build, or polling /metrics, would
# spend on curl start-ups the cores the builds need.
throughput() {
  local n=$1 version=$2 t0 t1 t2 succeeded c0 c1 uploads=()
  t0=$(now)
  (
    cpu_group bare && echo "$BASHPID" >"$cpu_root-bare/cgroup.procs"
    seq "$n" | xargs -P 2 -I{} bash -c ". benches/bare_toolchain.sh; python='$python'; bare '$work/bare-{}'"
  )
  t1=$(now)
  c0=$(cpu_ns daemon)
  for i in $(seq "$n"); do
    [ "$i" -gt 1 ] && uploads+=(--next)
    uploads+=(-sf "${files[@]}" -F targets=all -F "version=$version.$i" -o /dev/null -w '%header{location}\n' "$base/api/v1/builds")
  done
  curl "${uploads[@]}" >"$work/locations"
  [ "$(grep -c /api/v1/builds/ "$work/locations")" -eq "$n" ] || { echo "uploads failed"; exit 1; }
  curl -sfN -H 'Accept: text/event-stream' $(sed "s|^|$base|" "$work/locations" | sed 's|$|/log|') >"$work/streams"
  t2=$(now)
  c1=$(cpu_ns daemon)
  # CPU per build, ms (empty without accounting groups).
  cpu_bare=$(cpu_ns bare | awk -v n="$n" 'NF {printf "%.0f", $1 / n / 1e6}')
  cpu_daemon=$([ -n "$c0" ] && awk -v a="$c0" -v b="$c1" -v n="$n" 'BEGIN {printf "%.0f", (b - a) / n / 1e6}' || true)
  succeeded=$(grep -A1 '^event: end' "$work/streams" | grep -c '^data: succeeded' || true)
  [ "$succeeded" -eq "$n" ] || { echo "$((n - succeeded)) builds did not succeed"; exit 1; }
  thr_bare=$(( (t1 - t0) / 1000 )); thr_daemon=$(( (t2 - t1) / 1000 ))
}
