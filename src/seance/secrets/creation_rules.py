"""`.sops.yaml` creation rules: which recipients and encryption rules a new file gets, as in sops.

The config is found by walking up from the current directory; the first rule whose `path_regex`
matches the file's path (relative to the config's directory), or that has none, applies.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from seance.secrets.errors import SecretsError
from seance.secrets.metadata import AgeKey, KeyGroup, Metadata, PgpKey, Rules
from seance.secrets.tree import to_plain
from seance.secrets.yaml_load import load_yaml

CONFIG_NAMES = (".sops.yaml", ".sops.yml")
_FOREIGN_RULE_KEYS = ("kms", "gcp_kms", "azure_keyvault", "hc_vault_transit_uri", "aws_profile")
_RULE_TEXT_FIELDS = (
    "unencrypted_suffix",
    "encrypted_suffix",
    "unencrypted_regex",
    "encrypted_regex",
    "unencrypted_comment_regex",
    "encrypted_comment_regex",
)


def find_config(start: Path) -> Path | None:
    for directory in [start, *start.parents]:
        for name in CONFIG_NAMES:
            candidate = directory / name
            if candidate.is_file():
                return candidate
    return None


def _split(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


def _group(section: Mapping[str, Any], where: str) -> KeyGroup:
    foreign = [key for key in _FOREIGN_RULE_KEYS if section.get(key)]
    if foreign:
        raise SecretsError(f"{where}: {', '.join(foreign)} keys are not implemented by seance; use the sops binary")
    return KeyGroup(
        age=[AgeKey(recipient) for recipient in _split(section.get("age"))],
        pgp=[PgpKey(fp.replace(" ", "")) for fp in _split(section.get("pgp"))],
    )


def metadata_from_rule(rule: Mapping[str, Any], where: str) -> Metadata:
    if rule.get("key_groups"):
        entries = rule["key_groups"]
        if not isinstance(entries, list) or not all(isinstance(group, dict) for group in entries):
            raise SecretsError(f"{where}: key_groups must be a list of mappings")
        groups = [_group(group, f"{where} key_groups[{i}]") for i, group in enumerate(entries)]
    else:
        groups = [_group(rule, where)]
    rules = Rules(mac_only_encrypted=rule.get("mac_only_encrypted") is True)
    for name in _RULE_TEXT_FIELDS:
        if rule.get(name):
            setattr(rules, name, str(rule[name]))
    if not any(getattr(rules, name) for name in _RULE_TEXT_FIELDS):
        rules.unencrypted_suffix = "_unencrypted"  # sops' default
    rules.check()
    threshold = rule.get("shamir_threshold") or 0
    if not isinstance(threshold, int) or isinstance(threshold, bool):
        raise SecretsError(f"{where}: shamir_threshold must be an integer")
    return Metadata(key_groups=groups, rules=rules, shamir_threshold=threshold)


def rule_for(file: Path, config: Path) -> tuple[dict[str, Any], str] | None:
    """The first matching creation rule and a description of where it is, or None."""
    docs = load_yaml(config.read_text(), str(config))
    data = to_plain(docs[0]) if docs else {}
    rules = data.get("creation_rules") if isinstance(data, dict) else None
    if not isinstance(rules, list):
        return None
    absolute = file.resolve()
    try:
        relative = absolute.relative_to(config.parent.resolve()).as_posix()
    except ValueError:
        relative = absolute.as_posix()
    for index, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        pattern = rule.get("path_regex")
        try:
            if pattern is None or re.search(str(pattern), relative):
                return rule, f"{config} creation_rules[{index}]"
        except re.error as error:
            raise SecretsError(f"{config} creation_rules[{index}]: bad path_regex: {error}") from None
    return None


def metadata_for_new_file(
    file: Path,
    *,
    age: list[str] | None = None,
    pgp: list[str] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Metadata:
    """Recipients from --age/--pgp, else SOPS_AGE_RECIPIENTS/SOPS_PGP_FP, else .sops.yaml."""
    env = os.environ if env is None else env
    age = age or _split(env.get("SOPS_AGE_RECIPIENTS"))
    pgp = pgp or _split(env.get("SOPS_PGP_FP"))
    config = find_config(cwd or Path.cwd())
    found = rule_for(file, config) if config is not None else None
    if age or pgp:
        metadata = metadata_from_rule({"age": age, "pgp": pgp}, "command line")
        if found is not None:  # keep the rule's encryption rules, only the recipients are overridden
            metadata.rules = metadata_from_rule(found[0], found[1]).rules
        return metadata
    if found is None:
        where = f"no creation rule in {config} matches {file}" if config else "no .sops.yaml found"
        raise SecretsError(
            f"no recipients for {file}: {where}; pass --age RECIPIENT (or --pgp FINGERPRINT),"
            " set SOPS_AGE_RECIPIENTS, or add a creation rule for it to .sops.yaml"
        )
    return metadata_from_rule(found[0], found[1])
