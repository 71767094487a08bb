"""The one place deploy reads secrets: decrypt the SOPS file in-process and flatten every service's
keys into one NAME -> value map (the Secret that the gateway receives with envFrom)."""

from __future__ import annotations

from pathlib import Path

from seance.deploy.errors import DeployError


def load_flat_secrets(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise DeployError(f"{path}: secrets file not found (pass --secrets FILE)")
    # Imported at call time: synthesis and its tests never need the SOPS machinery.
    from seance.secrets import SecretsError, load_secrets

    try:
        return load_secrets(path).flatten()
    except SecretsError as exc:  # its message already names the file
        raise DeployError(str(exc)) from None
