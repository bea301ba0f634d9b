#!/usr/bin/env bash
# lab.sh: N real hosts on one machine, for RSwarm's multi-host tests and for trying a fleet by hand.
#
#   scripts/lab.sh up N          bring up hosts ${PREFIX}n1..${PREFIX}nN (N >= 1), idempotent
#   scripts/lab.sh ls            one line per host that is up: NAME ADDRESS DOCKER_HOST SSH_PORT
#   scripts/lab.sh exec NAME CMD...   run CMD on that host (its network, mount and UTS namespaces,
#                                DOCKER_HOST set to its engine)
#   scripts/lab.sh down          stop everything this lab started, by PID; succeeds when nothing is up
#
# Each host is a network namespace with its own dockerd (own data and exec roots, own engine key,
# own cgroup parent, rswarm/busybox:latest imported) and its own OpenSSH server. The hosts sit on a
# bridge that lives in a namespace of its own (${PREFIX}sw), with no route out: the host's network
# namespace, firewall and Docker Engine are never touched. See ../../shared/reference/swarm-lab.md.
#
# Each host's dockerd and sshd share one private mount namespace in which
#   - /run is a fresh tmpfs, so /var/run/docker.sock is that host's engine (docker over SSH and
#     `lab.sh exec NAME docker ...` both talk to it) and nothing of the machine's /run is shared;
#   - $RSWARM_LAB_DIR/NAME/rswarm is mounted at /var/lib/rswarm, so what one host keeps there is not
#     seen by the others.
#
# Settings (environment), so that two labs can run side by side:
#   RSWARM_LAB_DIR     lab directory (default: ${TMPDIR:-/tmp}/rswarm-lab-$RSWARM_LAB_PREFIX).
#                      Keep it short: unix socket paths under it must stay below 108 bytes.
#   RSWARM_LAB_PREFIX  name prefix (default rs): namespaces ${PREFIX}sw and ${PREFIX}n1..N; the
#                      hosts' names (hostnames, swarm node names) are ${PREFIX}n1..N.
#   RSWARM_LAB_SUBNET  first three octets of the lab LAN (default 10.231.0); host i gets
#                      SUBNET.(10+i)/24, so 10.231.0.11 .. 10.231.0.19 for N <= 9 (N <= 200 works).
#   RSWARM_LAB_SSH_PORT  port of every host's sshd on its lab address (default 22).
#   RSWARM_LAB_DOCKERD_ARGS  extra dockerd flags for every host.
#   RSWARM_CRIU_DIR    a directory put first on every host's dockerd PATH, so that its engine (runc)
#                      uses the criu found there for checkpoints: a CRIU >= 4.1 where the system's
#                      is too old for the kernel (live migration). Unset: the system's PATH. It
#                      applies to engines this `up` starts (not to hosts already up).
#
# Files in the lab directory: ssh/id_ed25519{,.pub} (the client key, authorised for root on every
# host), ssh/known_hosts (every host's key under its name and address), NAME/{docker.sock,
# docker.pid,dockerd.log,sshd.pid,sshd.log,data,exec,rswarm}.
#   ssh -i $LAB/ssh/id_ed25519 -o UserKnownHostsFile=$LAB/ssh/known_hosts -p PORT root@ADDRESS
# from inside another lab host (`lab.sh exec rsn1 ssh ...`).
set -euo pipefail

PREFIX=${RSWARM_LAB_PREFIX:-rs}
LAB=${RSWARM_LAB_DIR:-${TMPDIR:-/tmp}/rswarm-lab-$PREFIX}
SUBNET=${RSWARM_LAB_SUBNET:-10.231.0}
SSH_PORT=${RSWARM_LAB_SSH_PORT:-22}
SWNS=${PREFIX}sw
IMAGE=rswarm/busybox:latest
SELF=$(readlink -f "${BASH_SOURCE[0]}")

