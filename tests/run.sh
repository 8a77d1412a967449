#!/usr/bin/env bash
# Summary: run every check: shellcheck, ruff, hadolint and the CircleCI schema, then bats and pytest side by side.
# Usage: tests/run.sh        (what `make test` runs, in a hermetic environment)
#        tests/run.sh fast   (what `make test-fast` runs: the tests marked FAST_TESTS, well under a minute)
#
# Hermetic: HOME is a temporary folder, and no AWS_* variable, no sagemake
# setting and no make variable of the caller leaks into the tests.
#
# The tests are in tiers, a folder and a marker each (tests/conftest.py): unit, local, aws, container, e2e;
# slow marks what a fast run leaves out. Both runs include tests/e2e/test_trainer_smoke.py, the smoke test of
# whatever trainer is in src/trainer/ (the example, or your own model).
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"

# No container engine, no fresh virtualenv, one real training (the trainer smoke test).
FAST_TESTS="(unit or e2e) and not (container or slow)"

BATS_SUPPORT_VERSION="0.3.0"
BATS_ASSERT_VERSION="2.2.4"

# bats_libraries: prints a BATS_LIB_PATH holding bats-support and bats-assert, installing them if needed.
bats_libraries() {
  local dir
  for dir in "${BATS_LIB_PATH:-}" /usr/lib/bats /usr/local/lib/bats /opt/homebrew/lib; do
    if [[ -n "$dir" && -f "$dir/bats-assert/load.bash" && -f "$dir/bats-support/load.bash" ]]; then
      printf '%s\n' "$dir"
      return 0
    fi
  done
  dir="$SAGEMAKE_ROOT/.tools/node_modules"
  if [[ ! -f "$dir/bats-assert/load.bash" ]]; then
    command -v npm >/dev/null 2>&1 ||
      die "bats-assert and bats-support are missing: install npm (they come from its registry) or Debian's bats-assert, or set BATS_LIB_PATH"
    say "test: installing bats-support $BATS_SUPPORT_VERSION and bats-assert $BATS_ASSERT_VERSION into .tools/"
    npm install --prefix "$SAGEMAKE_ROOT/.tools" --no-audit --no-fund --silent \
      "bats-support@$BATS_SUPPORT_VERSION" "bats-assert@$BATS_ASSERT_VERSION" >&2 ||
      die "npm could not install bats-assert: check the network to the npm registry"
  fi
  printf '%s\n' "$dir"
}

# browser: a headless Chromium for the report's browser test (tests/browser.py): one on PATH (or CHROMIUM), else
# Debian's chromium, installed as root or through sudo.
browser() {
  local name sudo=()
  for name in "${CHROMIUM:-}" chromium chromium-browser google-chrome; do
    if [[ -n "$name" ]] && command -v "$name" >/dev/null 2>&1; then return 0; fi
  done
  if [[ "$(id -u)" -ne 0 ]]; then
    sudo -n true 2>/dev/null ||
      die "the report's browser test needs Chromium: install it (apt-get install chromium), or set CHROMIUM to one"
    sudo=(sudo -n)
  fi
  command -v apt-get >/dev/null 2>&1 || die "the report's browser test needs Chromium: install it, or set CHROMIUM to one"
  say "test: installing Debian's chromium (the report's browser test)"
  "${sudo[@]}" apt-get update -qq >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
}

# shell_files: every tracked or new shell file, by extension or by shebang.
shell_files() {
  local file
  git -C "$SAGEMAKE_ROOT" ls-files --cached --others --exclude-standard | while IFS= read -r file; do
    [[ -f "$SAGEMAKE_ROOT/$file" ]] || continue
    case "$file" in
      *.sh | *.bash | *.bats) printf '%s\n' "$file" ;;
      *) if head -n1 "$SAGEMAKE_ROOT/$file" | grep -qE '^#!.*(bash|sh|bats)$'; then printf '%s\n' "$file"; fi ;;
    esac
  done
}

