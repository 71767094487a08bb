"""`seance gateway` refuses to start on a bad setup with one clear line, and no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.gateway.conftest import BASE_ENV


def start(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "seance", "gateway", "--port", "0", *args],
        env={**BASE_ENV, **env}, capture_output=True, text=True, timeout=30, cwd=cwd,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("config", "env", "needle"),
    [
        (None, {}, "no master key: set LITELLM_MASTER_KEY"),
        ("model_list:\n  - model_name: x\n    litellm_params: {model: nosuch/x}\n", {"LITELLM_MASTER_KEY": "k"},
         "model_list[0].litellm_params.model: unknown provider 'nosuch'"),
        ("model_list: [{model_name: '*', litellm_params: {model: '*'}}]\n"
         "general_settings:\n  master_key: os.environ/MASTER\n", {}, "environment variable MASTER is not set"),
        ("model_list: {", {"LITELLM_MASTER_KEY": "k"}, "not valid YAML"),
        ("model_list: [{model_name: '*', litellm_params: {model: '*'}}]\n"
         "litellm_settings: {cache: true, cache_params: {type: redis}}\n", {"LITELLM_MASTER_KEY": "k"},
         "cache_params.type is redis, but no Redis is configured"),
    ],
)  # fmt: skip
def test_start_failures_are_one_line(tmp_path: Path, config: str | None, env: dict[str, str], needle: str) -> None:
    args = []
    if config is not None:
        path = tmp_path / "config.yaml"
        path.write_text(config)
        args = ["--config", str(path)]
    result = start(args, env, tmp_path)
    assert result.returncode != 0
    assert not (tmp_path / "seance.db").exists(), "a refused start makes no database"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert needle in lines[0]
    assert "--allow-no-auth" in lines[0] or config is not None


def test_config_file_path_variable_is_read(tmp_path: Path) -> None:
    path = tmp_path / "from-env.yaml"
    path.write_text("model_list: [")
    result = start([], {"CONFIG_FILE_PATH": str(path), "LITELLM_MASTER_KEY": "k"}, tmp_path)
    assert result.returncode != 0
    assert str(path) in result.stderr


def test_missing_config_file(tmp_path: Path) -> None:
    result = start(["--config", str(tmp_path / "nope.yaml")], {"LITELLM_MASTER_KEY": "k"}, tmp_path)
    assert result.returncode != 0
    assert "config file not found" in result.stderr


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("flags", "openai_key"),
    [([], "sk-from-the-environment"), (["--secrets-override"], "sk-fake-openai-0000000000000000000000000000")],
)
def test_the_environment_wins_over_secrets_unless_overridden(
    monkeypatch: pytest.MonkeyPatch, flags: list[str], openai_key: str
) -> None:
    """`export OPENAI_API_KEY=…` then `--secrets FILE`: the exported key is used (the dotenv rule)."""
    from click.testing import CliRunner

    from seance.cli import main
    from seance.gateway import cli as gateway_cli
    from seance.gateway.config import ConfigError

    seen: dict[str, str] = {}

    def capture(path: Path | None, environ: dict[str, str]) -> None:
        seen.update(environ)
        raise ConfigError("stop before serving")

    monkeypatch.setattr(gateway_cli, "load_settings", capture)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(REPO / "secrets" / "dev-age-key.txt"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    secrets = str(REPO / "secrets" / "secrets.yaml")
    result = CliRunner().invoke(main, ["gateway", "--secrets", secrets, *flags])
    assert "stop before serving" in result.output
    assert seen["OPENAI_API_KEY"] == openai_key
    assert seen["LITELLM_MASTER_KEY"] == "sk-seance-dev-master-key"  # only in the file: from the file
    note = f"note: OPENAI_API_KEY from the environment, not {secrets} (--secrets-override for the file's)"
    assert (note in result.output) == (not flags)
