#!/usr/bin/env bash
# Summary: sync each data channel to s3://S3_BUCKET/S3_PREFIX/data/<channel>/, uploading only what changed.
# Usage: scripts/upload_data.sh
#
# Checks first that the bucket is in AWS_REGION; with ENV=local there is nothing
# to upload. The sync itself is src/sagemake/aws/sync.py.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

main() {
  help_if_asked "$@"
  py "$SAGEMAKE_ROOT/scripts/run_sagemaker.py" upload
}

[[ "${BASH_SOURCE[0]}" != "$0" ]] || main "$@"
