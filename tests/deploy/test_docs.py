"""docs/deploy-kubernetes.md documents what really works: its values example is accepted as is, and
every setting has a row in its table."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from tests.deploy.helpers import SECRETS, find

from seance.deploy.settings import Settings, load_settings
from seance.deploy.synth import dump_yaml, synthesize

DOC = Path(__file__).resolve().parents[2] / "docs" / "deploy-kubernetes.md"


def test_values_example_is_valid() -> None:
    blocks = re.findall(r"```yaml\n(# values file.*?)```", DOC.read_text(), flags=re.S)
    assert blocks, "the values example disappeared"
    for block in blocks:
        settings = load_settings("prod", yaml.safe_load(block))
        documents = list(yaml.safe_load_all(dump_yaml(synthesize(settings, SECRETS))))
        assert find(documents, "HTTPRoute") and find(documents, "Ingress")


def test_every_setting_is_documented() -> None:
    text = DOC.read_text()
    for name, field in Settings.model_fields.items():
        if name == "environment":
            continue
        nested = getattr(field.annotation, "model_fields", None)
        if nested:
            assert all(sub in text for sub in nested), f"{name}: some sub-settings are not documented"
        assert f"`{name}" in text, f"setting {name} is not documented"
