#!/usr/bin/env bash
# `ray up` for real, on one machine: the README's cluster steps (ray up -> ray exec the sweep
# -> ray rsync-down -> ray down) against "machines" made of Linux namespaces.
#
#   sudo scripts/ray_up_loopback.sh [--workers 0|1] [--out DIR] [-- SWEEP_ARGS...]
#   e.g. scripts/ray_up_loopback.sh --out /tmp/lb -- --set cache_dir=/tmp/rs-cache
#
# What it does, in order (tests/test_ray_up.py runs it and checks the result):
#  1. a temp dir with a throwaway ed25519 client key, an sshd host key and a Ray auth token;
#  2. one "machine" per node: its own network namespace (`ip netns`), PID namespace and mount
#     namespace (private ~ and /tmp/ray), running sshd with that key only (no passwords,
#     PermitRootLogin prohibit-password, its own HostKey / PidFile). The head listens on
#     127.0.0.1 (--workers 0) or on 10.213.0.1; the worker on 10.213.0.2, the other end of a
#     veth pair between the two namespaces. These addresses exist only inside the namespaces:
#     nothing listens on any interface of this machine, so there is nothing to collide with;
#  3. a cluster yaml generated from cluster-local.yaml (scripts/loopback_yaml.py): head_ip /
#     worker_ips, the key, this checkout rsynced to ~/routesweep, offline setup commands, the GCS
#     on port 6380, token auth;
#  4. `ray up -y`, then (with a worker) waits until the worker has joined;
#  5. `ray status` from outside the head, with the token (Ray 2.60 token auth), and without it
#     (must be refused);
#  6. `ray exec` the smoke sweep: `python -m sweep.run --smoke-test --address auto --out
#     results/loopback SWEEP_ARGS` in ~/routesweep on the head;
#  7. `ray rsync-down` results/loopback to DIR, then `ray down -y`;
#  8. closes ssh's control connections, stops each machine's sshd (the PID namespace's init:
#     whatever is left in it dies with it), deletes the namespaces and the temp dir. A trap
#     does 7-8 on any failure or Ctrl-C too.
# Why namespaces: `ray up` and `ray down` run `ray stop` on the nodes, and `ray stop` kills
# EVERY Ray process of the user on the machine; in its own PID namespace it kills only the
# "machine's". The private ~ keeps ~/ray_bootstrap_*, ~/.ray/auth_token and ~/routesweep off
# the real home.
#
# Needs: root (namespaces), openssh-server and rsync (Debian: apt-get install openssh-server
# rsync), iproute2 and util-linux (ip, unshare), and this project's Python environment
# (ray 2.60, torch, ...) already installed: nothing is downloaded. Takes a few minutes.
# Exit codes: 0 ok, 2 missing requirement or bad argument, else the failing step's.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
WORKERS=1
OUT="results/loopback-$(date +%Y%m%d-%H%M%S)"
GCS_PORT=6380
SWEEP_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) WORKERS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --) shift; SWEEP_ARGS=("$@"); break ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "ray_up_loopback: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

die2() { echo "ray_up_loopback: $*" >&2; exit 2; }
case "$WORKERS" in 0|1) ;; *) die2 "--workers must be 0 or 1" ;; esac
[ "$(id -u)" -eq 0 ] || die2 "needs root (network / PID / mount namespaces)"
for c in sshd ssh ssh-keygen rsync ip unshare mount python3 ray; do
  command -v "$c" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$c" >/dev/null 2>&1 \
    || die2 "'$c' not found (apt-get install openssh-server rsync iproute2 util-linux)"
done
SSHD="$(PATH="$PATH:/usr/sbin:/sbin" command -v sshd)"
if ! err="$(unshare --net --pid --fork --mount true 2>&1)"; then
  die2 "cannot create namespaces here: ${err:-unshare failed}"
fi
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT" 2>/dev/null)" ]; then die2 "--out '$OUT' is not empty"; fi

T0=$(date +%s)
log() { echo "[ray_up_loopback +$(( $(date +%s) - T0 ))s] $*"; }

WORK="$(mktemp -d /tmp/rayup.XXXXXX)"
ID="$(basename "$WORK" | cut -d. -f2 | tr 'A-Z' 'a-z')"
NAME="routesweep-loopback-$ID"
NS_H="rayup-h-$ID"
NS_W="rayup-w-$ID"
USER_NAME="$(id -un)"
REAL_HOME="$(getent passwd "$USER_NAME" | cut -d: -f6)"
PY="$(python3 -c 'import sys; print(sys.executable)')"
PY_PREFIX="$(python3 -c 'import sys; print(sys.prefix)')"
if [ "$WORKERS" -eq 1 ]; then HEAD_IP=10.213.0.1; WORKER_IP=10.213.0.2; else HEAD_IP=127.0.0.1; WORKER_IP=""; fi
YAML="$WORK/cluster-loopback.yaml"
# ssh's control sockets for this cluster (Ray: /tmp/ray_ssh_<sha(user)>/<sha(cluster)>)
CTRL="$(python3 -c "import hashlib as h; print('/tmp/ray_ssh_%s/%s' % (h.sha256(b'$USER_NAME').hexdigest()[:10], h.sha256(b'$NAME').hexdigest()[:10]))")"
NODE_PIDS=()
NETNS=()
CLUSTER_UP=0

