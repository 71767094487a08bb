"""The secrets model: per-service sections (nested) or the legacy flat form, as env variables.

Nested (current)::

    litellm:
        LITELLM_MASTER_KEY: sk-...
    stripe:
        STRIPE_SECRET_KEY: sk_live_...

Flat (legacy): ``STRIPE_SECRET_KEY: ...`` at the top level. A flat file has no sections, so it is
exposed as one service named ``legacy``, and ``service(name)`` returns that whole map for any name:
in the legacy form every value was meant for every service.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from seance.secrets.errors import SecretsError
from seance.secrets.gofmt import format_float_yaml, format_time
from seance.secrets.keyring import KeyRing
from seance.secrets.sopsfile import load_and_decrypt
from seance.secrets.tree import Branch, Comment

Layout = Literal["nested", "flat"]
LEGACY_SERVICE = "legacy"
GATEWAY_REQUIRED = ("LITELLM_MASTER_KEY",)
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Secrets:
    """Decrypted secrets of one file. `services` maps service -> NAME -> value (all strings)."""

    source: str
    layout: Layout
    services: dict[str, dict[str, str]]

    def __repr__(self) -> str:  # names only: a logged Secrets object must not leak values
        names = {service: sorted(values) for service, values in self.services.items()}
        return f"Secrets(source={self.source!r}, layout={self.layout!r}, names={names!r})"

    def service(self, name: str) -> dict[str, str]:
        if self.layout == "flat":
            return dict(self.services[LEGACY_SERVICE])
        if name not in self.services:
            known = ", ".join(sorted(self.services)) or "none"
            raise SecretsError(f"{self.source}: no service '{name}' (services in the file: {known})")
        return dict(self.services[name])

    def flatten(self) -> dict[str, str]:
        """Every service's values in one NAME -> value map (one Kubernetes Secret, one env)."""
        merged: dict[str, str] = {}
        origin: dict[str, str] = {}
        for service, values in self.services.items():
            for name, value in values.items():
                if name in merged and merged[name] != value:
                    raise SecretsError(
                        f"{self.source}: {name} is defined differently in '{origin[name]}' and '{service}'"
                        f" ({origin[name]}.{name} vs {service}.{name}); make them equal or rename one"
                    )
                merged.setdefault(name, value)
                origin.setdefault(name, service)
        return merged

    def require(self, names: Iterable[str]) -> None:
        present = self.flatten()
        missing = [name for name in names if name not in present]
        if missing:
            raise SecretsError(f"{self.source}: missing required secret(s): {', '.join(missing)}")

    def require_in_service(self, service: str, names: Iterable[str]) -> None:
        present = self.service(service)
        missing = [name for name in names if name not in present]
        if missing:
            where = f"service '{service}'" if self.layout == "nested" else "the file"
            raise SecretsError(f"{self.source}: {where} lacks required secret(s): {', '.join(missing)}")


def env_value(value: Any, where: str) -> str:
    """A scalar as an environment string, spelled as the decrypted YAML shows it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float_yaml(value)
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise SecretsError(f"{where} is binary data, not text") from None
    if value is None:
        raise SecretsError(f"{where} has no value (null); give it one or remove it")
    kind = "a mapping" if isinstance(value, Branch) else "a list"
    raise SecretsError(f"{where} must be a string, number or boolean, not {kind}")


def _entries(branch: Branch) -> list[tuple[str, Any]]:
    return [(key, value) for key, value in branch if not isinstance(key, Comment)]


def _check_env_names(names: Iterable[str], where: str) -> None:
    bad = [name for name in names if not ENV_NAME.fullmatch(name)]
    if bad:
        raise SecretsError(
            f"{where}: not valid environment variable names: {', '.join(repr(n) for n in bad)}"
            " (use letters, digits and _, not starting with a digit)"
        )


def secrets_from_tree(tree: Branch, source: str) -> Secrets:
    """Detect the layout of a decrypted document and build the model."""
    entries = _entries(tree)
    sections = [key for key, value in entries if isinstance(value, Branch)]
    flat = [key for key, value in entries if not isinstance(value, Branch)]
    if sections and flat:
        raise SecretsError(
            f"{source}: mixes service sections ({', '.join(sections)}) with top-level values"
            f" ({', '.join(flat)}); put every value in a service section, or use the flat form only"
        )
    if flat:
        _check_env_names(flat, source)
        values = {key: env_value(value, f"{source}: {key}") for key, value in entries}
        return Secrets(source, "flat", {LEGACY_SERVICE: values})
    services: dict[str, dict[str, str]] = {}
    for service, section in entries:
        if not SERVICE_NAME.fullmatch(service):
            raise SecretsError(f"{source}: '{service}' is not a valid service name (letters, digits, . _ -)")
        names = _entries(section)
        _check_env_names([name for name, _ in names], f"{source}: service '{service}'")
        services[service] = {name: env_value(value, f"{source}: {service}.{name}") for name, value in names}
    return Secrets(source, "nested", services)


def secrets_from_docs(docs: list[Branch], source: str) -> Secrets:
    if len(docs) != 1:
        raise SecretsError(f"{source}: a secrets file holds one document, this one has {len(docs)}")
    return secrets_from_tree(docs[0], source)


def check_secrets_docs(docs: list[Branch], source: str) -> None:
    """Everything the commands that use a secrets file (env, validate, synth, the gateway) require of
    it, but the names a particular service needs: `edit` checks this before it saves."""
    secrets_from_docs(docs, source).flatten()


def load_secrets(path: str | Path, *, keyring: KeyRing | None = None, ignore_mac: bool = False) -> Secrets:
    """Decrypt a SOPS secrets file (sops-style key discovery unless `keyring` is given) and model it."""
    decrypted = load_and_decrypt(path, keyring, ignore_mac=ignore_mac)
    return secrets_from_docs(decrypted.docs, str(path))
