#!/usr/bin/env bash
# Prints the decrypted secrets (kept for users of the old sops+yq workflow; no sops or yq needed).
#
#   scripts/decrypt-secrets.sh                        # secrets/secrets.yaml as YAML
#   scripts/decrypt-secrets.sh --format env           # NAME=value lines
#   scripts/decrypt-secrets.sh --format json other/secrets.yaml
#
# Output goes to stdout only; redirecting it to a file puts plaintext on disk, so don't.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if ! command -v seance >/dev/null; then
  source "$ROOT/scripts/bootstrap.sh"
fi
file="$ROOT/secrets/secrets.yaml"
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --format) args+=("$1" "$2"); shift 2 ;;
    --format=*|--ignore-mac) args+=("$1"); shift ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) file="$1"; shift ;;
  esac
done
exec seance secrets decrypt "${args[@]}" "$file"
