#!/usr/bin/env bash
# Run the whole test suite against a real Kafka broker and Docker Engine (provisioned here).
source "$(dirname "$0")/lib.sh"
provision_all
ensure_test_packages
start_helm_build
export SHOAL_HELM="$HELM"
cd "$SHOAL_ROOT"
set +e
"$VENV/bin/python" -m pytest "$@"
rc=$?
set -e
if [[ $rc == 5 ]]; then
  say "pytest collected no tests: that is a failure"
  exit 1
fi
exit $rc
