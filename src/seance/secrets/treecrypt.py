"""Encrypting and decrypting every value of a document tree, and the MAC over it (sops' tree walk).

The MAC is SHA-512 over the plaintext bytes of every non-comment value, in document order, across
all documents of a file; it is stored encrypted with `lastmodified` as additional data. With
`mac_only_encrypted` it covers only the encrypted values, seeded with sha256("sops").
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from seance.secrets.cipher import decrypt_value, encrypt_value, is_encrypted_text, value_bytes
from seance.secrets.errors import MacMismatchError, SecretsError
from seance.secrets.metadata import Metadata, Rules
from seance.secrets.tree import Branch, Comment, CommentStack, walk


def _new_hash(rules: Rules) -> Any:
    digest = hashlib.sha512()
    if rules.mac_only_encrypted:
        digest.update(hashlib.sha256(b"sops").digest())
    return digest


def _where(path: list[str]) -> str:
    return ".".join(path) if path else "(top level)"


def _aad(path: list[str]) -> str:
    return ":".join(path) + ":"


def encrypt_docs(docs: list[Branch], metadata: Metadata, data_key: bytes, *, keep: Any = None) -> list[Branch]:
    """Encrypted copies of `docs`; sets `metadata.mac` (`lastmodified` must be set first).

    `keep(path, plaintext) -> ciphertext | None` lets `edit` reuse the old ciphertext of an unchanged
    value, so a re-encrypted file only differs where the plaintext did.
    """
    rules = metadata.rules
    digest = _new_hash(rules)

    def visit(value: Any, path: list[str], comments: CommentStack) -> Any:
        encrypted = rules.encrypts(path, comments, value)
        if not isinstance(value, Comment) and (encrypted or not rules.mac_only_encrypted):
            try:
                digest.update(value_bytes(value)[0])
            except SecretsError as error:
                raise SecretsError(f"{_where(path)}: {error}") from None
        if not encrypted or (isinstance(value, Comment) and not value.value):
            return value  # sops cannot parse an empty ENC data field, so empty comments stay as they are
        previous = keep(path, value) if keep is not None else None
        return previous if previous is not None else encrypt_value(value, data_key, _aad(path))

    out = []
    for doc in docs:
        if "sops" in doc.keys():  # noqa: SIM118 (Branch is a list of pairs)
            raise SecretsError("the data has a top-level 'sops' key: it is already encrypted, or must be renamed")
        out.append(walk(doc, [], visit))
    mac = digest.hexdigest().upper()
    metadata.mac = encrypt_value(mac, data_key, metadata.mac_aad())
    return out


def decrypt_docs(
    docs: list[Branch], metadata: Metadata, data_key: bytes, where: str, *, ignore_mac: bool = False
) -> list[Branch]:
    """Decrypted copies of `docs`, the MAC checked unless `ignore_mac`."""
    rules = metadata.rules
    digest = _new_hash(rules)

    def visit(value: Any, path: list[str], comments: CommentStack) -> Any:
        encrypted = rules.encrypts(path, comments, value)
        plain = value
        if encrypted and isinstance(value, Comment):
            if is_encrypted_text(value.value):
                try:
                    plain = decrypt_value(value.value, data_key, _aad(path), where)
                except SecretsError:
                    plain = value  # as sops: an undecryptable comment is kept (older sops left them clear)
            if not isinstance(plain, Comment):
                plain = value
        elif encrypted:
            if not isinstance(value, str):
                raise SecretsError(f"{where}: {_where(path)} should be encrypted but holds a plain value")
            plain = decrypt_value(value, data_key, _aad(path), f"{where}: {_where(path)}")
        if not isinstance(plain, Comment) and (encrypted or not rules.mac_only_encrypted):
            digest.update(value_bytes(plain)[0])
        return plain

    out = [walk(doc, [], visit) for doc in docs]
    if not ignore_mac:
        check_mac(metadata, data_key, digest.hexdigest().upper(), where)
    return out


def check_mac(metadata: Metadata, data_key: bytes, computed: str, where: str) -> None:
    if not metadata.mac:
        raise MacMismatchError(f"{where}: the file has no MAC, so its integrity cannot be checked (use --ignore-mac)")
    try:
        stored = decrypt_value(metadata.mac, data_key, metadata.mac_aad(), f"{where}: sops.mac")
    except SecretsError:
        raise MacMismatchError(
            f"{where}: the MAC cannot be decrypted (sops.mac or sops.lastmodified was changed)"
        ) from None
    if not isinstance(stored, str) or not hmac.compare_digest(stored.upper(), computed):
        raise MacMismatchError(f"{where}: MAC mismatch: the file was modified after it was encrypted")
