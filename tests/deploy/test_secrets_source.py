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
    assert result.output.strip() == "Error: missing required secret(s): LITELLM_MASTER_KEY"
    assert not out.exists()