die() { printf 'lab: %s\n' "$*" >&2; exit 1; }
name_of() { echo "${PREFIX}n$1"; }
addr_of() { echo "$SUBNET.$((10 + $1))"; }
dir_of() { echo "$LAB/$(name_of "$1")"; }
sock_of() { echo "unix://$(dir_of "$1")/docker.sock"; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
d() { local i=$1; shift; docker -H "$(sock_of "$i")" "$@"; }

# index_of NAME: the host number of NAME, or fail.
index_of() {
  local n=${1#"$PREFIX"n}
  [[ "$1" == "${PREFIX}n"* && "$n" =~ ^[1-9][0-9]*$ ]] || die "no such lab host: $1 (hosts are ${PREFIX}n1..)"
  echo "$n"
}

# hosts: the numbers of the hosts whose dockerd is running, in order.
hosts() {
  local f i
  for f in "$LAB/${PREFIX}n"*/docker.pid; do
    [ -f "$f" ] || continue
    i=$(basename "$(dirname "$f")"); i=${i#"$PREFIX"n}
    [[ "$i" =~ ^[0-9]+$ ]] && alive "$f" && echo "$i"
  done | sort -n
}

line() { printf '%s %s %s %s\n' "$(name_of "$1")" "$(addr_of "$1")" "$(sock_of "$1")" "$SSH_PORT"; }

# The image's root filesystem: static busybox with all its applets (as scripts/setup.sh makes it).
rootfs_tar() {
  local tar=$LAB/rootfs.tar root
  [ -s "$tar" ] && return 0
  root=$(mktemp -d "$LAB/rootfs.XXXXXX")
  mkdir -p "$root/bin" "$root/tmp" "$root/etc"
  cp /bin/busybox "$root/bin/busybox"
  for a in $("$root/bin/busybox" --list); do [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"; done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  tar -C "$root" -cf "$tar.tmp" . && mv "$tar.tmp" "$tar"
  rm -rf "$root"
}

# The client key pair, shared by every host's authorized_keys.
client_key() {
  mkdir -p "$LAB/ssh"; chmod 700 "$LAB/ssh"
  [ -f "$LAB/ssh/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C "rswarm-lab-$PREFIX" -f "$LAB/ssh/id_ed25519"
  cp "$LAB/ssh/id_ed25519.pub" "$LAB/ssh/authorized_keys"
}

net_up() {
  if [ ! -e "/run/netns/$SWNS" ]; then
    ip netns add "$SWNS"
    ip netns exec "$SWNS" sysctl -qw net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-ip6tables=0 net.bridge.bridge-nf-call-arptables=0 2>/dev/null || true
    ip -n "$SWNS" link set lo up
    ip -n "$SWNS" link add br0 type bridge
    ip -n "$SWNS" link set br0 up
  fi
  local i=$1 ns; ns=$(name_of "$i")
  if [ ! -e "/run/netns/$ns" ]; then
    ip netns add "$ns"
    ip -n "$SWNS" link add "v$i" type veth peer name eth0 netns "$ns"
    ip -n "$SWNS" link set "v$i" master br0 up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$(addr_of "$i")/24" dev eth0
    ip -n "$ns" link set eth0 up
  fi
}

# inner I: runs inside host I's network namespace and fresh mount+UTS namespaces; ends in dockerd.
inner() {
  local i=$1 b; b=$(dir_of "$i")
  hostname "$(name_of "$i")"
  mount -t tmpfs -o mode=0755 "$(name_of "$i")-run" /run
  mkdir -p /run/docker /run/containerd /run/sshd
  mkdir -p /var/lib/rswarm 2>/dev/null || true
  mount --bind "$b/rswarm" /var/lib/rswarm
  [ -f "$LAB/hosts" ] || : >"$LAB/hosts"
  mount --bind "$LAB/hosts" /etc/hosts
  export DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1
  if [ -n "${RSWARM_CRIU_DIR:-}" ]; then
    [ -x "$RSWARM_CRIU_DIR/criu" ] || die "RSWARM_CRIU_DIR=$RSWARM_CRIU_DIR has no executable criu"
    export PATH="$RSWARM_CRIU_DIR:$PATH"
  fi
  # shellcheck disable=SC2086
  exec dockerd --experimental \
    --data-root "$b/data" --exec-root "$b/exec" --pidfile "$b/docker.pid" \
    -H "unix://$b/docker.sock" -H unix:///run/docker.sock \
    --bip "172.30.$i.1/24" --default-address-pool base=172.29.0.0/16,size=24 \
    --cgroup-parent "/$(name_of "$i")" --config-file "$b/daemon.json" \
    --swarm-default-advertise-addr "$(addr_of "$i")" \
    ${RSWARM_LAB_DOCKERD_ARGS:-}
}

host_up() {
  local i=$1 b; b=$(dir_of "$i")
  mkdir -p "$b/data" "$b/exec" "$b/rswarm"
  [ -f "$b/daemon.json" ] || printf '{"deprecated-key-path": "%s/key.json"}\n' "$b" >"$b/daemon.json"
  if ! alive "$b/docker.pid"; then
    rm -rf "$b/data/swarm" "$b/docker.pid"   # an old swarm state makes dockerd block ~20 s at start
    setsid nsenter --net="/run/netns/$(name_of "$i")" -- unshare --mount --uts --propagation private -- \
      "$SELF" __inner "$i" >>"$b/dockerd.log" 2>&1 </dev/null &
    local l=$! k
    for k in $(seq 1 300); do
      d "$i" version >/dev/null 2>&1 && break
      kill -0 "$l" 2>/dev/null || { tail -5 "$b/dockerd.log" >&2; die "$(name_of "$i"): dockerd exited, see $b/dockerd.log"; }
      sleep 0.1
    done
    d "$i" version >/dev/null 2>&1 || die "$(name_of "$i"): dockerd did not answer in 30 s, see $b/dockerd.log"
  fi
  d "$i" image inspect "$IMAGE" >/dev/null 2>&1 || d "$i" import -c 'CMD ["/bin/sh"]' "$LAB/rootfs.tar" "$IMAGE" >/dev/null
  sshd_up "$i"
}

sshd_up() {
  local i=$1 b; b=$(dir_of "$i")
  alive "$b/sshd.pid" && return 0
  [ -f "$b/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C "$(name_of "$i")" -f "$b/ssh_host_ed25519_key"
  cat >"$b/sshd_config" <<EOF
ListenAddress $(addr_of "$i"):$SSH_PORT
HostKey $b/ssh_host_ed25519_key
PidFile $b/sshd.pid
AuthorizedKeysFile $LAB/ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
EOF
  nsenter --target "$(cat "$b/docker.pid")" --net --mount --uts -- /usr/sbin/sshd -f "$b/sshd_config" -E "$b/sshd.log"
  local k
  for k in $(seq 1 50); do alive "$b/sshd.pid" && return 0; sleep 0.1; done
  die "$(name_of "$i"): sshd did not start, see $b/sshd.log"
}

known_hosts() {
  local i h
  for i in $(hosts); do
    h="$(name_of "$i"),$(addr_of "$i")"
    [ "$SSH_PORT" = 22 ] || h="[$(name_of "$i")]:$SSH_PORT,[$(addr_of "$i")]:$SSH_PORT"
    printf '%s %s\n' "$h" "$(cut -d' ' -f1,2 "$(dir_of "$i")/ssh_host_ed25519_key.pub")"
  done >"$LAB/ssh/known_hosts.tmp"
  mv "$LAB/ssh/known_hosts.tmp" "$LAB/ssh/known_hosts"
}

# /etc/hosts is shared with the machine; the lab's names go into each host's own view instead.
hosts_file() {
  local i
  # written in place: each host has this file bind-mounted at /etc/hosts
  { echo "127.0.0.1 localhost"; for i in $(hosts); do echo "$(addr_of "$i") $(name_of "$i")"; done; } >"$LAB/hosts"
}

cmd_up() {
  local n=${1:-}
  [[ "$n" =~ ^[1-9][0-9]*$ && "$n" -le 200 ]] || die "usage: lab.sh up N (1 <= N <= 200)"
  [ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces, dockerd)"
  for t in ip nsenter unshare dockerd docker ssh-keygen /usr/sbin/sshd busybox; do
    command -v "$t" >/dev/null || die "$t is missing (scripts/setup.sh installs it)"
  done
  [ -z "${RSWARM_CRIU_DIR:-}" ] || [ -x "$RSWARM_CRIU_DIR/criu" ] || die "RSWARM_CRIU_DIR=$RSWARM_CRIU_DIR has no executable criu"
  mkdir -p "$LAB"; chmod 700 "$LAB"
  rootfs_tar; client_key; [ -f "$LAB/hosts" ] || : >"$LAB/hosts"
  local i pids=()
  for i in $(seq 1 "$n"); do net_up "$i"; done
  for i in $(seq 1 "$n"); do host_up "$i" & pids+=($!); done
  local rc=0 p; for p in "${pids[@]}"; do wait "$p" || rc=1; done
  [ $rc -eq 0 ] || die "some hosts did not come up"
  known_hosts; hosts_file
  cmd_ls
}

cmd_ls() { local i; for i in $(hosts); do line "$i"; done; }

cmd_exec() {
  [ $# -ge 2 ] || die "usage: lab.sh exec NAME CMD..."
  local i b; i=$(index_of "$1"); shift; b=$(dir_of "$i")
  alive "$b/docker.pid" || die "$(name_of "$i") is not up (lab.sh up N)"
  exec nsenter --target "$(cat "$b/docker.pid")" --net --mount --uts --wd="$PWD" -- \
    env DOCKER_HOST="$(sock_of "$i")" RSWARM_LAB_HOST="$(name_of "$i")" "$@"
}

stop_pid() {
  local f=$1 p k
  [ -f "$f" ] || return 0
  p=$(cat "$f")
  if kill -0 "$p" 2>/dev/null; then
    kill -TERM "$p" 2>/dev/null || true
    for k in $(seq 1 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
  fi
  rm -f "$f"
}

host_down() {
  local i=$1 b c; b=$(dir_of "$i")
  stop_pid "$b/sshd.pid"
  if alive "$b/docker.pid"; then
    c=$(d "$i" ps -aq 2>/dev/null || true)
    # shellcheck disable=SC2086
    [ -z "$c" ] || d "$i" rm -f $c >/dev/null 2>&1 || true
  fi
  stop_pid "$b/docker.pid"
  local cg
  for cg in /sys/fs/cgroup/*/"$(name_of "$i")"; do
    [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  if grep -q " $b/" /proc/self/mountinfo; then
    echo "lab: mounts left under $b, not removing it" >&2
  else
    rm -rf "$b"
  fi
}

cmd_down() {
  local f i pids=()
  for f in "$LAB/${PREFIX}n"*; do
    [ -d "$f" ] || continue
    i=${f##*/}; i=${i#"$PREFIX"n}
    [[ "$i" =~ ^[0-9]+$ ]] || continue
    host_down "$i" & pids+=($!)
  done
  local p; for p in "${pids[@]}"; do wait "$p" || true; done
  for f in /run/netns/"${PREFIX}"n*; do
    [ -e "$f" ] || continue
    [[ "${f##*/}" =~ ^${PREFIX}n[0-9]+$ ]] && ip netns del "${f##*/}" 2>/dev/null || true
  done
  [ -e "/run/netns/$SWNS" ] && ip netns del "$SWNS" 2>/dev/null || true
  rm -rf "$LAB/ssh" "$LAB/hosts" "$LAB"/rootfs.*
  [ -d "$LAB" ] && rm -f "$LAB/rootfs.tar" && rmdir "$LAB" 2>/dev/null || true
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  ls) cmd_ls ;;
  exec) shift; cmd_exec "$@" ;;
  down) cmd_down ;;
  __inner) inner "$2" ;;
  *) die "usage: lab.sh up N | ls | exec NAME CMD... | down" ;;
esac
