#!/usr/bin/env bash
# Summary: run the trainer's data step, main(DATA_DIR) in src/trainer/data.py, to write one folder per channel.
# Usage: scripts/make_data.sh
#
# It runs with the job's Python (the image's requirements). `make train` runs
# it only when a channel is missing; your own files in DATA_DIR are never
# overwritten by sagemake.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

main() {
  help_if_asked "$@"
  py "$SAGEMAKE_ROOT/scripts/run_sagemaker.py" data
}

[[ "${BASH_SOURCE[0]}" != "$0" ]] || main "$@"
