"""Getting the data key out of a file's key groups, and wrapping a data key for new recipients."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from seance.secrets import age_keys, pgp_keys, shamir
from seance.secrets.errors import NoKeyError, SecretsError
from seance.secrets.gofmt import format_time
from seance.secrets.metadata import KeyGroup, Metadata

DATA_KEY_SIZE = 32


@dataclass
class KeyRing:
    """Where private keys come from: the environment (sops' variables, GNUPGHOME) read once.

    `age_identities` may be given directly (tests, callers with their own key store); otherwise
    they are discovered from `env` on first use.
    """

    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ), repr=False)
    age_identities: list[Any] | None = field(default=None, repr=False)
    use_gpg: bool = True
    sources: dict[int, str] = field(default_factory=dict, repr=False)  # id(identity) -> where it was found

    @classmethod
    def from_environ(cls) -> KeyRing:
        return cls(env=dict(os.environ))

    def identities(self) -> list[Any]:
        if self.age_identities is None:
            found = age_keys.find_identities(self.env)
            self.sources = {id(identity): source for identity, source in found}
            self.age_identities = [identity for identity, _ in found]
        return self.age_identities

    def describe_identities(self) -> str:
        """The age identities tried, by public key and where they came from (never a secret)."""
        identities = self.identities()
        if not identities:
            default = age_keys.default_keys_file(self.env)
            return f"no age identity (none in SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, SOPS_AGE_KEY_CMD, ~/.ssh, {default})"
        described = []
        for identity in identities:
            source = self.sources.get(id(identity))
            described.append(age_keys.describe_identity(identity) + (f" from {source}" if source else ""))
        return ", ".join(described)


def _unwrap_group(group: KeyGroup, keyring: KeyRing) -> bytes | None:
    for age_key in group.age:
        if age_key.enc:
            found = age_keys.unwrap(age_key.enc, keyring.identities())
            if found is not None:
                return found
    if keyring.use_gpg:
        for pgp_key in group.pgp:
            if pgp_key.enc:
                found = pgp_keys.unwrap(pgp_key.enc, keyring.env)
                if found is not None:
                    return found
    return None


def recover_data_key(metadata: Metadata, keyring: KeyRing, where: str) -> bytes:
    """The 32-byte data key; NoKeyError naming the recipients when no available key fits."""
    parts: list[bytes] = []
    for group in metadata.key_groups:
        part = _unwrap_group(group, keyring)
        if part is not None:
            parts.append(part)
            if not metadata.uses_shamir or len(parts) >= metadata.threshold:
                break
    if metadata.uses_shamir:
        if len(parts) < metadata.threshold:
            raise NoKeyError(
                f"{where}: only {len(parts)} of the {metadata.threshold} key groups needed could be "
                f"decrypted with the available keys ({_recipients(metadata)}); tried {_available(metadata, keyring)}"
            )
        key = shamir.combine(parts)
    elif parts:
        key = parts[0]
    else:
        raise NoKeyError(
            f"{where}: no available key decrypts the data key: the file is for {_recipients(metadata)};"
            f" tried {_available(metadata, keyring)}; {_hint()}"
        )
    if len(key) != DATA_KEY_SIZE:
        raise SecretsError(f"{where}: the data key is {len(key)} bytes, expected {DATA_KEY_SIZE}")
    return key


def _recipients(metadata: Metadata) -> str:
    return "; ".join(group.describe() for group in metadata.key_groups)


def _available(metadata: Metadata, keyring: KeyRing) -> str:
    tried = []
    if any(group.age for group in metadata.key_groups):
        tried.append(keyring.describe_identities())
    if keyring.use_gpg and any(group.pgp for group in metadata.key_groups):
        tried.append("the GnuPG keyring")
    return " and ".join(tried) or "nothing (no age or PGP recipient)"


def _hint() -> str:
    return "set SOPS_AGE_KEY_FILE to the identity file of one of those recipients, or import its PGP key into GnuPG"


def now_rfc3339() -> str:
    return format_time(datetime.now(UTC).replace(microsecond=0))


def wrap_data_key(metadata: Metadata, data_key: bytes, keyring: KeyRing) -> None:
    """Fill every key's `enc`: the whole data key, or with several groups a Shamir share per group."""
    if not metadata.key_groups or not any(group.age or group.pgp for group in metadata.key_groups):
        raise SecretsError("no recipients: pass --age/--pgp or add a creation rule to .sops.yaml")
    if metadata.uses_shamir:
        if not 1 < metadata.threshold <= len(metadata.key_groups):
            raise SecretsError(
                f"shamir_threshold {metadata.threshold} must be between 2 and the number of key groups"
                f" ({len(metadata.key_groups)})"
            )
        secrets = shamir.split(data_key, len(metadata.key_groups), metadata.threshold)
    else:
        secrets = [data_key]
    created = now_rfc3339()
    for group, secret in zip(metadata.key_groups, secrets, strict=True):
        if group.foreign:
            raise SecretsError(
                f"cannot wrap a data key for {', '.join(group.foreign)} keys: use the sops binary for those"
            )
        for age_key in group.age:
            age_key.enc = age_keys.wrap(secret, age_key.recipient)
        for pgp_key in group.pgp:
            pgp_key.enc = pgp_keys.wrap(secret, pgp_key.fp, keyring.env)
            pgp_key.created_at = created
