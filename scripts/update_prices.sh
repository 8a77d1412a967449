#!/usr/bin/env bash
# Summary: remake the shipped price table, src/sagemake/prices.json, from AWS Price List offer files for SageMaker.
# Usage: scripts/update_prices.sh OFFER.json [OFFER.json ...]
#
# An offer file is the Price List's bulk file for AmazonSageMaker, the whole service's or one region's:
#   https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonSageMaker/current/index.json
#   https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonSageMaker/current/<region>/index.json
# The table keeps the instance types it lists, each kind of use (Train, Processing, Tsform, Host) in every
# commercial region, with the files' version and publication date as its source and date. Review the diff of
# prices.json, then commit it.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

main() {
  help_if_asked "$@"
  [[ $# -gt 0 ]] || die "usage: scripts/update_prices.sh OFFER.json [OFFER.json ...] (Price List offer files for AmazonSageMaker)"
  local bin
  bin="$(venv_bin)"
  "$bin/python" -m sagemake.price_list "$@"
}

main "$@"
