"""What the management API refuses before the database would: values longer or larger than their
columns (PostgreSQL refuses them with an error, SQLite keeps them), on both engines alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.stack import stack

from seance.gateway.store.database import refused_value as _bad_value

LONG = "x" * 300


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/key/generate", {"key_alias": LONG}, "key_alias"),
        ("/key/generate", {"max_parallel_requests": 2**40}, "max_parallel_requests"),
        ("/key/generate", {"budget_duration": "9999999999d"}, "budget_duration"),
        ("/key/generate", {"duration": "1300mo"}, "duration"),
        ("/key/generate", {"model_rpm_limit": {"a": 2**63}}, "model_rpm_limit"),
        ("/team/new", {"team_id": LONG}, "team_id"),
        ("/user/new", {"user_id": LONG}, "user_id"),
        ("/user/new", {"user_email": LONG * 2 + "@example.com"}, "user_email"),
        ("/customer/new", {"user_id": LONG}, "user_id"),
        ("/budget/new", {"budget_id": "b", "rpm_limit": 2**63}, "rpm_limit"),
        ("/organization/new", {"organization_alias": LONG}, "organization_alias"),
        ("/model/new", {"model_name": LONG, "litellm_params": {"model": "openai/x", "api_key": "k"}}, "model_name"),
        ("/team/member_add", {"team_id": "t", "member": {"user_id": LONG}}, "member"),
    ],
)
async def test_a_value_that_would_not_fit_is_a_400_naming_it(
    tmp_path: Path, db_env: dict[str, str], path: str, body: dict[str, Any], param: str
) -> None:
    async with stack(tmp_path, db_env) as s:
        await s.admin("POST", "/team/new", {"team_id": "t"})
        status, answer = await s.admin("POST", path, body)
        assert status == 400, answer
        assert answer["error"]["param"] == param, answer


@pytest.mark.parametrize(
    ("path", "body", "near"),
    [
        ("/key/generate", {"rpm_limt": 5}, "rpm_limit"),
        ("/key/generate", {"max_paralel_requests": 2}, "max_parallel_requests"),
        ("/team/new", {"max_budjet": 10}, "max_budget"),
        ("/user/new", {"tpm_limits": 1000}, "tpm_limit"),
        ("/budget/new", {"budget_id": "b", "budget_duraton": "30d"}, "budget_duration"),
        ("/customer/new", {"user_id": "c", "model_rpm_limits": {"a": 1}}, "model_rpm_limit"),
    ],
)
async def test_a_misspelt_limit_is_a_400_with_the_name_it_was_meant_to_be(
    tmp_path: Path, db_env: dict[str, str], path: str, body: dict[str, Any], near: str
) -> None:
    async with stack(tmp_path, db_env) as s:
        status, answer = await s.admin("POST", path, body)
        assert status == 400, answer
        (name,) = [field for field in body if field not in ("budget_id", "user_id")]
        assert answer["error"]["param"] == name
        assert answer["error"]["message"] == f"{name} is not a field; did you mean '{near}'? (nothing was changed)"
        # a field of LiteLLM's that is no slip of a limit passes, as before
        status, _ = await s.admin("POST", "/key/generate", {"tpm_limit_type": "best_effort_throughput"})
        assert status == 200


class _DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__("from the driver")
        self.sqlstate = sqlstate


def test_only_a_refused_value_is_the_clients_fault() -> None:
    """SQLSTATE class 22 ("data exception": too long, out of range) is a 400; a unique key, a lost
    connection stay errors of the gateway."""
    too_long, duplicate = _DriverError("22001"), _DriverError("23505")
    wrapped = Exception("the adapter's")
    wrapped.__cause__ = too_long
    assert _bad_value(sa.exc.DBAPIError("INSERT …", {}, wrapped))
    assert _bad_value(sa.exc.DBAPIError("INSERT …", {}, too_long))
    assert not _bad_value(sa.exc.DBAPIError("INSERT …", {}, duplicate))
    assert not _bad_value(sa.exc.DBAPIError("INSERT …", {}, ConnectionError("gone")))