hermetic() {
  local name
  while IFS= read -r name; do unset "$name"; done < <(env | sed -n 's/^\(AWS_[A-Za-z0-9_]*\)=.*/\1/p')
  # shellcheck disable=SC2046 # word splitting of the setting names is intended
  unset ENV JOB MAKEFLAGS MAKELEVEL MFLAGS DEBUG $(py -c 'from sagemake.config import DEFAULTS; print(*DEFAULTS)')
  PIP_CACHE_DIR="$(py -m pip cache dir 2>/dev/null || true)"
  export PIP_CACHE_DIR
  HOME="$(mktemp -d)"
  export HOME
}

BATS_PID=""

# stop_bats: ends bats if it still runs (this script stopped early).
stop_bats() {
  [[ -z "$BATS_PID" ]] || kill "$BATS_PID" 2>/dev/null || true
}

# fast: the tests marked FAST_TESTS, hermetic as the full run, with the time they took.
fast() {
  cd "$SAGEMAKE_ROOT"
  local venv="${VENV:-.venv}" started=$SECONDS status=0
  [[ "$venv" == /* ]] || venv="$SAGEMAKE_ROOT/$venv"
  hermetic
  trap 'rm -rf "$HOME"' EXIT
  say "test-fast: pytest -m '$FAST_TESTS'"
  "$venv/bin/python" -m pytest -q -m "$FAST_TESTS" tests/ || status=$?
  say "test-fast: done in $((SECONDS - started)) s"
  [[ $status -eq 0 ]] || die "pytest failed (exit $status): see its output above"
}

main() {
  case "${1:-}" in
    "") ;;
    fast)
      fast
      return
      ;;
    *) die "usage: tests/run.sh [fast]" ;;
  esac
  cd "$SAGEMAKE_ROOT"
  local results="$SAGEMAKE_ROOT/build/test-results" venv="${VENV:-.venv}" file files=()
  [[ "$venv" == /* ]] || venv="$SAGEMAKE_ROOT/$venv"
  BATS_LIB_PATH="$(bats_libraries)"
  export BATS_LIB_PATH
  browser
  hermetic
  trap 'stop_bats; rm -rf "$HOME"' EXIT
  rm -rf "$results"
  mkdir -p "$results"

  say "test: shellcheck"
  while IFS= read -r file; do files+=("$file"); done < <(shell_files)
  "$venv/bin/shellcheck" -x "${files[@]}"

  say "test: ruff"
  "$venv/bin/ruff" check --no-cache src tests scripts bench examples docker/train docker/serve docker/train-script \
    examples/byo-serving/program/train examples/byo-serving/program/serve

  say "test: hadolint, CircleCI schema"
  files=()
  while IFS= read -r file; do files+=("$file"); done < <(git ls-files --cached --others --exclude-standard |
    grep -E '(^|/)Dockerfile(\.[a-z]+)?$')
  "$venv/bin/hadolint" "${files[@]}"
  "$venv/bin/check-jsonschema" --builtin-schema vendor.circle-ci .circleci/config.yml

  # bats and pytest side by side: they share nothing (bats works in copies of the checkout with no engine), and
  # most of bats's time is the fresh-checkout test making a virtualenv, when pytest's waits leave a core idle.
  # pytest's output comes as it runs, bats's once both are done; pytest's summary line is repeated last.
  say "test: bats (in the background, its output after pytest's) and pytest"
  local started=$SECONDS bats_status=0 pytest_status=0 color=no
  [[ ! -t 1 ]] || color=yes # through tee, pytest would not see the terminal
  "$venv/bin/bats" --recursive --timing --report-formatter junit --output "$results" tests/ >"$results/bats.log" 2>&1 &
  BATS_PID=$!
  "$venv/bin/python" -m pytest -q --color="$color" --junitxml="$results/pytest.xml" tests/ |
    tee "$results/pytest.log" || pytest_status=$?
  say "test: pytest done in $((SECONDS - started)) s; bats:"
  wait "$BATS_PID" || bats_status=$?
  BATS_PID=""
  cat "$results/bats.log"
  say "test: bats and pytest done in $((SECONDS - started)) s"
  say "test: pytest"
  tail -n 1 "$results/pytest.log"
  [[ $bats_status -eq 0 ]] || die "bats failed (exit $bats_status): see its output above"
  [[ $pytest_status -eq 0 ]] || die "pytest failed (exit $pytest_status): see its output above"
}

[[ "${BASH_SOURCE[0]}" != "$0" ]] || main "$@"
