"""The typed parts of config.yaml that check what they hold: general_settings' end-user headers,
litellm_settings' spend tag headers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from seance.gateway.config import ConfigError, Settings, load_settings

MODEL = {"model_name": "a", "litellm_params": {"model": "openai/gpt-4o", "api_key": "sk-up"}}


def settings(tmp_path: Path, general: dict[str, Any]) -> Settings:
    path = tmp_path / "config.yaml"
    path.write_bytes(orjson.dumps({"model_list": [MODEL], "general_settings": general}))
    return load_settings(path, {"LITELLM_MASTER_KEY": "sk-master"}, announce=False)


def test_end_user_headers_in_litellms_order_lower_cased(tmp_path: Path) -> None:
    general = settings(tmp_path, {
        "user_header_name": "X-Old-Style",
        "user_header_mappings": [
            {"header_name": "X-OpenWebUI-User-Id", "litellm_user_role": "internal_user"},
            {"header_name": "X-OpenWebUI-User-Email", "litellm_user_role": "customer"},
        ],
    }).file.general_settings  # fmt: skip
    assert general.end_user_headers() == ("x-openwebui-user-email", "x-old-style")


@pytest.mark.parametrize(
    ("general", "message"),
    [
        ({"user_header_mappings": [{"header_name": "x user", "litellm_user_role": "customer"}]},
         r"user_header_mappings\[0\]\.header_name: 'x user' is not an HTTP header name"),
        ({"user_header_mappings": [{"header_name": "x-user", "litellm_user_role": "custmer"}]},
         r"user_header_mappings\[0\]\.litellm_user_role: 'custmer' is not one of LiteLLM's roles: customer, "),
        ({"user_header_mappings": [{"header_name": "x-user"}]}, r"user_header_mappings\[0\]\.litellm_user_role"),
        ({"user_header_name": "x:user"}, r"user_header_name: 'x:user' is not an HTTP header name"),
    ],
)  # fmt: skip
def test_a_bad_mapping_stops_the_start_with_its_path(tmp_path: Path, general: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(tmp_path, general)


def test_extra_spend_tag_headers_must_be_header_names(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    litellm = {"extra_spend_tag_headers": ["X-OpenWebUI-User-Email", "x user"]}
    path.write_bytes(orjson.dumps({"model_list": [MODEL], "litellm_settings": litellm}))
    with pytest.raises(ConfigError, match=r"extra_spend_tag_headers.*'x user' is not an HTTP header name"):
        load_settings(path, {"LITELLM_MASTER_KEY": "sk-master"}, announce=False)
