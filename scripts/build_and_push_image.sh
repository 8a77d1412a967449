#!/usr/bin/env bash
# Summary: build the training image, tagged by its content, and (for AWS) push it to ECR or IMAGE_REGISTRY.
# Usage: scripts/build_and_push_image.sh
#
# The image is DOCKERFILE (default docker/Dockerfile; docker/Dockerfile.script
# with CODE_MODE=script) built from BUILD_CONTEXT, or TRAINING_IMAGE as it is.
# Nothing is built or pushed when the tag is there already (in the local engine
# for ENV=local, in ECR otherwise). Locally, sagemake's own image is skipped
# with a notice when no engine is reachable: jobs then run as a process.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

main() {
  help_if_asked "$@"
  py "$SAGEMAKE_ROOT/scripts/run_sagemaker.py" build
}

[[ "${BASH_SOURCE[0]}" != "$0" ]] || main "$@"
