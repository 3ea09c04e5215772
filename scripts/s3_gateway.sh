#!/usr/bin/env bash
# A real S3 server on this machine, for ferry's S3 tests and benchmark: Ceph's RADOS Gateway over a
# one-monitor, one-OSD cluster whose object store lives in memory (see shared/notes/ceph-s3.md).
# Listens on 127.0.0.1 only; no authentication between the daemons, which never leave loopback.
#
#   scripts/s3_gateway.sh install        apt-get install the Debian packages (root; once)
#   scripts/s3_gateway.sh start [DIR]    start it (about 15 s), write DIR/env, print its lines
#   scripts/s3_gateway.sh stop [DIR]     stop the daemons started in DIR and remove DIR
#   scripts/s3_gateway.sh status [DIR]   exit 0 when the gateway in DIR answers
#
# DIR defaults to ${TMPDIR:-/tmp}/ferry-s3-gateway, where the tests look for DIR/env. DIR/env holds
# `export AWS_...=...` lines (endpoint, region, the keys of a user made for the tests); `source`
# it to point ferry, rclone or the AWS CLI at the gateway. Everything lives in memory: stopping
# drops every bucket. FERRY_S3_PORT (default 7480) and FERRY_S3_MON_PORT (default 6789) move
# the ports; FERRY_S3_MEMORY (bytes, default 2 GiB) bounds what the OSD may hold.
set -euo pipefail

command="${1:-}"
dir="${2:-${TMPDIR:-/tmp}/ferry-s3-gateway}"
port="${FERRY_S3_PORT:-7480}"
mon_port="${FERRY_S3_MON_PORT:-6789}"
memory="${FERRY_S3_MEMORY:-2147483648}"

say() { echo "s3_gateway: $*" >&2; }
fail() { say "$*"; return 1; }

# Waits up to $1 seconds for the command after it to succeed.
wait_for() {
  local seconds="$1"; shift
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then return 1; fi
    sleep 0.5
  done
}

answers() { curl -s -o /dev/null --max-time 2 "http://127.0.0.1:${port}/"; }

