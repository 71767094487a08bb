"""docs/gateway.md's compatibility table is the one `known_keys` generates, its config example loads
without a warning, and the config `seance synth` writes is one the gateway reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from seance.litellm_config import read_config
from seance.litellm_config.compat import END, START, compatibility_markdown

DOC = Path(__file__).parent.parent.parent / "docs" / "gateway.md"


def test_the_documented_table_is_generated_from_the_known_keys() -> None:
    text = DOC.read_text()
    assert START in text and END in text
    documented = text[text.index(START) : text.index(END) + len(END)] + "\n"
    assert documented == compatibility_markdown(), "run: python -m seance.litellm_config.compat"


def test_the_documented_config_example_loads_without_a_warning(tmp_path: Path) -> None:
    (example,) = re.findall(r"```yaml\n(model_list:\n  - model_name: gpt-4o-mini .*?)```", DOC.read_text(), re.S)
    path = tmp_path / "config.yaml"
    path.write_text(example)
    env = {"AZURE_API_BASE": "https://eu.openai.azure.com", "OPENAI_API_KEY_2": "k", "LITELLM_MASTER_KEY": "m"}
    assert read_config(path, env).warnings == []


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_the_config_synth_writes_is_read(tmp_path: Path, environment: str) -> None:
    from seance.deploy.gateway_config import gateway_config
    from seance.deploy.settings import load_settings

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(gateway_config(load_settings(environment))))
    loaded = read_config(path, {"LITELLM_MASTER_KEY": "m"})
    assert loaded.file.model_list[0].model_name == "*"
    ignored = {item.path for item in loaded.ignored}
    assert ignored <= {"litellm_settings.cache", "litellm_settings.cache_params", "router_settings.redis_host",
                       "router_settings.redis_port", "router_settings.routing_strategy"}  # fmt: skip
