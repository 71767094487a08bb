"""Sealing stored credentials: a round trip, the refusals that say why (never the value), and
`cryptography` left unimported until a value is sealed or opened (it is ~7.5 MB of every worker's
memory, and most gateways store no model)."""

from __future__ import annotations

import pytest
from tests.fresh import packages_after

from seance.gateway.store.sealing import PREFIX, Sealer, SealError


def test_a_literal_credential_is_sealed_and_opened_again() -> None:
    sealer = Sealer.of({}, "sk-master")
    params = {"model": "openai/gpt-4o", "api_key": "sk-provider-123", "max_tokens": 5,
              "api_base": "os.environ/BASE", "aws_secret_access_key": "os.environ/AWS_SECRET"}  # fmt: skip
    stored = sealer.seal(params)
    assert stored["api_key"].startswith(PREFIX) and "sk-provider-123" not in stored["api_key"]
    # not credentials, or references to the environment: stored as written
    assert {k: stored[k] for k in ("model", "max_tokens", "api_base", "aws_secret_access_key")} == {
        "model": "openai/gpt-4o", "max_tokens": 5, "api_base": "os.environ/BASE",
        "aws_secret_access_key": "os.environ/AWS_SECRET",
    }  # fmt: skip
    assert sealer.seal(stored) == stored  # sealing twice changes nothing
    assert Sealer.of({}, "sk-master").open(stored) == params  # another worker, the same secret


def test_the_salt_key_comes_before_the_master_key() -> None:
    stored = Sealer.of({"LITELLM_SALT_KEY": "salt"}, "sk-master").seal({"api_key": "secret-value"})
    assert Sealer.of({"LITELLM_SALT_KEY": "salt"}, "sk-other").open(stored) == {"api_key": "secret-value"}
    with pytest.raises(SealError, match="sealed under another") as refused:
        Sealer.of({}, "sk-master").open(stored)
    assert "secret-value" not in str(refused.value)


def test_without_a_secret_a_literal_is_refused_and_a_reference_is_not() -> None:
    sealer = Sealer.of({}, None)
    with pytest.raises(SealError, match=r"litellm_params\.api_key: a literal credential") as refused:
        sealer.seal({"api_key": "sk-provider-123"})
    assert "sk-provider-123" not in str(refused.value)
    assert sealer.seal({"api_key": "os.environ/KEY"}) == {"api_key": "os.environ/KEY"}
    stored = Sealer.of({}, "sk-master").seal({"api_key": "sk-provider-123"})
    with pytest.raises(SealError, match="no LITELLM_SALT_KEY or master key"):
        sealer.open(stored)


def test_the_gateway_does_not_import_cryptography_until_a_value_is_sealed() -> None:
    start = (
        "import seance.gateway.app, seance.gateway.server, seance.gateway.cli, seance.gateway.model_sync\n"
        "from seance.gateway.store.sealing import Sealer\n"
        "sealer = Sealer.of({}, 'sk-master')\n"
    )
    assert "cryptography" not in packages_after(start)
    assert "cryptography" in packages_after(start + "sealer.seal({'api_key': 'x'})\n")
