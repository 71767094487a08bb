"""End to end through the real SOPS format: a file encrypted by the `sops` binary for a throw-away age
key, decrypted in-process by `seance.secrets`, flattened into the manifest's Secret."""

from __future__ import annotations

from pathlib import Path

import pyrage
import pytest
import yaml
from click.testing import CliRunner
from tests.deploy.helpers import FLAT, find

from seance.cli import main
from seance.deploy.errors import DeployError
from seance.deploy.secrets_source import load_flat_secrets


def test_flattens_every_service(age_files: dict[str, Path], age_key: None) -> None:
    assert load_flat_secrets(age_files["secrets"]) == FLAT


def test_conflicting_services_are_one_clear_error(age_files: dict[str, Path], age_key: None) -> None:
    with pytest.raises(DeployError, match="OPENAI_API_KEY is defined differently"):
        load_flat_secrets(age_files["conflict"])


def test_wrong_key(age_files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other.txt"
    other.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(other))
    monkeypatch.setenv("HOME", str(tmp_path))  # no default keys.txt to fall back on
    with pytest.raises(DeployError, match="no available key decrypts"):
        load_flat_secrets(age_files["secrets"])


def test_synth_cli_end_to_end(age_files: dict[str, Path], age_key: None, tmp_path: Path) -> None:
    out = tmp_path / "seance.k8s.yaml"
    args = ["synth", "--env", "dev", "--secrets", str(age_files["secrets"]), "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    secret = find(list(yaml.safe_load_all(out.read_text())), "Secret", "seance-secrets")
    assert secret["stringData"] == FLAT


def test_synth_cli_missing_master_key(age_files: dict[str, Path], age_key: None, tmp_path: Path) -> None:
    out = tmp_path / "seance.k8s.yaml"
    args = ["synth", "--secrets", str(age_files["no_master"]), "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"Error: {age_files['no_master']}: missing required secret(s): LITELLM_MASTER_KEY;"
        f" add them to its `litellm:` section with `seance secrets edit {age_files['no_master']}`"
    )
    assert not out.exists()


REPO = Path(__file__).resolve().parents[2]


def test_prod_refuses_the_repository_example_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real example file, decrypted with the public development key: fine for dev, refused for prod."""
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(REPO / "secrets" / "dev-age-key.txt"))
    example = str(REPO / "secrets" / "secrets.yaml")
    out = tmp_path / "out.yaml"
    assert CliRunner().invoke(main, ["synth", "--env", "dev", "--secrets", example, "--out", str(out)]).exit_code == 0
    out.unlink()
    result = CliRunner().invoke(main, ["synth", "--env", "prod", "--secrets", example, "--out", str(out)])
    assert result.exit_code == 1 and not out.exists()
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"Error: {example} is encrypted for the repository's public development key")
    assert "seance secrets updatekeys" in line and "--allow-example-secrets" in line
    allowed = ["synth", "--env", "prod", "--secrets", example, "--out", str(out), "--allow-example-secrets"]
    assert CliRunner().invoke(main, allowed).exit_code == 0
