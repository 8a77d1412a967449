# shellcheck shell=bash
# Shared by the scripts (sourced, not run): errors, progress, the venv's
# Python and the resolved config, read from the one resolver in Python.

SAGEMAKE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# DEBUG=1 (any value but empty or 0) traces each command, file:line first; the Python steps trace themselves
# (src/sagemake/debug.py). No trace may show a credential: code that handles one runs with tracing off
# (load_config below, fetch_with_token in prepare.sh).
PS4='+ ${BASH_SOURCE##*/}:${LINENO}: '
if [[ "${DEBUG:-0}" != 0 ]]; then set -x; fi

# die MESSAGE...: the program's name and the message on stderr, exit 1.
die() {
  printf '%s: %s\n' "${0##*/}" "$*" >&2
  exit 1
}

# help_if_asked ARGS...: with -h or --help, print the script's Summary and Usage lines and exit 0.
help_if_asked() {
  if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n 's/^# \{0,1\}//;2,3p' "$0"
    exit 0
  fi
}

# say MESSAGE...: progress for a person, on stderr.
say() {
  printf '==> %s\n' "$*" >&2
}

# with_progress WHAT COMMAND...: run COMMAND, saying "WHAT: still at it (N s)" every 10 s until it ends (a long
# step that prints nothing of its own, such as a quiet pip install, is not silence); its exit status.
with_progress() {
  local what="$1" ticker status=0
  shift
  (
    elapsed=0
    while sleep 10; do
      elapsed=$((elapsed + 10))
      say "$what: still at it ($elapsed s)"
    done
  ) &
  ticker=$!
  "$@" || status=$?
  kill "$ticker" 2>/dev/null || true
  wait "$ticker" 2>/dev/null || true
  return "$status"
}

# venv_bin: the bin folder of the project's virtualenv (VENV, default .venv), which `make setup` made.
venv_bin() {
  local venv="${VENV:-.venv}"
  [[ "$venv" == /* ]] || venv="$SAGEMAKE_ROOT/$venv"
  [[ -x "$venv/bin/python" ]] || die "no virtualenv at $venv: run \`make setup\` first"
  printf '%s\n' "$venv/bin"
}

# py ARGS...: the project's Python (sagemake is installed in it by `make setup`), in the project's folder.
py() {
  local bin
  bin="$(venv_bin)"
  (cd "$SAGEMAKE_ROOT" && "$bin/python" "$@")
}

# load_config: export every resolved setting (defaults < .env < .env.<ENV> < environment).
# Not traced: the AWS_* variables of the settings files come with them (`make config` shows the settings).
load_config() {
  { local tracing="$-"; set +x; } 2>/dev/null
  local exports
  exports="$(py -m sagemake config --export)" || exit 2
  eval "$exports"
  if [[ "$tracing" == *x* ]]; then set -x; fi
}