# Every `ray` CLI call runs in the head's network namespace: it is the only way in. Its config
# cache (ray-config-<hash>, in Python's tempdir) goes to the temp dir; the local provider's
# state stays in /tmp/ray/cluster-<name>.{state,lock} (RAY_TMPDIR=/tmp, else TMPDIR would move
# it): ray up mounts the state file on the head at that same path. Cleanup removes both.
client() {
  ip netns exec "$NS_H" env TMPDIR="$WORK/tmp" RAY_TMPDIR=/tmp RAY_USAGE_STATS_ENABLED=0 \
    RAY_UP_enable_autoscaler_v2=0 "$@"
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$CLUSTER_UP" -eq 1 ]; then
    log "cleanup: ray down"
    client timeout 120 ray down -y "$YAML" >"$WORK/down.log" 2>&1 || tail -n 20 "$WORK/down.log" >&2
  fi
  for s in "$CTRL"/*; do                       # ssh masters linger 10 s (ControlPersist)
    [ -S "$s" ] && ip netns exec "$NS_H" ssh -o ControlPath="$s" -O exit x >/dev/null 2>&1 || true
  done
  for pid in "${NODE_PIDS[@]}"; do             # unshare -> sshd = PID 1 of the machine
    local child
    child="$(cat "/proc/$pid/task/$pid/children" 2>/dev/null || true)"
    [ -n "$child" ] && kill -TERM $child 2>/dev/null || true
  done
  for pid in "${NODE_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true      # --kill-child: its sshd dies, and the machine
  done
  for ns in "${NETNS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$CTRL" "$WORK" "/tmp/ray/cluster-$NAME.state" "/tmp/ray/cluster-$NAME.lock"
  rmdir "$(dirname "$CTRL")" 2>/dev/null || true
  [ "$rc" -eq 0 ] && log "done: results in $OUT" || log "FAILED (exit $rc); cleaned up"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "workdir $WORK, cluster $NAME, head $HEAD_IP${WORKER_IP:+, worker $WORKER_IP}"
mkdir "$WORK/tmp"
ssh-keygen -q -t ed25519 -N '' -C "rayup-$ID" -f "$WORK/key"
ssh-keygen -q -t ed25519 -N '' -C "rayup-host-$ID" -f "$WORK/host_key"
HOME="$WORK/tokenhome" ray get-auth-token --generate >/dev/null 2>&1
mv "$WORK/tokenhome/.ray/auth_token" "$WORK/auth_token" && rm -rf "$WORK/tokenhome"
chmod 600 "$WORK/auth_token"

# --- the machines: netns + sshd in its own PID / mount namespace ---------------------------
ip netns add "$NS_H"; NETNS+=("$NS_H")
ip -n "$NS_H" link set lo up
if [ "$WORKERS" -eq 1 ]; then
  ip netns add "$NS_W"; NETNS+=("$NS_W")
  ip -n "$NS_W" link set lo up
  ip link add rayup0 netns "$NS_H" type veth peer name rayup0 netns "$NS_W"
  ip -n "$NS_H" addr add "$HEAD_IP/24" dev rayup0 && ip -n "$NS_H" link set rayup0 up
  ip -n "$NS_W" addr add "$WORKER_IP/24" dev rayup0 && ip -n "$NS_W" link set rayup0 up
fi
mkdir -p /run/sshd                              # sshd's privilege-separation directory

# The Python environment is shown inside the private home when it lives under the real one.
PY_TOP=""
case "$PY_PREFIX/" in "$REAL_HOME"/*) PY_TOP="$REAL_HOME/$(echo "${PY_PREFIX#"$REAL_HOME"/}" | cut -d/ -f1)" ;; esac

start_machine() {  # NAME NETNS IP
  local nd="$WORK/$1" ns="$2" ip="$3"
  mkdir -p "$nd/home/.ssh" "$nd/ray" "$nd/tmp"
  chmod 755 "$nd" "$nd/home"; chmod 700 "$nd/home/.ssh"
  cp "$WORK/key.pub" "$nd/home/.ssh/authorized_keys"
  # Ray's command runner sources ~/.bashrc: this Python first; Python's tempfile (the head's
  # ray-config cache) in the machine's own tmp; Ray's own /tmp/ray is the private bind below.
  printf 'export PATH="%s:$PATH" TMPDIR="%s" RAY_TMPDIR=/tmp RAY_USAGE_STATS_ENABLED=0\n' \
    "$(dirname "$PY")" "$nd/tmp" >"$nd/home/.bashrc"
  local bind_py=""
  if [ -n "$PY_TOP" ]; then
    mkdir -p "$nd/home/${PY_TOP#"$REAL_HOME"/}"
    bind_py="mount --bind '$PY_TOP' '$nd/home/${PY_TOP#"$REAL_HOME"/}' &&"
  fi
  cat >"$nd/sshd_config" <<EOF
ListenAddress $ip:22
HostKey $WORK/host_key
PidFile $nd/sshd.pid
AuthorizedKeysFile .ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
X11Forwarding no
PrintMotd no
EOF
  mkdir -p /tmp/ray
  ip netns exec "$ns" unshare --pid --fork --mount --mount-proc --kill-child -- bash -c \
    "mount --bind '$nd/ray' /tmp/ray && $bind_py mount --rbind '$nd/home' '$REAL_HOME' && exec '$SSHD' -D -e -f '$nd/sshd_config'" \
    >"$nd/sshd.log" 2>&1 &
  NODE_PIDS+=($!)
  for _ in $(seq 100); do
    if client ssh -i "$WORK/key" -o BatchMode=yes -o IdentitiesOnly=yes -o ConnectTimeout=2 \
        -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
        "$USER_NAME@$ip" true 2>/dev/null; then
      log "$1: sshd on $ip:22 in namespace $ns"; return 0
    fi
    sleep 0.2
  done
  cat "$nd/sshd.log" >&2; echo "ray_up_loopback: sshd on $ip did not come up" >&2; return 1
}
start_machine head "$NS_H" "$HEAD_IP"
[ "$WORKERS" -eq 1 ] && start_machine worker "$NS_W" "$WORKER_IP"

python3 "$REPO/scripts/loopback_yaml.py" --out "$YAML" --name "$NAME" --head-ip "$HEAD_IP" \
  ${WORKER_IP:+--worker-ip "$WORKER_IP"} --user "$USER_NAME" --key "$WORK/key" \
  --token "$WORK/auth_token" --repo "$REPO" --gcs-port "$GCS_PORT"

# --- the README's steps ----------------------------------------------------------------------
log "ray up"
CLUSTER_UP=1
client ray up -y --no-config-cache "$YAML"

if [ "$WORKERS" -eq 1 ]; then
  log "waiting for the worker to join"
  COUNT='import ray; ray.init(address="auto", logging_level="ERROR"); print("ALIVE_NODES", sum(n["Alive"] for n in ray.nodes()))'
  DEADLINE=$(( $(date +%s) + 300 ))
  while :; do
    n="$(client ray exec "$YAML" "python3 -c '$COUNT'" 2>/dev/null | sed -n 's/.*ALIVE_NODES \([0-9]*\).*/\1/p' | tail -n 1)"
    [ "${n:-0}" -ge 2 ] && break
    if [ "$(date +%s)" -gt "$DEADLINE" ]; then
      client ray exec "$YAML" 'tail -n 30 /tmp/ray/session_latest/logs/monitor.out' >&2 || true
      echo "ray_up_loopback: the worker did not join within 300 s" >&2; exit 1
    fi
    sleep 5
  done
  log "the worker has joined"
fi

log "ray status from outside the head, with the token"
client env RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH="$WORK/auth_token" \
  ray status --address "$HEAD_IP:$GCS_PORT"
if client env RAY_AUTH_MODE=token RAY_AUTH_TOKEN=not-the-token \
    timeout 60 ray status --address "$HEAD_IP:$GCS_PORT" >"$WORK/status-no-token.log" 2>&1; then
  echo "ray_up_loopback: 'ray status' with a wrong token was NOT refused" >&2; exit 1
fi
log "... and with a wrong token: refused, as it should be: $(grep -v '^\s*$' "$WORK/status-no-token.log" | tail -n 1 | cut -c1-160)"

log "ray exec: the smoke sweep on the head"
# Trials on a worker write their checkpoints to sweep.storage_path, which must be storage that
# every node reaches under one name (NFS, s3://): the head's own disk is not. Here: a directory
# of the real /tmp, which every "machine" sees, as NFS would be.
mkdir -p "$WORK/storage"
EXTRA="$(printf ' %q' --set "sweep.storage_path=$WORK/storage" "${SWEEP_ARGS[@]}")"
client ray exec "$YAML" "cd ~/routesweep && python -m sweep.run --smoke-test --address auto --out results/loopback$EXTRA"

log "ray rsync-down"
mkdir -p "$OUT"
client ray rsync-down "$YAML" '~/routesweep/results/loopback/' "$OUT/"
python3 - "$OUT/manifest.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
bad = [t for t in m["trials"] if t["status"] != "ok"]
if m["status"] != "complete" or bad:
    sys.exit(f"ray_up_loopback: the sweep ended '{m['status']}', {len(bad)} trial(s) not ok")
EOF

log "ray down"
client ray down -y "$YAML"
CLUSTER_UP=0
