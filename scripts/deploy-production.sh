#!/usr/bin/env bash
# Deploys production: synthesizes the prod manifest from secrets/secrets.yaml, applies it server-side
# into the settings' namespace (`seance` by default) and waits for the rollout (`seance deploy --env prod`).
#
#   scripts/deploy-production.sh --values deploy/prod.values.yaml            # to the current kubectl context
#   scripts/deploy-production.sh --values deploy/prod.values.yaml --dry-run  # server-side dry run
#   scripts/deploy-production.sh --context prod-eu --set image=registry.example.com/seance-gateway:0.1.0
#
# Decryption needs your age key (SOPS_AGE_KEY_FILE, SOPS_AGE_KEY, ~/.config/sops/age/keys.txt) or
# your PGP key in GnuPG. The manifest goes to kubectl on stdin: no plaintext secret is written.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v seance >/dev/null; then
  source scripts/bootstrap.sh
fi
exec seance deploy --env prod "$@"
