#!/usr/bin/env bash
# setup.sh: install and start everything RSwarm needs on a Debian 12 machine.
# Idempotent: it only installs what is missing and says plainly what it did.
#   - Debian packages: docker.io, libzmq3-dev, pkg-config, busybox-static, docker-compose, iproute2, criu,
#     openssh-server (the lab hosts' sshd), curl (the fleet tests),
#     chromium (headless, for the Swagger UI test)
#   - a Docker Engine answering on /var/run/docker.sock (dockerd --experimental)
#   - the local image rswarm/busybox:latest, made with `docker import` (nothing can be pulled)
set -euo pipefail

SUDO=()
if [ "$(id -u)" -ne 0 ]; then SUDO=(sudo); fi
say() { printf 'setup: %s\n' "$*"; }

# Go is the one thing this script does not install: it comes from go.dev or the machine image.
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH=/usr/local/go/bin:$PATH
fi
command -v go >/dev/null 2>&1 || { say "Go is not installed (need Go 1.26 at /usr/local/go or on PATH)"; exit 1; }

PKGS=(docker.io libzmq3-dev pkg-config busybox-static docker-compose iproute2 criu openssh-server curl chromium ${RSWARM_EXTRA_PKGS:-})
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  say "installed: ${missing[*]}"
else
  say "Debian packages already installed: ${PKGS[*]}"
fi

# The Docker Engine. On machines without systemd nobody starts it, so start it here.
DOCKER=(docker)
if ! docker version >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ] && "${SUDO[@]}" docker version >/dev/null 2>&1; then
    DOCKER=("${SUDO[@]}" docker)
  else
    say "no Docker Engine answers: starting dockerd --experimental (log: /var/log/rswarm-dockerd.log)"
    "${SUDO[@]}" sh -c 'setsid dockerd --experimental >>/var/log/rswarm-dockerd.log 2>&1 </dev/null &'
    for _ in $(seq 1 300); do
      "${SUDO[@]}" docker version >/dev/null 2>&1 && break
      sleep 0.2
    done
    "${SUDO[@]}" docker version >/dev/null 2>&1 || { say "dockerd did not answer within 60 s; see /var/log/rswarm-dockerd.log"; tail -20 /var/log/rswarm-dockerd.log || true; exit 1; }
    say "dockerd started: $("${SUDO[@]}" docker version --format '{{.Server.Version}}, API {{.Server.APIVersion}}')"
    [ "$(id -u)" -ne 0 ] && DOCKER=("${SUDO[@]}" docker)
  fi
else
  say "Docker Engine already running: $(docker version --format '{{.Server.Version}}, API {{.Server.APIVersion}}')"
fi
if [ "$("${DOCKER[@]}" info --format '{{.ExperimentalBuild}}' 2>/dev/null)" != "true" ]; then
  say "note: the running engine is not in experimental mode; checkpoints need dockerd --experimental"
fi

# The local test image: a static busybox with all its applets, imported (no registry is reachable).
IMAGE=rswarm/busybox:latest
if "${DOCKER[@]}" image inspect "$IMAGE" >/dev/null 2>&1; then
  say "image $IMAGE already present"
else
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/bin" "$root/tmp" "$root/etc"
  cp /bin/busybox "$root/bin/busybox"
  for a in $("$root/bin/busybox" --list); do [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"; done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  tar -C "$root" -c . | "${DOCKER[@]}" import -c 'CMD ["/bin/sh"]' - "$IMAGE" >/dev/null
  say "image $IMAGE built with docker import from busybox-static"
fi
say "ready"
