"""litellm_settings.default_key_generate_params and upperbound_key_generate_params (key_policy.py):
/key/generate fills what a request leaves unset, refuses what goes over a bound, and the keys made
then act by what they were given; a policy that is not one stops the start. SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.stack import stack

from seance.gateway.admin import key_policy
from seance.gateway.config import ConfigError, load_settings

DEFAULTS = {"max_budget": 2.5, "models": ["a"], "duration": None, "metadata": {"setting": "default"}}
BOUNDS = {"max_budget": 10, "rpm_limit": 100, "duration": "30d", "budget_duration": "7d", "tpm_limit": None}


async def test_defaults_fill_what_a_request_leaves_unset(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env, litellm={"default_key_generate_params": DEFAULTS}) as s:
        status, made = await s.admin("POST", "/key/generate", {"key_alias": "plain"})
        assert status == 200, made
        assert made["max_budget"] == 2.5 and made["models"] == ["a"] and made["expires"] is None
        assert made["metadata"] == {"setting": "default"}
        assert (await s.chat(made["key"], "a")).status_code == 200
        assert (await s.chat(made["key"], "b")).status_code == 403  # the default's models hold

        status, own = await s.admin("POST", "/key/generate", {"max_budget": 1.0, "models": ["b"], "metadata": {}})
        assert status == 200, own
        assert own["max_budget"] == 1.0 and own["models"] == ["b"] and own["metadata"] == {}
        assert (await s.chat(own["key"], "b")).status_code == 200


async def test_upper_bounds_fill_and_refuse(tmp_path: Path, db_env: dict[str, str]) -> None:
    async with stack(tmp_path, db_env, litellm={"upperbound_key_generate_params": BOUNDS}) as s:
        status, made = await s.admin("POST", "/key/generate", {})
        assert status == 200, made
        assert made["max_budget"] == 10 and made["rpm_limit"] == 100 and made["tpm_limit"] is None
        assert made["budget_duration"] == "7d"
        expires = datetime.fromisoformat(made["expires"]).timestamp()
        assert abs(expires - (time.time() + 30 * 86400)) < 60

        for field, value in (("max_budget", 20), ("rpm_limit", 101), ("duration", "31d"), ("budget_duration", "2w")):
            status, refused = await s.admin("POST", "/key/generate", {field: value})
            assert status == 400, (field, refused)
            assert refused["error"]["param"] == field
            assert refused["error"]["message"].startswith(
                f"{field} {value} is over the most litellm_settings.upperbound_key_generate_params allows"
            )
        status, within = await s.admin("POST", "/key/generate", {"max_budget": 10, "rpm_limit": 5, "duration": "1h"})
        assert status == 200 and within["rpm_limit"] == 5, within

        status, refused = await s.admin("POST", "/key/update", {"key": made["key"], "rpm_limit": 1000})
        assert status == 400 and refused["error"]["param"] == "rpm_limit", refused
        status, updated = await s.admin("POST", "/key/update", {"key": made["key"], "rpm_limit": 50})
        assert status == 200 and updated["rpm_limit"] == 50, updated


def settings_with(tmp_path: Path, litellm: dict[str, Any]) -> Any:
    path = tmp_path / "config.yaml"
    path.write_bytes(orjson.dumps({"model_list": [{"model_name": "m", "litellm_params": {"model": "openai/m"}}],
                                   "litellm_settings": litellm}))  # fmt: skip
    return load_settings(path, {"LITELLM_MASTER_KEY": "sk-m", "OPENAI_API_KEY": "k"}, announce=False)


@pytest.mark.parametrize(
    ("litellm", "message"),
    [
        ({"default_key_generate_params": {"max_budgt": 1}},
         "default_key_generate_params.max_budgt: not a /key/generate field a default may set; did you mean "
         "'max_budget'?"),
        ({"default_key_generate_params": {"max_budget": "lots"}},
         "default_key_generate_params.max_budget must be an integer or number, not str"),
        ({"default_key_generate_params": {"duration": "forever"}},
         "default_key_generate_params.duration: 'forever' is not a duration"),
        ({"upperbound_key_generate_params": {"models": ["a"]}},
         "upperbound_key_generate_params.models: not a field with an upper bound; one of max_budget"),
        ({"upperbound_key_generate_params": {"rpm_limt": 5}},
         "upperbound_key_generate_params.rpm_limt: not a field with an upper bound; did you mean 'rpm_limit'?"),
        ({"upperbound_key_generate_params": {"duration": "soon"}},
         "upperbound_key_generate_params.duration: 'soon' is not a duration"),
        ({"upperbound_key_generate_params": {"max_budget": -1}},
         "upperbound_key_generate_params.max_budget: a number, 0 or more, not -1"),
    ],
)  # fmt: skip
def test_a_policy_that_is_not_one_stops_the_start(tmp_path: Path, litellm: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        key_policy.read(settings_with(tmp_path, litellm))
    assert f"litellm_settings.{message}" in str(refused.value)


def test_seance_check_refuses_it_too(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from seance.gateway.check import check

    settings_with(tmp_path, {"upperbound_key_generate_params": {"rpm_limt": 5}})
    result = CliRunner().invoke(check, ["--config", str(tmp_path / "config.yaml")],
                                env={"LITELLM_MASTER_KEY": "sk-m", "OPENAI_API_KEY": "k"})  # fmt: skip
    assert result.exit_code != 0
    assert "did you mean 'rpm_limit'?" in result.output
