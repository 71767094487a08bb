"""File-level operations behind the CLI: encrypt a plaintext file, re-encrypt after an edit keeping
unchanged ciphertext, rotate the data key, update recipients from `.sops.yaml`."""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seance.secrets.cipher import value_bytes
from seance.secrets.creation_rules import metadata_for_new_file
from seance.secrets.errors import SecretsError
from seance.secrets.json_store import load_json
from seance.secrets.keyring import KeyRing, wrap_data_key
from seance.secrets.metadata import KeyGroup, Metadata
from seance.secrets.sopsfile import Decrypted, Format, SopsFile, encrypt, parse
from seance.secrets.tree import Branch, Comment
from seance.secrets.yaml_load import load_yaml

Keep = Callable[[list[str], Any], Any]
Check = Callable[[list[Branch], str], None]  # raises SecretsError for documents that must not be saved
_SOPS_KEY = "has a top-level 'sops' key: it is already encrypted, or that key must be renamed (sops reserves it)"


def encrypt_plaintext(
    text: str, fmt: Format, where: str, metadata: Metadata, keyring: KeyRing, check: Check | None = None
) -> str:
    return encrypt(_plain_docs(text, fmt, where, _SOPS_KEY, check), metadata, keyring, fmt)


def _plain_docs(text: str, fmt: Format, where: str, sops_key_message: str, check: Check | None) -> list[Branch]:
    docs = load_json(text, where) if fmt == "json" else load_yaml(text, where)
    if any("sops" in doc.keys() for doc in docs):  # noqa: SIM118 (Branch is a list of pairs)
        raise SecretsError(f"{where}: {sops_key_message}")
    if check is not None:
        check(docs, where)
    return docs


def _leaves(value: Any, path: tuple[str, ...], out: list[tuple[tuple[str, ...], Any]]) -> None:
    if isinstance(value, Branch):
        for key, item in value:
            if isinstance(key, Comment):
                out.append((path, key))
            else:
                _leaves(item, (*path, key), out)
    elif isinstance(value, list):
        for item in value:
            _leaves(item, path, out)
    elif value is not None:
        out.append((path, value))


def keep_unchanged(encrypted: SopsFile, decrypted: Decrypted) -> Keep:
    """A `keep` callback: a value whose key path and plaintext (and type) are unchanged gets its old
    ciphertext back, so an edit only changes the lines the user changed."""
    cipher_leaves: list[tuple[tuple[str, ...], Any]] = []
    plain_leaves: list[tuple[tuple[str, ...], Any]] = []
    for old_doc, plain_doc in zip(encrypted.docs, decrypted.docs, strict=True):
        _leaves(old_doc, (), cipher_leaves)
        _leaves(plain_doc, (), plain_leaves)
    known: dict[tuple[tuple[str, ...], tuple[bytes, str]], list[str]] = defaultdict(list)
    for (path, old), (_, plain) in zip(cipher_leaves, plain_leaves, strict=True):
        text = old.value if isinstance(old, Comment) else old
        if isinstance(text, str) and text.startswith("ENC["):
            known[(path, value_bytes(plain))].append(text)

    def keep(path: list[str], value: Any) -> Any:
        candidates = known.get((tuple(path), value_bytes(value)))
        return candidates.pop(0) if candidates else None

    return keep


def reencrypt(
    new_text: str, encrypted: SopsFile, decrypted: Decrypted, keyring: KeyRing, where: str, check: Check | None = None
) -> str:
    """Encrypt edited plaintext with the file's data key and recipients, keeping unchanged values."""
    sops_key = "the edited document has a top-level 'sops' key; rename it"
    docs = _plain_docs(new_text, decrypted.format, where, sops_key, check)
    metadata = copy.deepcopy(decrypted.metadata)
    return encrypt(
        docs,
        metadata,
        keyring,
        decrypted.format,
        data_key=decrypted.data_key,
        keep=keep_unchanged(encrypted, decrypted),
    )


def _without_wrapped_keys(groups: list[KeyGroup]) -> list[KeyGroup]:
    return [KeyGroup(age=[type(k)(k.recipient) for k in g.age], pgp=[type(k)(k.fp) for k in g.pgp]) for g in groups]


def _require_in_process(decrypted: Decrypted, action: str) -> None:
    if not decrypted.data_key:
        raise SecretsError(f"this file's data key is wrapped with KMS/Vault keys, which only sops can use; {action}")


def rotate(decrypted: Decrypted, keyring: KeyRing) -> str:
    """Everything re-encrypted under a new data key, for the same recipients."""
    _require_in_process(decrypted, "rotate it with `sops rotate`")
    if any(group.foreign for group in decrypted.metadata.key_groups):
        raise SecretsError("the file has KMS/Vault keys, which seance cannot wrap; rotate it with sops")
    metadata = copy.deepcopy(decrypted.metadata)
    metadata.key_groups = _without_wrapped_keys(metadata.key_groups)
    return encrypt(decrypted.docs, metadata, keyring, decrypted.format)


@dataclass
class KeyUpdate:
    text: str | None  # None when the recipients already match
    added: list[str]
    removed: list[str]


def _recipients(groups: list[KeyGroup]) -> list[str]:
    return [f"age {k.recipient}" for g in groups for k in g.age] + [f"pgp {k.fp}" for g in groups for k in g.pgp]


def update_keys(path: Path, decrypted: Decrypted, keyring: KeyRing, cwd: Path | None = None) -> KeyUpdate:
    """Re-wrap for the recipients `.sops.yaml` gives this file now. When a recipient is removed the
    data key is rotated too: the removed key could otherwise still open every later version."""
    _require_in_process(decrypted, "update its keys with `sops updatekeys`")
    wanted = metadata_for_new_file(path, env={}, cwd=cwd)
    before, after = _recipients(decrypted.metadata.key_groups), _recipients(wanted.key_groups)
    added = [r for r in after if r not in before]
    removed = [r for r in before if r not in after]
    same_shape = wanted.threshold == decrypted.metadata.threshold and len(wanted.key_groups) == len(
        decrypted.metadata.key_groups
    )
    if not added and not removed and same_shape:
        return KeyUpdate(None, [], [])
    metadata = copy.deepcopy(decrypted.metadata)
    metadata.key_groups = wanted.key_groups
    metadata.shamir_threshold = wanted.shamir_threshold
    if removed or not same_shape:
        return KeyUpdate(encrypt(decrypted.docs, metadata, keyring, decrypted.format), added, removed)
    encrypted = parse(path.read_text(encoding="utf-8"), decrypted.format, str(path))
    wrap_data_key(metadata, decrypted.data_key, keyring)
    text = encrypt(
        decrypted.docs,
        metadata,
        keyring,
        decrypted.format,
        data_key=decrypted.data_key,
        keep=keep_unchanged(encrypted, decrypted),
    )
    return KeyUpdate(text, added, removed)
