"""age recipients and identities (X25519 via pyrage), discovered the way sops discovers them."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyrage

from seance.secrets.errors import SecretsError

IDENTITY_PREFIX = "AGE-SECRET-KEY-1"


def parse_identities(text: str, source: str) -> list[Any]:
    """Identities from a keys.txt-style text; `source` names it in errors (the text never appears)."""
    identities = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.upper().startswith(IDENTITY_PREFIX):
            if line.startswith("AGE-PLUGIN-"):
                continue  # plugin identities need the plugin binary; sops skips what it cannot use
            raise SecretsError(f"{source}: line {number} is not an age identity (AGE-SECRET-KEY-1…)")
        try:
            identities.append(pyrage.x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise SecretsError(f"{source}: line {number} is not a valid age identity") from None
    return identities


def default_keys_file(env: Mapping[str, str]) -> Path:
    """sops' default: $XDG_CONFIG_HOME/sops/age/keys.txt, else the OS user config directory."""
    if env.get("XDG_CONFIG_HOME"):
        return Path(env["XDG_CONFIG_HOME"]) / "sops" / "age" / "keys.txt"
    home = Path(env.get("HOME") or Path.home())
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "sops" / "age" / "keys.txt"
    return home / ".config" / "sops" / "age" / "keys.txt"


def discover_identities(env: Mapping[str, str]) -> list[Any]:
    return [identity for identity, _ in find_identities(env)]


def find_identities(env: Mapping[str, str]) -> list[tuple[Any, str]]:
    """Every identity, with where it came from, from SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, SOPS_AGE_KEY_CMD,
    SOPS_AGE_SSH_PRIVATE_KEY_FILE (else ~/.ssh/id_ed25519 or id_rsa) and the default keys.txt, in that
    order (sops tries all of them)."""
    found: list[tuple[Any, str]] = []
    if env.get("SOPS_AGE_KEY"):
        found += [(i, "SOPS_AGE_KEY") for i in parse_identities(env["SOPS_AGE_KEY"], "SOPS_AGE_KEY")]
    if env.get("SOPS_AGE_KEY_FILE"):
        source = f"SOPS_AGE_KEY_FILE={env['SOPS_AGE_KEY_FILE']}"
        found += [(i, source) for i in _identities_from_file(Path(env["SOPS_AGE_KEY_FILE"]), "SOPS_AGE_KEY_FILE")]
    if env.get("SOPS_AGE_KEY_CMD"):
        output = _run_key_command(env["SOPS_AGE_KEY_CMD"])
        found += [(i, "SOPS_AGE_KEY_CMD") for i in parse_identities(output, "SOPS_AGE_KEY_CMD output")]
    if env.get("SOPS_AGE_SSH_PRIVATE_KEY_FILE"):
        path = Path(env["SOPS_AGE_SSH_PRIVATE_KEY_FILE"])
        try:
            found.append((pyrage.ssh.Identity.from_buffer(path.read_bytes()), f"SOPS_AGE_SSH_PRIVATE_KEY_FILE={path}"))
        except (OSError, pyrage.IdentityError) as error:
            raise SecretsError(
                f"SOPS_AGE_SSH_PRIVATE_KEY_FILE={path}: cannot use it ({type(error).__name__})"
            ) from None
    else:
        found += _default_ssh_identity(env)
    default = default_keys_file(env)
    if default.is_file():
        found += [(i, str(default)) for i in _identities_from_file(default, str(default))]
    return found


def _default_ssh_identity(env: Mapping[str, str]) -> list[tuple[Any, str]]:
    """~/.ssh/id_ed25519, else ~/.ssh/id_rsa, as sops tries them; one we cannot read (say, it has a
    passphrase) is skipped rather than failing every decryption."""
    ssh_dir = Path(env.get("HOME") or Path.home()) / ".ssh"
    for name in ("id_ed25519", "id_rsa"):
        path = ssh_dir / name
        if path.is_file():
            try:
                return [(pyrage.ssh.Identity.from_buffer(path.read_bytes()), str(path))]
            except (OSError, pyrage.IdentityError):
                return []
    return []


def _identities_from_file(path: Path, source: str) -> list[Any]:
    try:
        text = path.read_text()
    except OSError as error:
        raise SecretsError(f"{source}={path}: cannot read it ({error.strerror})") from None
    return parse_identities(text, f"{source}={path}" if source != str(path) else source)


def _run_key_command(command: str) -> str:
    try:
        done = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=60, check=False)
    except (OSError, ValueError, subprocess.TimeoutExpired) as error:
        raise SecretsError(f"SOPS_AGE_KEY_CMD failed to run: {error}") from None
    if done.returncode != 0:
        raise SecretsError(f"SOPS_AGE_KEY_CMD exited with status {done.returncode}")
    return done.stdout


def parse_recipient(text: str) -> Any:
    text = text.strip()
    try:
        if text.startswith(("ssh-ed25519 ", "ssh-rsa ")):
            return pyrage.ssh.Recipient.from_str(text)
        return pyrage.x25519.Recipient.from_str(text)
    except pyrage.RecipientError:
        raise SecretsError(f"'{text}' is not a valid age recipient (age1…)") from None


def public_recipient(identity: Any) -> str:
    return str(identity.to_public())


def describe_identity(identity: Any) -> str:
    """An identity by its public key (never the secret); pyrage cannot derive an SSH key's."""
    return f"age {public_recipient(identity)}" if hasattr(identity, "to_public") else "an SSH key"


def wrap(data_key: bytes, recipient: str) -> str:
    """The data key encrypted to one recipient, ASCII-armored, as sops stores it in `enc`."""
    armored: bytes = pyrage.encrypt(data_key, [parse_recipient(recipient)], armored=True)
    text = armored.decode()
    return text if text.endswith("\n") else text + "\n"


def unwrap(enc: str, identities: list[Any]) -> bytes | None:
    """The data key, or None when no identity fits this stanza."""
    if not identities:
        return None
    armored = "\n".join(line.strip() for line in enc.strip().splitlines()) + "\n"
    try:
        data: bytes = pyrage.decrypt(armored.encode(), identities)
    except pyrage.DecryptError:
        return None
    return data


def generate_identity_text(created: str) -> tuple[str, str]:
    """A new identity as keys.txt text (age-keygen's layout) and its recipient."""
    identity = pyrage.x25519.Identity.generate()
    recipient = public_recipient(identity)
    return f"# created: {created}\n# public key: {recipient}\n{identity}{os.linesep}", recipient
