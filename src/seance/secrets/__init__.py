"""SOPS-compatible encrypted secrets, in process: decrypt/encrypt (age, PGP), and the secrets model.

Public API::

    from seance.secrets import load_secrets, Secrets, SecretsError
    secrets = load_secrets("secrets/secrets.yaml")
    env = secrets.flatten()
"""

from seance.secrets.errors import MacMismatchError, NoKeyError, SecretsError
from seance.secrets.keyring import KeyRing
from seance.secrets.model import GATEWAY_REQUIRED, LEGACY_SERVICE, Secrets, load_secrets, secrets_from_tree

__all__ = [
    "GATEWAY_REQUIRED",
    "LEGACY_SERVICE",
    "KeyRing",
    "MacMismatchError",
    "NoKeyError",
    "Secrets",
    "SecretsError",
    "load_secrets",
    "secrets_from_tree",
]
