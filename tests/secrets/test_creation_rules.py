"""`.sops.yaml` creation rules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from secrets_testkit import REPO

from seance.secrets.creation_rules import find_config, metadata_for_new_file
from seance.secrets.errors import SecretsError

A = "age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw"
B = "age1je6kjhzuhdjy3fqptpttxjh5k8q46vygzlgtpuq3030c947pc5tqz9dqvr"
CONFIG = f"""\
creation_rules:
  - path_regex: groups\\.yaml$
    shamir_threshold: 2
    key_groups:
      - age: [{A}]
      - age: [{B}]
        pgp: [FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4]
  - path_regex: k8s/.*\\.yaml$
    encrypted_regex: ^(data|stringData)$
    age: {A},{B}
  - age: {B}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / ".sops.yaml").write_text(CONFIG)
    (tmp_path / "k8s").mkdir()
    return tmp_path


def test_first_matching_rule_wins(project: Path) -> None:
    k8s = metadata_for_new_file(project / "k8s" / "app.yaml", env={}, cwd=project / "k8s")
    assert [k.recipient for k in k8s.key_groups[0].age] == [A, B]
    assert k8s.rules.encrypted_regex == "^(data|stringData)$" and not k8s.rules.unencrypted_suffix
    other = metadata_for_new_file(project / "other.yaml", env={}, cwd=project)
    assert [k.recipient for k in other.key_groups[0].age] == [B]
    assert other.rules.unencrypted_suffix == "_unencrypted"


def test_key_groups_and_threshold(project: Path) -> None:
    md = metadata_for_new_file(project / "groups.yaml", env={}, cwd=project)
    assert md.uses_shamir and md.threshold == 2
    assert [k.fp for k in md.key_groups[1].pgp] == ["FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4"]


def test_command_line_and_environment_recipients_override(project: Path) -> None:
    md = metadata_for_new_file(project / "k8s" / "x.yaml", age=[B], env={}, cwd=project)
    assert [k.recipient for k in md.key_groups[0].age] == [B] and md.rules.encrypted_regex
    md = metadata_for_new_file(project / "x.yaml", env={"SOPS_AGE_RECIPIENTS": A}, cwd=project)
    assert [k.recipient for k in md.key_groups[0].age] == [A]


def test_no_config_or_no_match_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SecretsError, match=r"no \.sops\.yaml found"):
        metadata_for_new_file(tmp_path / "x.yaml", env={}, cwd=Path("/"))
    (tmp_path / ".sops.yaml").write_text("creation_rules:\n  - path_regex: only\\.yaml$\n    age: " + A + "\n")
    with pytest.raises(SecretsError, match=r"no creation rule in .* matches"):
        metadata_for_new_file(tmp_path / "x.yaml", env={}, cwd=tmp_path)
    (tmp_path / ".sops.yaml").write_text("creation_rules:\n  - kms: arn:aws:kms:x\n")
    with pytest.raises(SecretsError, match="kms keys are not implemented by seance"):
        metadata_for_new_file(tmp_path / "x.yaml", env={}, cwd=tmp_path)


def test_repo_config_covers_the_example_secrets() -> None:
    config = find_config(REPO / "secrets")
    assert config == REPO / ".sops.yaml"
    md = metadata_for_new_file(REPO / "secrets" / "secrets.yaml", env={}, cwd=REPO)
    dev_key = (REPO / "secrets" / "dev-age-key.txt").read_text()
    assert f"# public key: {md.key_groups[0].age[0].recipient}" in dev_key


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("  - age: x\n    shamir_threshold: two\n", "shamir_threshold must be an integer"),
        ("  - key_groups: [a, b]\n", "key_groups must be a list of mappings"),
        ("  - age: x\n    encrypted_comment_regex: '['\n", "encrypted_comment_regex is not a valid regular expression"),
        ("  - path_regex: '['\n    age: x\n", "bad path_regex"),
    ],
)
def test_malformed_rules_are_clear_errors(tmp_path: Path, rule: str, message: str) -> None:
    (tmp_path / ".sops.yaml").write_text("creation_rules:\n" + rule)
    with pytest.raises(SecretsError, match=message):
        metadata_for_new_file(tmp_path / "x.yaml", env={}, cwd=tmp_path)


def test_the_multi_recipient_folded_form_of_the_sops_readme(tmp_path: Path) -> None:
    # sops' README lists several age recipients as one folded scalar, one recipient per line
    (tmp_path / ".sops.yaml").write_text(f"creation_rules:\n  - path_regex: .*\n    age: >-\n      {A},\n      {B}\n")
    metadata = metadata_for_new_file(tmp_path / "s.yaml", env={}, cwd=tmp_path)
    assert [key.recipient for key in metadata.key_groups[0].age] == [A, B]


def test_the_sops_yaml_example_of_the_docs(tmp_path: Path) -> None:
    doc = (REPO / "docs" / "secrets.md").read_text()
    (example,) = re.findall(r"```yaml\n(creation_rules:.*?)```", doc, flags=re.S)
    (tmp_path / ".sops.yaml").write_text(example)
    (tmp_path / "secrets").mkdir()
    metadata = metadata_for_new_file(tmp_path / "secrets" / "prod.yaml", env={}, cwd=tmp_path)
    recipients = [key.recipient for key in metadata.key_groups[0].age]
    assert len(recipients) == 2 and all(r.startswith("age1") and " " not in r for r in recipients)
