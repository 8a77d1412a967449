#!/usr/bin/env bash
# Summary: list the make targets, each with its Summary line, and the variables they take.
# Usage: scripts/help.sh                  (what `make help` runs)
#        scripts/help.sh --unknown NAME   (what make runs for a target it has no rule for)
#
# A target of sagemake's own is a module, src/sagemake/targets/<target>.py,
# whose docstring starts with `Summary: `; the others (setup, prepare, test, ...)
# carry theirs as a `## ` comment on their Makefile line. Both are read by
# label, in the Makefile's order, with no Python needed.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# summary TARGET: the target's Summary line.
summary() {
  local target="$1" module
  module="$SAGEMAKE_ROOT/src/sagemake/targets/${target//-/_}.py"
  if [[ -f "$module" ]]; then
    sed -n '1s/^"""Summary: //p' "$module"
  else
    sed -n "s/^${target}:.*## //p" "$SAGEMAKE_ROOT/Makefile"
  fi
}

# targets: the Makefile's targets, in its order.
targets() {
  sed -n 's/^\([a-z][a-z-]*\):.*/\1/p' "$SAGEMAKE_ROOT/Makefile"
}

# unknown NAME: one line for a name make has no rule for, as sagemake's own errors say it: a goal given on the
# command line (with the nearest target, when one is close), or a file a target needs that is gone.
unknown() {
  local name="$1" near=""
  if [[ " ${MAKECMDGOALS:-$name} " != *" $name "* ]]; then
    printf "sagemake: %s is missing and no target makes it: restore it (git checkout -- '%s')\n" "$name" "$name" >&2
    exit 2
  fi
  if command -v python3 >/dev/null 2>&1; then
    near="$(targets | python3 -c 'import difflib, sys; print(*difflib.get_close_matches(sys.argv[1], sys.stdin.read().split(), 1, 0.6))' "$name")"
  fi
  if [[ -n "$near" ]]; then
    near=" did you mean \`make $near\`? ("
  fi
  printf "sagemake: no target '%s':%s\`make help\` lists them all%s\n" "$name" "${near:- }" "${near:+)}" >&2
  exit 2
}

main() {
  help_if_asked "$@"
  if [[ "${1:-}" == --unknown ]]; then
    unknown "$2"
  fi
  local target
  echo "usage: make TARGET [ENV=local|prod|<name>] [HP='key=value ...'] [JOB=<job name>] [SETTING=value ...]"
  echo
  while IFS= read -r target; do
    printf '  %-11s %s\n' "$target" "$(summary "$target")"
  done < <(targets)
  cat <<'TEXT'

  ENV  where jobs run: local (default, no AWS needed) or an AWS environment (.env.<ENV>)
  HP   hyperparameters, e.g. HP='n_estimators=200 learning_rate=0.05'
  JOB  a job name for fetch, logs, stop, serve, predict, transform, deploy, drift and baseline (all but stop default
       to the latest)
  FILE rows for predict (and drift), .csv or .json as /invocations takes them; SERVE_PORT the port of serve (8080)
  SINCE the span drift takes captured requests from, e.g. SINCE=1d (30m, 12h); CAPTURE_PERCENT=0 captures none
  INPUT a folder of files for transform, one row a line; KEEP the jobs clean-jobs keeps (CHECKPOINTS=delete:
       their checkpoints go too); TUNING a tuning run; CHECKPOINT_FROM a job whose checkpoints train starts from
  JOBS two or more job names for compare, e.g. JOBS='<job> <job>'

Your own project, by settings: replace src/trainer/ (sagemake's image), or DOCKERFILE=... BUILD_CONTEXT=...
(your image), or TRAINING_IMAGE=... (prebuilt); DATA_DIR, CHANNELS, METRICS and HP work with all three.

Every setting is in .env.example and docs/settings.md; `make config` shows the values in force.
TEXT
}

[[ "${BASH_SOURCE[0]}" != "$0" ]] || main "$@"
