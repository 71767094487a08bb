"""The one place deploy reads secrets: decrypt the SOPS file in-process and flatten every service's
keys into one NAME -> value map (the Secret that the gateway receives with envFrom)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from seance.deploy.errors import DeployError


def load_flat_secrets(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise DeployError(f"{path}: secrets file not found (pass --secrets FILE)")
    # Imported at call time: synthesis and its tests never need the SOPS machinery.
    secrets_module: Any = importlib.import_module("seance.secrets")
    try:
        flat: dict[str, str] = dict(secrets_module.load_secrets(path).flatten())
    except secrets_module.SecretsError as exc:
        raise DeployError(f"{path}: {exc}") from None
    return flat
