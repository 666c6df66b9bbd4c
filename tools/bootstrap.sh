#!/usr/bin/env bash
# Prepares this machine to run the lab and the test suite: host packages, a running
# Docker engine, the project virtualenv and the cached base images. Sourced by bin/lab
# and bin/test; safe to run again (every step checks before it acts).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${JHUB_VENV:-$REPO_ROOT/.venv}"
STATE_DIR="${JHUB_STATE_DIR:-$REPO_ROOT/.cache}"
DOCKERD_LOG="${JHUB_DOCKERD_LOG:-/var/log/jhub-lab-dockerd.log}"
export REPO_ROOT VENV STATE_DIR

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "'$*' needs root: run as root or install sudo"
  fi
}

host_packages_missing() {
  local missing=()
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  command -v git >/dev/null 2>&1 || missing+=(git)
  python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
  if ! docker info >/dev/null 2>&1 && ! command -v dockerd >/dev/null 2>&1; then
    missing+=(docker.io)
  fi
  printf '%s\n' "${missing[@]}"
}

ensure_host_packages() {
  local missing
  command -v python3 >/dev/null 2>&1 || missing="python3"
  missing="${missing:-} $(host_packages_missing | tr '\n' ' ')"
  missing="$(echo "$missing" | xargs)"
  [ -z "$missing" ] && return 0
  log "Installing host packages: $missing"
  as_root apt-get update -qq
  # shellcheck disable=SC2086
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    $missing ca-certificates python3 >/dev/null
}

ensure_docker_engine() {
  docker info >/dev/null 2>&1 && return 0
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    log "Starting the Docker engine (systemd)"
    as_root systemctl start docker || true
  fi
  if ! docker info >/dev/null 2>&1; then
    log "Starting the Docker engine (dockerd, log in $DOCKERD_LOG)"
    as_root sh -c "nohup dockerd --host unix:///var/run/docker.sock >>'$DOCKERD_LOG' 2>&1 &"
  fi
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return 0
    sleep 1
  done
  die "the Docker engine did not answer within 60 s; see $DOCKERD_LOG"
}

# Every systemd container holds inotify instances; the kernel's default of 128 per user
# runs out with the lab and two scenarios running, and new containers then fail to boot.
ensure_inotify_limits() {
  local instances watches
  instances="$(sysctl -n fs.inotify.max_user_instances 2>/dev/null || echo 0)"
  watches="$(sysctl -n fs.inotify.max_user_watches 2>/dev/null || echo 0)"
  if [ "$instances" -lt 8192 ] || [ "$watches" -lt 1048576 ]; then
    log "Raising the inotify limits for the containers' systemd"
    as_root sysctl -q -w fs.inotify.max_user_instances=8192 fs.inotify.max_user_watches=1048576
  fi
}

ensure_venv() {
  local stamp="$VENV/.requirements.sha256" want
  want="$(sha256sum "$REPO_ROOT/requirements.txt" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  log "Installing the pinned Python tooling into $VENV"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REPO_ROOT/requirements.txt"
  echo "$want" >"$stamp"
}

ensure_images() {
  log "Checking the lab base images (rebuilt only when their recipe changed)"
  as_root "$VENV/bin/python" "$REPO_ROOT/tools/images.py" ensure
}

bootstrap() {
  ensure_host_packages
  ensure_docker_engine
  ensure_inotify_limits
  ensure_venv
  ensure_images
  export PATH="$VENV/bin:$PATH"
  export ANSIBLE_CONFIG="$REPO_ROOT/ansible.cfg"
  mkdir -p "$STATE_DIR"
}
