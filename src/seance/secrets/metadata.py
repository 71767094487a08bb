"""The `sops:` section: key groups, encryption rules, MAC, read and written in sops' field order."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from seance.secrets.errors import SecretsError
from seance.secrets.gofmt import format_time, parse_time
from seance.secrets.tree import Branch, Comment

# The sops format version we read and write byte for byte (checked against sops 3.11.0).
SOPS_VERSION = "3.11.0"
# Key types sops knows that we do not implement; a file using one is handed to a `sops` binary.
FOREIGN_KEY_TYPES = ("kms", "gcp_kms", "azure_kv", "hc_vault")
_RULE_FIELDS = (
    "unencrypted_suffix",
    "encrypted_suffix",
    "unencrypted_regex",
    "encrypted_regex",
    "unencrypted_comment_regex",
    "encrypted_comment_regex",
)


@dataclass
class AgeKey:
    recipient: str
    enc: str = ""


@dataclass
class PgpKey:
    fp: str
    enc: str = ""
    created_at: str = ""


@dataclass
class KeyGroup:
    age: list[AgeKey] = field(default_factory=list)
    pgp: list[PgpKey] = field(default_factory=list)
    foreign: dict[str, list[Any]] = field(default_factory=dict)  # kms etc., kept as read

    def describe(self) -> str:
        names = [f"age {k.recipient}" for k in self.age] + [f"pgp {k.fp}" for k in self.pgp]
        names += [f"{kind} key" for kind, keys in self.foreign.items() for _ in keys]
        return ", ".join(names) or "no keys"


@dataclass
class Rules:
    """Which values get encrypted, and what the MAC covers."""

    unencrypted_suffix: str = ""
    encrypted_suffix: str = ""
    unencrypted_regex: str = ""
    encrypted_regex: str = ""
    unencrypted_comment_regex: str = ""
    encrypted_comment_regex: str = ""
    mac_only_encrypted: bool = False

    def check(self) -> None:
        chosen = [name for name in _RULE_FIELDS if getattr(self, name)]
        if len(chosen) > 1:
            raise SecretsError(f"only one of {', '.join(chosen)} may be set")
        for name in ("unencrypted_regex", "encrypted_regex", "unencrypted_comment_regex", "encrypted_comment_regex"):
            try:
                re.compile(getattr(self, name))
            except re.error as error:
                raise SecretsError(f"{name} is not a valid regular expression: {error}") from None

    def encrypts(self, path: list[str], comments: Sequence[Sequence[str]] = (), leaf: Any = None) -> bool:
        """Whether the value at `path` is encrypted, by sops' rules: a key rule applies when any key
        on the path matches it; a comment rule when any comment in force (see `tree.walk`) does."""
        if self.unencrypted_suffix and any(p.endswith(self.unencrypted_suffix) for p in path):
            return False
        if self.encrypted_suffix:
            return any(p.endswith(self.encrypted_suffix) for p in path)
        if self.unencrypted_regex and any(re.search(self.unencrypted_regex, p) for p in path):
            return False
        if self.encrypted_regex:
            return any(re.search(self.encrypted_regex, p) for p in path)
        if self.unencrypted_comment_regex:
            return not _marked(self.unencrypted_comment_regex, comments)
        if self.encrypted_comment_regex:
            if isinstance(leaf, Comment) and re.search(self.encrypted_comment_regex, leaf.value):
                return False  # the marking comment itself stays readable, or nobody could find it
            return _marked(self.encrypted_comment_regex, comments)
        return True


def _marked(pattern: str, comments: Sequence[Sequence[str]]) -> bool:
    return any(re.search(pattern, comment) for level in comments for comment in level)


@dataclass
class Metadata:
    key_groups: list[KeyGroup]
    rules: Rules = field(default_factory=Rules)
    shamir_threshold: int = 0
    lastmodified: str = ""
    mac: str = ""
    version: str = SOPS_VERSION

    @property
    def uses_shamir(self) -> bool:
        return len(self.key_groups) > 1

    @property
    def threshold(self) -> int:
        return self.shamir_threshold or len(self.key_groups)

    def foreign_key_types(self) -> list[str]:
        return sorted({kind for group in self.key_groups for kind, keys in group.foreign.items() if keys})

    def mac_aad(self) -> str:
        """sops authenticates the MAC with `lastmodified` re-spelled as Go's RFC 3339 (no fraction)."""
        parsed = parse_time(self.lastmodified)
        if parsed is None:
            raise SecretsError(f"sops.lastmodified '{self.lastmodified}' is not an RFC 3339 time")
        return format_time(parsed.replace(microsecond=0))


