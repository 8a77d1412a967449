#!/usr/bin/env bash
# Summary: list the make targets, each with its Summary line, and the variables they take.
# Usage: scripts/help.sh   (what `make help` runs)
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

main() {
  help_if_asked "$@"
  local target
  echo "usage: make TARGET [ENV=local|prod|<name>] [HP='key=value ...'] [JOB=<job name>] [SETTING=value ...]"
  echo
  while IFS= read -r target; do
    printf '  %-11s %s\n' "$target" "$(summary "$target")"
  done < <(sed -n 's/^\([a-z][a-z-]*\):.*/\1/p' "$SAGEMAKE_ROOT/Makefile")
  cat <<'TEXT'

  ENV  where jobs run: local (default, no AWS needed) or an AWS environment (.env.<ENV>)
  HP   hyperparameters, e.g. HP='n_estimators=200 learning_rate=0.05'
  JOB  a job name for fetch, logs, stop, serve, predict, transform and deploy (all but stop default to the latest)
  FILE rows for predict, .csv or .json as /invocations takes them; SERVE_PORT the port of serve (8080)
  INPUT a folder of files for transform, one row a line; KEEP the jobs clean-jobs keeps; TUNING a tuning run

Your own project, by settings: replace src/trainer/ (sagemake's image), or DOCKERFILE=... BUILD_CONTEXT=...
(your image), or TRAINING_IMAGE=... (prebuilt); DATA_DIR, CHANNELS, METRICS and HP work with all three.

Every setting is in .env.example and docs/settings.md; `make config` shows the values in force.
TEXT
}

[[ "${BASH_SOURCE[0]}" != "$0" ]] || main "$@"
