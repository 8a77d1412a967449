#!/usr/bin/env bash
# Summary: write the data channels into DATA_DIR (one folder per channel).
# Usage: scripts/make_data.sh
#
# Runs the trainer's data step (src/trainer/data.py); replace that with what
# prepares your data. Files are rewritten only when their content changes.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

main() {
  help_if_asked "$@"
  load_config
  cd "$SAGEMAKE_ROOT"
  py -m trainer.data "$DATA_DIR"
}

[[ "${BASH_SOURCE[0]}" != "$0" ]] || main "$@"
