#!/usr/bin/env bash
# Applies only the Secret `seance-secrets` (in the settings' namespace, `seance` by default) from
# secrets/secrets.yaml, then restarts the gateway so its pods read the new values. Kept for users of
# the old workflow; `seance deploy` does this and more (it rolls the gateway only when the secrets
# changed).
#
#   scripts/apply-secrets.sh [dev|prod] [--context NAME] [--secrets FILE] [--values FILE] [--set P=V]
#
# The Secret is synthesized in-process and piped to kubectl: no plaintext touches disk.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if ! command -v seance >/dev/null; then
  source "$ROOT/scripts/bootstrap.sh"
fi
env_name="prod"
secrets="$ROOT/secrets/secrets.yaml"
kubectl=(kubectl)
settings=()
while [ $# -gt 0 ]; do
  case "$1" in
    dev|prod) env_name="$1"; shift ;;
    --context) kubectl+=(--context "$2"); shift 2 ;;
    --secrets) secrets="$2"; shift 2 ;;
    --values|--set|--gateway-config) settings+=("$1" "$2"); shift 2 ;;
    --allow-example-secrets) settings+=("$1"); shift ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "apply-secrets.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
# Synthesize first: a missing key or a bad file stops here, before the cluster is touched.
manifest="$(seance synth --env "$env_name" --secrets "$secrets" "${settings[@]}" --out -)"
# The first document is the Namespace (synth writes it first, `name:` right under `metadata:`).
namespace="$(printf '%s\n' "$manifest" | awk '/^---/ { exit } /^  name: / { print $2; exit }')"
"${kubectl[@]}" create namespace "$namespace" --dry-run=client -o yaml | "${kubectl[@]}" apply -f - >/dev/null
printf '%s\n' "$manifest" | "${kubectl[@]}" apply --server-side --field-manager=seance --force-conflicts \
  -l app.kubernetes.io/component=secrets -f -
if "${kubectl[@]}" get deployment/litellm -n "$namespace" >/dev/null 2>&1; then
  "${kubectl[@]}" rollout restart deployment/litellm -n "$namespace"
  "${kubectl[@]}" rollout status deployment/litellm -n "$namespace" --timeout=300s
fi
