#!/usr/bin/env bash
# Summary: create the virtualenv (VENV, default .venv) and install a pinned requirements file into it.
# Usage: scripts/setup_venv.sh PYTHON REQUIREMENTS_FILE [--package]
#
# `make setup` and `make test` call this only when a requirements file changed.
# With --package, sagemake itself (pyproject.toml) is installed too, editable and
# without dependencies (the pinned requirements are its dependencies), so
# `python -m sagemake` runs this checkout's code.
# A virtualenv left half-made (an interrupted first run) is made again; two
# first runs at once take turns (where `flock` exists).
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

MIN_PYTHON="3.11"

main() {
  help_if_asked "$@"
  [[ $# -eq 2 || ( $# -eq 3 && "$3" == --package ) ]] ||
    die "usage: scripts/setup_venv.sh PYTHON REQUIREMENTS_FILE [--package]"
  local python="$1" requirements="$2" package="${3:-}" venv="${VENV:-.venv}"
  [[ "$venv" == /* ]] || venv="$SAGEMAKE_ROOT/$venv"
  command -v "$python" >/dev/null 2>&1 ||
    die "$python not found: install Python $MIN_PYTHON or newer, or pass PYTHON=/path/to/python3"
  "$python" -c "import sys; sys.exit(sys.version_info < (${MIN_PYTHON/./, }))" ||
    die "$python is Python $("$python" -c 'import platform; print(platform.python_version())'), older than $MIN_PYTHON: install a newer one, or pass PYTHON=/path/to/python3"
  mkdir -p "$(dirname "$venv")"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$venv.lock"
    flock 9 # another first run is making it: wait, then find it made
  fi
  if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    rm -rf "$venv"
    say "setup: creating the virtualenv in $venv"
    "$python" -m venv "$venv" || die "could not create $venv: on Debian/Ubuntu, apt-get install python3-venv"
  fi
  say "setup: installing $requirements (pinned) into $venv"
  with_progress setup "$venv/bin/python" -m pip install --disable-pip-version-check --quiet --progress-bar off \
    -r "$SAGEMAKE_ROOT/$requirements" ||
    die "pip could not install $requirements (see its message above): check the network (or proxy) to the package index, then run make again"
  local serves here
  serves="$("$venv/bin/python" -c 'import pathlib, sagemake; print(pathlib.Path(sagemake.__file__).resolve().parents[2])' 2>/dev/null || true)"
  here="$(cd "$SAGEMAKE_ROOT" && pwd -P)"
  if [[ -n "$package" && -n "$serves" && "$serves" != "$here" && -d "$serves/src/sagemake" ]]; then
    # A virtualenv shared by several checkouts (VENV=...) keeps serving the one that made it: sagemake's code
    # comes from there, each project's settings, data and trainer from its own folder.
    say "setup: $venv runs sagemake from $serves (the checkout that made it): left as it is"
  elif [[ -n "$package" ]]; then
    say "setup: installing sagemake itself (editable) into $venv"
    with_progress setup "$venv/bin/python" -m pip install --disable-pip-version-check --quiet --progress-bar off \
      --no-deps --editable "$SAGEMAKE_ROOT" ||
      die "pip could not install sagemake from $SAGEMAKE_ROOT (see its message above): check pyproject.toml and the network to the package index"
  fi
}

[[ "${BASH_SOURCE[0]}" != "$0" ]] || main "$@"