install() {
  local missing=()
  for binary in ceph-mon ceph-osd radosgw curl; do
    command -v "$binary" >/dev/null || missing+=("$binary")
  done
  if ((${#missing[@]} == 0)); then say "already installed"; return; fi
  [[ $(id -u) == 0 ]] || fail "installing needs root (apt-get install ceph-mon ceph-osd radosgw curl)"
  export DEBIAN_FRONTEND=noninteractive
  # The package lists may be stale or missing on a fresh machine.
  apt-get install -y -q ceph-mon ceph-osd radosgw curl >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && apt-get install -y -q \
      ceph-mon ceph-osd radosgw curl >/dev/null; }
  # The packages' own services start nothing: there is no /etc/ceph/ceph.conf. The daemons here
  # run from the configuration that `start` writes into its folder.
  say "installed $(radosgw --version | head -n 1)"
}

start() {
  for binary in monmaptool ceph-mon ceph-osd radosgw radosgw-admin curl; do
    command -v "$binary" >/dev/null || fail "$binary is missing: run '$0 install' first"
  done
  if [[ -f "$dir/env" ]] && answers; then
    say "already running in $dir"
    cat "$dir/env"
    return
  fi
  if answers; then fail "something already listens on 127.0.0.1:${port} (set FERRY_S3_PORT)"; fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$mon_port") 2>/dev/null; then
    fail "something already listens on 127.0.0.1:${mon_port} (set FERRY_S3_MON_PORT)"
  fi
  rm -rf "$dir"
  mkdir -p "$dir"/{run,log,mon,osd,rgw}
  local fsid conf
  fsid="$(cat /proc/sys/kernel/random/uuid)"
  conf="$dir/ceph.conf"
  cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$mon_port
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon warn on pool no redundancy = false
osd objectstore = memstore
memstore device bytes = $memory
osd crush chooseleaf type = 0
# At start an OSD sets its device class through the monitor; right after the monitor starts that
# command can fail ("wrong fsid") and the OSD exits. The class is not needed here.
osd class update on start = false
run dir = $dir/run
log file = $dir/log/\$name.log
admin socket = $dir/run/\$name.asok
pid file = $dir/run/\$name.pid
ms bind ipv6 = false
[mon.a]
mon data = $dir/mon
public addr = v1:127.0.0.1:$mon_port
[osd.0]
osd data = $dir/osd
[client.rgw]
rgw data = $dir/rgw
rgw frontends = beast endpoint=127.0.0.1:$port tcp_nodelay=1
rgw dns name = 127.0.0.1
# Deleted objects and aborted uploads are freed within seconds, not after the default two hours:
# the OSD lives in memory, and tests and benchmarks write many large objects one after another.
rgw gc obj min wait = 5
rgw gc processor period = 5
rgw gc processor max time = 5
EOF
  local started=$SECONDS
  # A start that fails halfway stops what it started, so that the next attempt finds free ports.
  trap 'say "start failed: the end of its logs, then stopping what was started"
    tail -n 15 "$dir"/log/*.log >&2 2>/dev/null; stop >/dev/null 2>&1' ERR
  # The monitor speaks the v1 protocol on any port (Ceph takes a bare address on a port other
  # than 6789 for v2, which then no client finds).
  monmaptool --create --addv a "[v1:127.0.0.1:$mon_port]" --fsid "$fsid" "$dir/monmap" >/dev/null
  ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" 2>>"$dir/log/mon.start.log"
  ceph-mon -c "$conf" -i a
  wait_for 60 ceph -c "$conf" --connect-timeout 2 mon stat || fail "the monitor did not start (see $dir/log)"
  local id
  id="$(ceph -c "$conf" osd create)"
  ceph-osd -c "$conf" -i "$id" --mkfs 2>/dev/null
  # Should the OSD still exit at start, it is tried twice more.
  local tries=0
  until ceph-osd -c "$conf" -i "$id" 2>>"$dir/log/osd.start.log"; do
    ((++tries < 3)) || fail "the OSD did not start (see $dir/log)"
    sleep 1
  done
  ceph -c "$conf" osd crush add-bucket host1 host >/dev/null 2>&1
  ceph -c "$conf" osd crush move host1 root=default >/dev/null 2>&1
  ceph -c "$conf" osd crush add "osd.$id" 1.0 host=host1 >/dev/null 2>&1
  osd_up() { ceph -c "$conf" osd stat | grep -q '1 up'; }
  wait_for 60 osd_up || fail "the OSD did not come up (see $dir/log)"
  radosgw -c "$conf" -n client.rgw
  wait_for 60 answers || fail "the gateway did not answer on 127.0.0.1:$port (see $dir/log)"
  local user access secret
  user="$(radosgw-admin -c "$conf" user create --uid=ferry --display-name=ferry 2>/dev/null)"
  access="$(sed -n 's/.*"access_key": "\([^"]*\)".*/\1/p' <<<"$user" | head -n 1)"
  secret="$(sed -n 's/.*"secret_key": "\([^"]*\)".*/\1/p' <<<"$user" | head -n 1)"
  [[ -n "$access" && -n "$secret" ]] || fail "could not create the gateway's user"
  cat >"$dir/env.tmp" <<EOF
export AWS_ENDPOINT_URL=http://127.0.0.1:$port
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=$access
export AWS_SECRET_ACCESS_KEY=$secret
EOF
  chmod 600 "$dir/env.tmp"
  mv "$dir/env.tmp" "$dir/env"
  trap - ERR
  say "ready on 127.0.0.1:$port after $((SECONDS - started)) s; source $dir/env"
  cat "$dir/env"
}

stop() {
  [[ -d "$dir/run" ]] || { say "nothing started in $dir"; return; }
  local pids=()
  for name in client.rgw osd.0 mon.a; do
    local file="$dir/run/$name.pid"
    if [[ -f "$file" ]]; then pids+=("$(cat "$file")"); fi
  done
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$dir"
  say "stopped"
}

case "$command" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) [[ -f "$dir/env" ]] && answers ;;
  *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
