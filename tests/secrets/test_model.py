"""The secrets model: nested and legacy flat layouts, validation, flattening, the public API."""

from __future__ import annotations

from pathlib import Path

import pytest
from secrets_testkit import REPO

from seance.secrets import LEGACY_SERVICE, KeyRing, Secrets, SecretsError, load_secrets, secrets_from_tree
from seance.secrets.yaml_load import load_yaml


def model(text: str) -> Secrets:
    return secrets_from_tree(load_yaml(text, "s.yaml")[0], "s.yaml")


def test_nested_layout_gives_per_service_views() -> None:
    secrets = model("litellm:\n  LITELLM_MASTER_KEY: sk-1\n  OPENAI_API_KEY: sk-2\nstripe:\n  STRIPE_SECRET_KEY: x\n")
    assert secrets.layout == "nested"
    assert secrets.service("litellm") == {"LITELLM_MASTER_KEY": "sk-1", "OPENAI_API_KEY": "sk-2"}
    assert secrets.flatten() == {"LITELLM_MASTER_KEY": "sk-1", "OPENAI_API_KEY": "sk-2", "STRIPE_SECRET_KEY": "x"}


def test_service_view_is_a_copy() -> None:
    secrets = model("litellm:\n  A: b\n")
    secrets.service("litellm")["A"] = "changed"
    assert secrets.service("litellm") == {"A": "b"}


def test_flat_layout_is_one_legacy_service_returned_for_any_name() -> None:
    secrets = model("STRIPE_SECRET_KEY: x\nLITELLM_MASTER_KEY: y\n")
    assert secrets.layout == "flat"
    assert secrets.services == {LEGACY_SERVICE: {"STRIPE_SECRET_KEY": "x", "LITELLM_MASTER_KEY": "y"}}
    assert secrets.service("litellm") == secrets.flatten() == secrets.services[LEGACY_SERVICE]


def test_mixed_layout_is_refused_naming_both_sides() -> None:
    with pytest.raises(SecretsError, match=r"mixes service sections \(litellm\) with top-level values \(TOKEN\)"):
        model("litellm:\n  A: b\nTOKEN: c\n")


def test_values_render_as_yaml_shows_them() -> None:
    secrets = model(
        "svc:\n  PORT: 8080\n  DEBUG: true\n  RATIO: 1.0e+21\n  SMALL: 0.5\n  DAY: 2025-01-02\n  EMPTY: ''\n"
    )
    assert secrets.service("svc") == {
        "PORT": "8080",
        "DEBUG": "true",
        "RATIO": "1e+21",
        "SMALL": "0.5",
        "DAY": "2025-01-02T00:00:00Z",
        "EMPTY": "",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("svc:\n  1BAD: x\n", r"not valid environment variable names: '1BAD'"),
        ('svc:\n  "NAME\\n": x\n', r"not valid environment variable names: 'NAME\\n'"),
        ("svc:\n  BAD-NAME: x\n", r"'BAD-NAME'"),
        ("BAD NAME: x\n", r"'BAD NAME'"),
        ("svc:\n  A: null\n", r"svc\.A has no value"),
        ("svc:\n  A: [1, 2]\n", r"svc\.A must be a string, number or boolean, not a list"),
        ("svc:\n  A:\n    B: c\n", r"svc\.A must be a string, number or boolean, not a mapping"),
        ("'bad service':\n  A: b\n", r"'bad service' is not a valid service name"),
    ],
)
def test_invalid_content_is_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(SecretsError, match=message):
        model(text)


def test_conflicting_duplicate_names_both_places_and_no_value() -> None:
    secrets = model("a:\n  TOKEN: secret-one\nb:\n  TOKEN: secret-two\n")
    with pytest.raises(SecretsError) as caught:
        secrets.flatten()
    message = str(caught.value)
    assert "a.TOKEN" in message and "b.TOKEN" in message
    assert "secret-one" not in message and "secret-two" not in message


def test_equal_duplicates_flatten_fine() -> None:
    assert model("a:\n  TOKEN: same\nb:\n  TOKEN: same\n").flatten() == {"TOKEN": "same"}


def test_missing_service_names_file_and_service() -> None:
    with pytest.raises(SecretsError, match=r"s\.yaml: no service 'gateway' \(services in the file: litellm\)"):
        model("litellm:\n  A: b\n").service("gateway")


def test_require_lists_every_missing_name() -> None:
    secrets = model("litellm:\n  A: b\n")
    secrets.require(["A"])
    with pytest.raises(SecretsError, match="missing required secret\\(s\\): LITELLM_MASTER_KEY, OTHER"):
        secrets.require(["LITELLM_MASTER_KEY", "A", "OTHER"])


def test_load_secrets_decrypts_the_repo_example(clean_env: dict[str, str]) -> None:
    env = {**clean_env, "SOPS_AGE_KEY_FILE": str(REPO / "secrets" / "dev-age-key.txt")}
    secrets = load_secrets(REPO / "secrets" / "secrets.yaml", keyring=KeyRing(env=env, use_gpg=False))
    assert secrets.layout == "nested"
    assert secrets.service("litellm")["LITELLM_MASTER_KEY"] == "sk-seance-dev-master-key"
    assert {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "TOGETHER_API_KEY"} <= set(secrets.service("litellm"))
    assert set(secrets.service("stripe")) == {"STRIPE_SECRET_KEY"}
    secrets.require(["LITELLM_MASTER_KEY", "STRIPE_SECRET_KEY"])


def test_load_secrets_uses_sops_environment_discovery(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SOPS_AGE_KEY", raising=False)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(REPO / "secrets" / "dev-age-key.txt"))
    assert load_secrets(str(REPO / "secrets" / "secrets.yaml")).layout == "nested"


def test_load_secrets_without_a_key_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("SOPS_AGE_KEY", "SOPS_AGE_KEY_FILE", "SOPS_AGE_KEY_CMD", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GNUPGHOME", str(tmp_path / "gnupg"))
    with pytest.raises(SecretsError, match=r"secrets\.yaml: no available key decrypts the data key"):
        load_secrets(REPO / "secrets" / "secrets.yaml")


def test_repr_never_shows_values(clean_env: dict[str, str]) -> None:
    from seance.secrets.sopsfile import load_and_decrypt

    ring = KeyRing(env={**clean_env, "SOPS_AGE_KEY_FILE": str(REPO / "secrets" / "dev-age-key.txt")}, use_gpg=False)
    secrets = load_secrets(REPO / "secrets" / "secrets.yaml", keyring=ring)
    assert "LITELLM_MASTER_KEY" in repr(secrets) and "sk-seance" not in repr(secrets)
    decrypted = load_and_decrypt(REPO / "secrets" / "secrets.yaml", ring)
    assert "sk-seance" not in repr(decrypted) and "AGE-SECRET-KEY" not in repr(ring)
