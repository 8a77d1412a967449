#!/usr/bin/env bash
# Summary: build the private dependencies (PRIVATE_DEPS) into wheels under build/wheels/, outside the image.
# Usage: scripts/prepare.sh
#
# Each PRIVATE_DEPS word is a git URL pinned to a tag or a full commit hash: URL@REF, e.g.
# git@github.com:acme/features.git@v1.4.0 or https://github.com/acme/features.git@<40-hex commit>.
# Each is fetched shallowly at that ref, built with `pip wheel`, and listed in
# build/wheels/private.txt, which the Dockerfile installs. Only wheels reach
# the image: no .git folder, no key, no token. SSH uses your agent or keys
# (CircleCI's add_ssh_keys); HTTPS uses GIT_HTTPS_TOKEN when set, passed to
# git through its environment, never on a command line, in a file or a log,
# and never over plain http:// (refused while the token is set).
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

IMAGE_WHEELS="/opt/program/wheels"  # where docker/Dockerfile copies build/wheels/
WORK=""                             # the temporary folder, removed on exit

# fetch_with_token URL ARGS...: git ARGS, with GIT_HTTPS_TOKEN as an HTTP header for URL's host alone,
# given through git's environment (git 2.31 or newer). Tracing is off here: DEBUG=1 must not show it.
fetch_with_token() {
  { local tracing="$-"; set +x; } 2>/dev/null
  local url="$1" host status=0
  shift
  if [[ -n "${GIT_HTTPS_TOKEN:-}" && "$url" == https://* ]]; then
    host="$(printf '%s' "$url" | sed -E 's|^(https://[^/]+/).*|\1|')"
    GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0="http.$host.extraHeader" \
      GIT_CONFIG_VALUE_0="Authorization: Basic $(printf 'x-access-token:%s' "$GIT_HTTPS_TOKEN" | base64 | tr -d '\n')" \
      GIT_TERMINAL_PROMPT=0 git "$@" || status=$?
  else
    GIT_TERMINAL_PROMPT=0 git "$@" || status=$?
  fi
  if [[ "$tracing" == *x* ]]; then set -x; fi
  return "$status"
}

# fetch_pinned URL REF DEST: the tree of REF alone (depth 1), without its history.
fetch_pinned() {
  local url="$1" ref="$2" dest="$3"
  git init -q "$dest"
  if ! fetch_with_token "$url" -C "$dest" fetch -q --depth 1 "$url" "$ref" 2>"$dest.err"; then
    sed 's/^/    /' "$dest.err" >&2
    die "cannot fetch $ref from $url: check that the repository and the ref exist and that your SSH key or GIT_HTTPS_TOKEN can read it"
  fi
  git -C "$dest" checkout -q FETCH_HEAD
}

main() {
  help_if_asked "$@"
  load_config
  local build="$SAGEMAKE_ROOT/build" dep url ref name wheel count=0
  # Pinned refs name fixed content: the same list needs no new wheels.
  if [[ -f "$build/wheels/pinned.txt" && "$(cat "$build/wheels/pinned.txt")" == "$PRIVATE_DEPS" ]]; then
    say "prepare: build/wheels/ is up to date"
    return 0
  fi
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
  local work="$WORK"
  mkdir -p "$work/wheels"
  : >"$work/wheels/private.txt"
  for dep in $PRIVATE_DEPS; do
    url="${dep%@*}"
    ref="${dep##*@}"
    if [[ "$dep" != *@* || -z "$url" || ! "$ref" =~ ^[A-Za-z0-9._/-]+$ ]]; then
      die "PRIVATE_DEPS: '$dep' is not URL@REF: pin it to a tag or commit, e.g. git@github.com:acme/lib.git@v1.0.0"
    fi
    if [[ "$ref" =~ ^[0-9a-f]{7,39}$ ]]; then
      die "PRIVATE_DEPS: '$ref' looks like a short commit hash, which git cannot fetch alone: use the full 40-character hash or a tag"
    fi
    if [[ -n "${GIT_HTTPS_TOKEN:+set}" && "$url" == [Hh][Tt][Tt][Pp]://* ]]; then  # :+ keeps the token out of a trace
      die "PRIVATE_DEPS: $url is plain http://, which would carry GIT_HTTPS_TOKEN unencrypted: use its https:// URL"
    fi
    name="$(basename "$url" .git)"
    say "prepare: $name at $ref"
    fetch_pinned "$url" "$ref" "$work/src/$name"
    # The commit's own time inside the wheel: the same ref gives the same bytes.
    SOURCE_DATE_EPOCH="$(git -C "$work/src/$name" log -1 --format=%ct)" py -m pip wheel --quiet --no-deps --wheel-dir "$work/wheels" "$work/src/$name" ||
      die "could not build a wheel of $name at $ref: see pip's output above"
    count=$((count + 1))
  done
  for wheel in "$work/wheels"/*.whl; do
    [[ -e "$wheel" ]] && printf '%s/%s\n' "$IMAGE_WHEELS" "${wheel##*/}" >>"$work/wheels/private.txt"
  done
  printf '%s' "$PRIVATE_DEPS" >"$work/wheels/pinned.txt"
  # Swap the whole folder in: never half a set of wheels.
  mkdir -p "$build"
  rm -rf "$build/wheels"
  mv "$work/wheels" "$build/wheels"
  say "prepare: $count private dependencies in build/wheels/"
}

[[ "${BASH_SOURCE[0]}" != "$0" ]] || main "$@"
