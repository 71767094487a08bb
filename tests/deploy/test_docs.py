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


GATEWAY_DOC = DOC.parent / "gateway.md"


def test_gateway_doc_config_example_starts(tmp_path: Path) -> None:
    from seance.gateway.config import load_settings as load_gateway_settings
    from seance.gateway.routing.deployments import Deployments

    (block,) = re.findall(r"```yaml\n(model_list:.*?)```", GATEWAY_DOC.read_text(), flags=re.S)
    path = tmp_path / "config.yaml"
    path.write_text(block)
    env = {
        "LITELLM_MASTER_KEY": "sk-1234", "OPENAI_API_KEY": "sk-o", "OPENAI_API_KEY_2": "sk-o2",
        "AZURE_API_KEY": "az", "AZURE_API_BASE": "https://example.openai.azure.com", "ANTHROPIC_API_KEY": "a",
    }  # fmt: skip
    settings = load_gateway_settings(path, env)
    deployments = Deployments(settings)
    assert [d.target.provider for d in deployments.lookup("gpt-4o")] == ["azure", "openai"]
    assert deployments.lookup("gpt-4o")[1].target.api_key == "sk-o2"
    assert settings.env["OLLAMA_API_BASE"] == "http://ollama.internal:11434"


def test_gateway_doc_provider_table_matches_the_registry() -> None:
    from seance.gateway.providers import REGISTRY, load_adapter

    rows = {}
    for line in GATEWAY_DOC.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            for prefix in re.findall(r"`([a-z_-]+)`", cells[0]):
                rows[prefix] = cells
    assert set(rows) == set(REGISTRY), "the provider table and the registry differ"
    for prefix, (_, keys, bases, _notes) in rows.items():
        adapter = load_adapter(prefix)
        assert adapter is not None
        assert re.findall(r"`([A-Z_0-9]+)`", keys) == list(adapter.key_env), prefix
        assert re.findall(r"`([A-Z_0-9]+)`", bases) == list(adapter.base_env), prefix


PROD_VALUES = DOC.parents[1] / "deploy" / "prod.values.yaml"


def test_the_prod_values_example_the_docs_use_exists_and_is_valid() -> None:
    """deploy/prod.values.yaml is all comments (usable as is); uncommented, every setting in it is valid."""
    assert "deploy/prod.values.yaml" in DOC.read_text()
    text = PROD_VALUES.read_text()
    assert yaml.safe_load(text) is None
    settings = load_settings("prod", yaml.safe_load(re.sub(r"^#(?=\S|  )(?!#)", "", text, flags=re.M)))
    assert settings.host != load_settings("prod").host and settings.gateway.config_file


def test_the_tilt_curl_works_as_written() -> None:
    """The curl after `tilt up` must not need a variable nobody set: it uses the example file's key."""
    (curl,) = [line for line in DOC.read_text().splitlines() if line.startswith("curl ") and "4000/v1/models" in line]
    assert "$" not in curl and "Bearer sk-seance-dev-master-key" in curl
