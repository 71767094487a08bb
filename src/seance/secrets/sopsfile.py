"""A SOPS file as a whole: text <-> (documents, `sops:` metadata), decrypt and encrypt in memory.

Plaintext only ever exists in memory here; writing files is the caller's business (see `fileio`).
"""

from __future__ import annotations

import os
import secrets as random_source
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from seance.secrets.errors import NoKeyError, SecretsError
from seance.secrets.json_store import dump_json, load_json
from seance.secrets.keyring import DATA_KEY_SIZE, KeyRing, now_rfc3339, recover_data_key, wrap_data_key
from seance.secrets.metadata import SOPS_VERSION, Metadata, read_metadata, write_metadata
from seance.secrets.tree import Branch, Comment
from seance.secrets.treecrypt import decrypt_docs, encrypt_docs
from seance.secrets.yaml_emit import dump_yaml
from seance.secrets.yaml_load import load_yaml

Format = Literal["yaml", "json"]


def detect_format(path: str | Path) -> Format:
    name = str(path).lower()
    if name.endswith((".env", ".ini")):
        raise SecretsError(f"{path}: dotenv and INI sops files are not supported; use YAML or JSON")
    return "json" if name.endswith(".json") else "yaml"


@dataclass
class SopsFile:
    """Parsed file: `docs` without their `sops` key; `metadata` is None for a plaintext file."""

    format: Format
    docs: list[Branch]
    metadata: Metadata | None


@dataclass
class Decrypted:
    format: Format
    docs: list[Branch] = field(repr=False)
    metadata: Metadata
    data_key: bytes = field(repr=False)


def parse(text: str, fmt: Format, where: str) -> SopsFile:
    docs = load_json(text, where) if fmt == "json" else load_yaml(text, where)
    sections = []
    for doc in docs:
        kept = Branch()
        for key, value in doc:
            if key == "sops" and not isinstance(key, Comment):
                sections.append(value)
            else:
                kept.append((key, value))
        doc[:] = kept
    if not sections:
        return SopsFile(fmt, docs, None)
    if len(sections) != len(docs):
        raise SecretsError(f"{where}: some documents have a 'sops' section and some do not")
    try:
        metadata = read_metadata(sections[0])
    except SecretsError as error:
        raise SecretsError(f"{where}: {error}") from None
    return SopsFile(fmt, docs, metadata)


def render(docs: list[Branch], metadata: Metadata | None, fmt: Format) -> str:
    if metadata is not None:
        section = write_metadata(metadata)
        docs = [Branch([*doc, ("sops", section)]) for doc in docs]
    return dump_json(docs) if fmt == "json" else dump_yaml(docs)


def decrypt(parsed: SopsFile, where: str, keyring: KeyRing, *, ignore_mac: bool = False) -> Decrypted:
    """Decrypt in process. Raises `DelegationNeeded` for what only the sops binary can do."""
    metadata = parsed.metadata
    if metadata is None:
        raise SecretsError(f"{where}: not a SOPS-encrypted file (no 'sops' section)")
    try:
        data_key = recover_data_key(metadata, keyring, where)
    except NoKeyError as error:
        foreign = metadata.foreign_key_types()
        if foreign:
            raise DelegationNeeded(
                f"{where}: the data key is wrapped with {', '.join(foreign)} keys, which seance does not implement"
            ) from error
        raise
    docs = decrypt_docs(parsed.docs, metadata, data_key, where, ignore_mac=ignore_mac)
    return Decrypted(parsed.format, docs, metadata, data_key)


class DelegationNeeded(SecretsError):
    """The file needs a feature or key type that only the `sops` binary implements."""


def delegate_decrypt(path: Path, fmt: Format, env: Mapping[str, str], *, ignore_mac: bool = False) -> SopsFile:
    """Decrypt through the `sops` binary (for KMS, Vault… keys); plaintext stays in the pipe."""
    binary = shutil.which("sops", path=env.get("PATH"))
    if binary is None:
        raise SecretsError(f"{path}: needs a `sops` binary on PATH for its key type")
    args = [binary, "decrypt", "--input-type", fmt, "--output-type", fmt]
    args += ["--ignore-mac"] if ignore_mac else []
    done = subprocess.run([*args, str(path)], capture_output=True, text=True, env=dict(env), check=False, timeout=300)
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()
        raise SecretsError(f"{path}: sops could not decrypt it: {reason[-1] if reason else 'unknown error'}")
    return parse(done.stdout, fmt, str(path))


def encrypt(
    docs: list[Branch],
    metadata: Metadata,
    keyring: KeyRing,
    fmt: Format,
    *,
    data_key: bytes | None = None,
    keep: Any = None,
) -> str:
    """Encrypted text of `docs` for `metadata`'s recipients (their `enc` is filled in here when a
    new data key is made). `keep` lets unchanged values keep their ciphertext (see `encrypt_docs`)."""
    if data_key is None:
        data_key = random_source.token_bytes(DATA_KEY_SIZE)
        wrap_data_key(metadata, data_key, keyring)
    metadata.lastmodified = now_rfc3339()
    metadata.version = SOPS_VERSION  # what we write is the layout of this sops version
    encrypted = encrypt_docs(docs, metadata, data_key, keep=keep)
    return render(encrypted, metadata, fmt)


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SecretsError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SecretsError(f"{path}: cannot read it ({getattr(error, 'strerror', None) or error})") from None


def load_and_decrypt(
    path: str | Path, keyring: KeyRing | None = None, *, ignore_mac: bool = False, fmt: Format | None = None
) -> Decrypted:
    """Read and decrypt a SOPS file with sops-style key discovery (or `keyring`)."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    parsed = parse(read_text(path), fmt, str(path))
    keyring = keyring or KeyRing(env=dict(os.environ))
    try:
        return decrypt(parsed, str(path), keyring, ignore_mac=ignore_mac)
    except DelegationNeeded as reason:
        if shutil.which("sops", path=keyring.env.get("PATH")) is None:
            raise SecretsError(f"{reason}, and no `sops` binary is on PATH to delegate to") from None
    delegated = delegate_decrypt(path, fmt, keyring.env, ignore_mac=ignore_mac)
    assert parsed.metadata is not None
    return Decrypted(fmt, delegated.docs, parsed.metadata, b"")
