#!/usr/bin/env bash
# Start Shoal on this machine: provision everything, then Kafka, the services and a demo function.
source "$(dirname "$0")/lib.sh"
provision_all
exec "$VENV/bin/shoal" up "$@"
