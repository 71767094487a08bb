"""The one place deploy reads secrets: decrypt the SOPS file in-process and flatten every service's
keys into one NAME -> value map (the Secret that the gateway receives with envFrom)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from seance.deploy.errors import DeployError


@dataclass(frozen=True)
class SecretsSource:
    path: Path
    values: dict[str, str] = field(repr=False)
    recipients: tuple[str, ...]  # the age recipients and PGP fingerprints its data key is wrapped for


def load_secrets_source(path: Path) -> SecretsSource:
    if not path.is_file():
        raise DeployError(f"{path}: secrets file not found (pass --secrets FILE)")
    # Imported at call time: synthesis and its tests never need the SOPS machinery.
    from seance.secrets import SecretsError
    from seance.secrets.model import secrets_from_docs
    from seance.secrets.sopsfile import load_and_decrypt

    try:
        decrypted = load_and_decrypt(path)
        values = secrets_from_docs(decrypted.docs, str(path)).flatten()
    except SecretsError as exc:  # its message already names the file
        raise DeployError(str(exc)) from None
    groups = decrypted.metadata.key_groups
    recipients = tuple(
        [key.recipient for group in groups for key in group.age] + [key.fp for group in groups for key in group.pgp]
    )
    return SecretsSource(path, values, recipients)


def load_flat_secrets(path: Path) -> dict[str, str]:
    return load_secrets_source(path).values
