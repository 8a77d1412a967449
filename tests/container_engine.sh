#!/usr/bin/env bash
# Summary: start or stop a private Docker engine, podman and an image registry, for the container tests.
# Usage: tests/container_engine.sh start DIR | stop DIR
#
# start: installs Debian's docker.io, podman and docker-registry when they are
# missing (as root), starts dockerd with its socket, data and pid file under DIR
# (and a bridge of its own, so published ports work) and a registry on 127.0.0.1 (standing in for ECR's registry), gives podman its
# configuration and storage under DIR, makes an offline stand-in for the base
# image python:3.11-slim when no registry can provide it, and writes DIR/env
# (DOCKER_HOST, TEST_REGISTRY, CONTAINERS_*) to be sourced.
# stop: stops both by their pid files and removes the bridge. Nothing else on the machine is touched.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"

BASE_IMAGE="python:3.11-slim"
CACHE="${SAGEMAKE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sagemake}"

install_missing() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  command -v podman >/dev/null 2>&1 || missing+=(podman)
  command -v runc >/dev/null 2>&1 || missing+=(runc)
  [[ ${#missing[@]} -gt 0 ]] || return 0
  [[ "$(id -u)" -eq 0 ]] || die "needs ${missing[*]}: install them (apt-get install ${missing[*]}) or run as root"
  say "engine: installing ${missing[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

free_port() {
  py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() {
  local what="$1" tries=60
  shift
  until "$@" >/dev/null 2>&1; do
    tries=$((tries - 1))
    [[ $tries -gt 0 ]] || die "$what did not start: see its log in the engine folder"
    sleep 0.5
  done
}

# make_bridge DIR: a bridge of this engine's own (a name and a free 10.213.N.0/24 taken from DIR), so `docker run -p`
# maps a port of this machine to a container's, as on a workstation; prints its name, or nothing when none can be
# made. It has no NAT (no iptables): a container on it reaches this machine alone, so builds and jobs that fetch
# packages use --network host.
make_bridge() {
  local dir="$1" name n taken
  name="sgm$(printf '%s' "$dir" | md5sum | cut -c1-10)"
  taken="$(ip -4 -o addr show 2>/dev/null || true)"
  ip link add "$name" type bridge 2>/dev/null || return 0
  for n in $(seq 1 250 | shuf); do
    [[ "$taken" == *" 10.213.$n."* ]] && continue
    if ip addr add "10.213.$n.1/24" dev "$name" 2>/dev/null && ip link set "$name" up; then
      printf '%s\n' "$name" >"$dir/bridge"
      printf '%s\n' "$name"
      return 0
    fi
  done
  ip link del "$name" 2>/dev/null || true
}

start_engine() {
  local dir="$1" bridge network
  bridge="$(make_bridge "$dir")"
  if [[ -n "$bridge" ]]; then
    network=(--bridge="$bridge" --userland-proxy=true)
  else
    network=(--bridge=none --userland-proxy=false)
    say "engine: no bridge could be made: containers get no mapped ports (only --network host reaches them)"
  fi
  say "engine: starting dockerd (socket $dir/docker.sock)"
  dockerd --data-root "$dir/data" --exec-root "$dir/exec" -H "unix://$dir/docker.sock" \
    --pidfile "$dir/docker.pid" --iptables=false "${network[@]}" --storage-driver=overlay2 \
    >"$dir/dockerd.log" 2>&1 &
  export DOCKER_HOST="unix://$dir/docker.sock"
  wait_for dockerd docker info
}

start_registry() {
  local dir="$1" port
  port="$(free_port)"
  mkdir -p "$dir/registry"
  printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
    "$dir/registry" "$port" >"$dir/registry.yml"
  docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 &
  echo $! >"$dir/registry.pid"
  wait_for "the registry" py -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v2/')"
  TEST_REGISTRY="127.0.0.1:$port"
  say "engine: registry on $TEST_REGISTRY"
}

# debian_mirror: the Debian archive this machine's apt already uses (a company mirror, say), from its sources.
debian_mirror() {
  local mirror file sources=()
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
    [[ -f "$file" ]] && sources+=("$file")
  done
  [[ ${#sources[@]} -gt 0 ]] || die "no apt sources in /etc/apt: debootstrap needs a Debian archive (add your mirror to apt)"
  mirror="$(sed -nE 's/^(deb +(\[[^]]*\] +)?|URIs: +)([a-z]+:[^ ]*debian)\/? .*$/\3/p; s/^URIs: +([a-z]+:[^ ]*debian)\/?$/\1/p' \
    "${sources[@]}" | head -n1 || true)"
  [[ -n "$mirror" ]] || die "no Debian archive in /etc/apt/sources.list*: debootstrap needs one (add your mirror to apt)"
  printf '%s\n' "$mirror"
}

# stand_in_base: python:3.11-slim from Debian bookworm (whose python3 is 3.11), for machines without a registry.
stand_in_base() {
  local rootfs_tar="$CACHE/bookworm-python3.11-rootfs.tar" root mirror
  if [[ ! -f "$rootfs_tar" ]]; then
    mirror="$(debian_mirror)"
    root="$(mktemp -d)"
    say "engine: building the stand-in for $BASE_IMAGE with debootstrap (about 90 s, cached in $CACHE)"
    debootstrap --variant=minbase \
      --include=python3,python3-pip,python3-venv,python-is-python3,ca-certificates,netbase \
      bookworm "$root" "$mirror" >"$CACHE/debootstrap.log" 2>&1 ||
      die "debootstrap failed: see $CACHE/debootstrap.log"
    chroot "$root" dpkg-divert --local --rename --add /usr/lib/python3.11/EXTERNALLY-MANAGED >/dev/null
    local tool
    for tool in python python3 pip pip3; do ln -sf "/usr/bin/$tool" "$root/usr/local/bin/$tool"; done
    # Locally added CAs (a proxy's, say): without them HTTPS from inside a build fails verification.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
      cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
      chroot "$root" update-ca-certificates >/dev/null 2>&1
    fi
    rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*
    tar --numeric-owner -C "$root" -cf "$rootfs_tar.partial" .
    mv "$rootfs_tar.partial" "$rootfs_tar"
    rm -rf "$root"
  fi
  docker import --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' "$rootfs_tar" "$BASE_IMAGE" >/dev/null
  say "engine: $BASE_IMAGE is the offline stand-in (Debian's Python 3.11)"
}

# configure_podman DIR: runc, cgroupfs and storage under DIR; the test registry is plain HTTP on loopback.
configure_podman() {
  local dir="$1"
  printf '[containers]\ndefault_ulimits = ["nproc=32768:32768", "nofile=20000:20000"]\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n' \
    >"$dir/containers.conf"
  printf '[storage]\ndriver = "overlay"\ngraphroot = "%s/podman/storage"\nrunroot = "%s/podman/run"\n' "$dir" "$dir" \
    >"$dir/storage.conf"
  printf '[[registry]]\nlocation = "%s"\ninsecure = true\n' "$TEST_REGISTRY" >"$dir/registries.conf"
  export CONTAINERS_CONF="$dir/containers.conf" CONTAINERS_STORAGE_CONF="$dir/storage.conf" \
    CONTAINERS_REGISTRIES_CONF="$dir/registries.conf"
}

start() {
  local dir="$1"
  mkdir -p "$dir" "$CACHE"
  install_missing
  start_engine "$dir"
  start_registry "$dir"
  configure_podman "$dir"
  if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && ! timeout 60 docker pull -q "$BASE_IMAGE" >/dev/null 2>&1; then
    stand_in_base
  fi
  # podman gets the same base image as docker.
  docker save "$BASE_IMAGE" | podman load -q >/dev/null
  printf 'export %s=%q\n' DOCKER_HOST "$DOCKER_HOST" TEST_REGISTRY "$TEST_REGISTRY" CONTAINERS_CONF "$CONTAINERS_CONF" \
    CONTAINERS_STORAGE_CONF "$CONTAINERS_STORAGE_CONF" CONTAINERS_REGISTRIES_CONF "$CONTAINERS_REGISTRIES_CONF" >"$dir/env"
  say "engine: ready; source $dir/env"
}

stop_pid() {
  local file="$1" pid tries=40
  [[ -f "$file" ]] || return 0
  pid="$(cat "$file")"
  if kill "$pid" 2>/dev/null; then
    while kill -0 "$pid" 2>/dev/null && [[ $tries -gt 0 ]]; do
      sleep 0.25
      tries=$((tries - 1))
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

stop() {
  local dir="$1"
  if [[ -f "$dir/storage.conf" ]]; then
    CONTAINERS_STORAGE_CONF="$dir/storage.conf" CONTAINERS_CONF="$dir/containers.conf" \
      podman system reset -f >/dev/null 2>&1 || true
  fi
  stop_pid "$dir/registry.pid"
  stop_pid "$dir/docker.pid"
  if [[ -d "$dir/exec/netns" ]] && mountpoint -q "$dir/exec/netns/default" 2>/dev/null; then
    umount "$dir/exec/netns/default" || true
  fi
  if [[ -f "$dir/bridge" ]]; then
    ip link del "$(cat "$dir/bridge")" 2>/dev/null || true
    rm -f "$dir/bridge"
  fi
  say "engine: stopped"
}

main() {
  case "${1:-}" in
    -h | --help) sed -n 's/^# \{0,1\}//;2,3p' "${BASH_SOURCE[0]}" ;;
    start | stop)
      [[ $# -eq 2 ]] || die "usage: tests/container_engine.sh start|stop DIR"
      "$1" "$2"
      ;;
    *) die "usage: tests/container_engine.sh start|stop DIR" ;;
  esac
}

[[ "${BASH_SOURCE[0]}" != "$0" ]] || main "$@"