def _text(value: Any, name: str) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise SecretsError(f"sops.{name} must be a string")
    return str(value)


def _entries(value: Any, name: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, Branch) for item in value):
        raise SecretsError(f"sops.{name} must be a list of key entries")
    return [{k: v for k, v in item if not isinstance(k, Comment)} for item in value]


def _read_group(section: dict[str, Any], where: str) -> KeyGroup:
    group = KeyGroup()
    for entry in _entries(section.get("age"), f"{where}age"):
        group.age.append(AgeKey(_text(entry.get("recipient"), "age.recipient"), _text(entry.get("enc"), "enc")))
    for entry in _entries(section.get("pgp"), f"{where}pgp"):
        group.pgp.append(
            PgpKey(
                _text(entry.get("fp"), "pgp.fp"),
                _text(entry.get("enc"), "enc"),
                _text(entry.get("created_at"), "created_at"),
            )
        )
    for kind in FOREIGN_KEY_TYPES:
        keys = section.get(kind)
        if keys:
            group.foreign[kind] = list(keys) if isinstance(keys, list) else [keys]
    return group


def read_metadata(section: Any) -> Metadata:
    if not isinstance(section, Branch):
        raise SecretsError("the 'sops' section must be a mapping")
    fields = {k: v for k, v in section if not isinstance(k, Comment)}
    if fields.get("key_groups"):
        groups = [
            _read_group({k: v for k, v in item if not isinstance(k, Comment)}, f"key_groups[{i}].")
            for i, item in enumerate(fields["key_groups"])
            if isinstance(item, Branch)
        ]
    else:
        groups = [_read_group(fields, "")]
    rules = Rules(mac_only_encrypted=fields.get("mac_only_encrypted") is True)
    for name in _RULE_FIELDS:
        setattr(rules, name, _text(fields.get(name), name))
    rules.check()
    threshold = fields.get("shamir_threshold") or 0
    if not isinstance(threshold, int):
        raise SecretsError("sops.shamir_threshold must be an integer")
    if "lastmodified" not in fields:
        raise SecretsError("the 'sops' section has no lastmodified")
    return Metadata(
        key_groups=groups,
        rules=rules,
        shamir_threshold=threshold,
        lastmodified=_text(fields.get("lastmodified"), "lastmodified"),
        mac=_text(fields.get("mac"), "mac"),
        version=_text(fields.get("version"), "version"),
    )


def _key_lists(group: KeyGroup) -> tuple[list[Branch], list[Branch]]:
    age = [Branch([("recipient", k.recipient), ("enc", k.enc)]) for k in group.age]
    pgp = [Branch([("created_at", k.created_at), ("enc", k.enc), ("fp", k.fp)]) for k in group.pgp]
    return age, pgp


def _key_group_entry(group: KeyGroup) -> Branch:
    """One `key_groups` item, in sops' keygroup struct order (hc_vault has no omitempty there)."""
    age, pgp = _key_lists(group)
    out = Branch([("pgp", pgp)] if pgp else [])
    out.extend((kind, group.foreign[kind]) for kind in FOREIGN_KEY_TYPES[:3] if group.foreign.get(kind))
    out.append(("hc_vault", group.foreign.get("hc_vault", [])))
    if age:
        out.append(("age", age))
    return out


def write_metadata(metadata: Metadata) -> Branch:
    """The `sops:` mapping in the field order of sops' own `Metadata` struct."""
    out = Branch()
    pgp: list[Branch] = []
    if metadata.uses_shamir:
        out.append(("shamir_threshold", metadata.threshold))
        out.append(("key_groups", [_key_group_entry(g) for g in metadata.key_groups]))
    else:
        group = metadata.key_groups[0]
        age, pgp = _key_lists(group)
        out.extend((kind, group.foreign[kind]) for kind in FOREIGN_KEY_TYPES if group.foreign.get(kind))
        if age:
            out.append(("age", age))
    out.append(("lastmodified", metadata.lastmodified))
    out.append(("mac", metadata.mac))
    if pgp:
        out.append(("pgp", pgp))
    for name in _RULE_FIELDS:
        if getattr(metadata.rules, name):
            out.append((name, getattr(metadata.rules, name)))
    if metadata.rules.mac_only_encrypted:
        out.append(("mac_only_encrypted", True))
    out.append(("version", metadata.version))
    return out
