# shellcheck shell=bash
# Common set-up for the bats suites (tests/e2e/*.bats, which `load ../test_helper`):
# bats-support/bats-assert, a temporary HOME, no AWS_* variables, and a fresh
# copy of the repository whose path has a space in it, to catch quoting bugs.
# The copy trains sagemake's test fixture trainer (tests/fixtures/trainer), never
# the checkout's src/trainer/, which a user replaces with their own model.

bats_require_minimum_version 1.5.0
bats_load_library bats-support
bats_load_library bats-assert

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MAIN_VENV="${VENV:-.venv}"
[[ "$MAIN_VENV" == /* ]] || MAIN_VENV="$REPO_ROOT/$MAIN_VENV"

common_setup() {
  export HOME="$BATS_TEST_TMPDIR/home"
  mkdir -p "$HOME"
  local name
  while IFS= read -r name; do unset "$name"; done < <(env | sed -n 's/^\(AWS_[A-Za-z0-9_]*\)=.*/\1/p')
  # These suites are about Make and the scripts, on a machine without a container engine;
  # tests/container/test_container.py covers the image with a real one.
  export DOCKER_HOST="unix://$BATS_TEST_TMPDIR/no-engine.sock"
  # The project's own venv, shared by the copies (the fresh-machine test makes its own).
  export VENV="$MAIN_VENV"
  export PATH="$MAIN_VENV/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
}

# copy_repo DEST: the working tree's tracked and new files, as a user's checkout would have them,
# with the fixture trainer as src/trainer/.
copy_repo() {
  local dest="$1"
  mkdir -p "$dest"
  (cd "$REPO_ROOT" && git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [[ -e "$f" && "$f" != src/trainer/* ]] && printf '%s\0' "$f"; done |
    tar -c -f - --null -T -) | tar -x -f - -C "$dest"
  mkdir -p "$dest/src/trainer"
  (cd "$REPO_ROOT/tests/fixtures/trainer" && tar -c -f - --exclude=__pycache__ .) | tar -x -f - -C "$dest/src/trainer"
}

# in_copy: make a copy of the repository in "$BATS_TEST_TMPDIR/my project" and cd into it.
in_copy() {
  PROJECT="$BATS_TEST_TMPDIR/my project"
  copy_repo "$PROJECT"
  cd "$PROJECT" || return 1
}

# latest_job: the newest job's name in the current copy (job names end in their creation time).
latest_job() {
  find jobs -mindepth 1 -maxdepth 1 -type d | sort | tail -n1 | sed 's|.*/||'
}
