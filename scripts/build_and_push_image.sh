#!/usr/bin/env bash
# Summary: build the training image, tagged by its content (built only when that tag is missing).
# Usage: scripts/build_and_push_image.sh
#
# With no reachable container engine (or LOCAL_RUNTIME=process) the build is
# skipped with a notice, and local jobs run `docker/train` as a process.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

main() {
  if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n 's/^# \{0,1\}//;2,3p' "${BASH_SOURCE[0]}"
    return 0
  fi
  load_config
  [[ "$ENV" == local ]] || die "ENV=$ENV: pushing to ECR is not available yet; use ENV=local"
  local engine="$CONTAINER_ENGINE" image
  image="$(py "$SAGEMAKE_ROOT/scripts/run_sagemaker.py" image)"
  if [[ "$LOCAL_RUNTIME" == process ]]; then
    say "build: skipped (LOCAL_RUNTIME=process)"
    return 0
  fi
  if ! "$engine" info >/dev/null 2>&1; then
    say "build: skipped: no $engine engine is reachable, so the job will run as a local process under the same contract"
    return 0
  fi
  if "$engine" image inspect "$image" >/dev/null 2>&1; then
    say "build: $image is up to date"
    return 0
  fi
  say "build: $image"
  "$engine" build -f "$SAGEMAKE_ROOT/docker/Dockerfile" -t "$image" "$SAGEMAKE_ROOT"
}

[[ "${BASH_SOURCE[0]}" != "$0" ]] || main "$@"
