# Sourced by the other scripts: makes a virtualenv (.venv, or $SEANCE_VENV) with Seance installed.
#
#   SEANCE_EXTRAS unset or empty: the runtime only, what ./scripts/serve needs;
#   SEANCE_EXTRAS=test:           plus the test toolchain (pytest, mypy, ruff, the SDKs, sops…),
#                                 what ./scripts/test needs.
#
# Installs again only when pyproject.toml changed since, or when the test tools are wanted and
# missing; once there, they stay (a serve after a test run installs nothing).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SEANCE_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
want="${SEANCE_EXTRAS:-}"
stamp="$VENV/.seance-extras"  # what the last install had: "" (runtime) or "test"
if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating $VENV with $("$PYTHON" --version 2>&1)" >&2
  "$PYTHON" -m venv "$VENV"
fi
have="$(cat "$stamp" 2>/dev/null || echo none)"
if [ "$have" = test ]; then
  want=test
fi
if [ "$have" = none ] || [ "$have" != "$want" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
  what="Seance"
  if [ "$want" = test ]; then what="Seance and its test tools"; fi
  echo "==> installing $what into $VENV (pip's progress follows)" >&2
  "$VENV/bin/pip" install --disable-pip-version-check -e "$ROOT${want:+[$want]}" >&2
  printf '%s\n' "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
