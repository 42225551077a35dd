#!/usr/bin/env bash
# Writes .env beside docker-compose.yml (or the file named as the argument), mode 0600,
# with the api token, a password for every Kafka principal (admin and one per service
# role) and the key that seals secrets, keeping the values already there.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
env_file="${1:-$root/.env}"
umask 077
touch "$env_file"
chmod 600 "$env_file"
for name in SHOAL_API_TOKEN SHOAL_KAFKA_PASSWORD_ADMIN SHOAL_KAFKA_PASSWORD_API \
    SHOAL_KAFKA_PASSWORD_SCHEDULER SHOAL_KAFKA_PASSWORD_AUTOSCALER \
    SHOAL_KAFKA_PASSWORD_HEALER SHOAL_KAFKA_PASSWORD_NODE; do
  grep -q "^$name=" "$env_file" || echo "$name=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" >> "$env_file"
done
# The key that seals secrets (base64 of 32 bytes): the api's and the node-agent's only.
grep -q "^SHOAL_SECRETS_KEY=" "$env_file" || echo "SHOAL_SECRETS_KEY=$(head -c 32 /dev/urandom | base64)" >> "$env_file"
echo "compose settings in $env_file (mode 0600)"
