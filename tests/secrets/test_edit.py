"""`edit_file` and the editor it runs (src/seance/secrets/edit.py, editor.py), below the CLI."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from secrets_testkit import REPO

from seance.secrets.edit import edit_file
from seance.secrets.errors import Interrupted, SecretsError
from seance.secrets.keyring import KeyRing

DEV_KEY = REPO / "secrets" / "dev-age-key.txt"


@pytest.fixture
def secrets_copy(tmp_path: Path) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text((REPO / "secrets" / "secrets.yaml").read_text())
    return path


def env_with_editor(tmp_path: Path, body: str) -> dict[str, str]:
    """An environment whose $EDITOR records the plaintext path and its own pid, then runs `body`."""
    script = tmp_path / "editor.py"
    script.write_text(
        "import os, signal, sys, time\np = sys.argv[1]\n"
        f"open({str(tmp_path / 'seen')!r}, 'w').write(p + ' ' + str(os.getpid()))\n" + body
    )
    return {"EDITOR": f"{sys.executable} {script}", "SOPS_AGE_KEY_FILE": str(DEV_KEY), "HOME": str(tmp_path)}


def seen(tmp_path: Path) -> tuple[Path, int]:
    path, pid = (tmp_path / "seen").read_text().split()
    return Path(path), int(pid)


def keyring() -> KeyRing:
    return KeyRing(env={"SOPS_AGE_KEY_FILE": str(DEV_KEY)}, use_gpg=False)


def test_ctrl_c_when_asked_to_edit_again_discards_everything(tmp_path: Path, secrets_copy: Path) -> None:
    env = env_with_editor(tmp_path, "open(p, 'w').write('a: [broken\\n')\n")
    before = secrets_copy.read_text()

    def press_ctrl_c(problem: SecretsError) -> bool:
        assert "not valid YAML" in str(problem)
        raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="interrupted; the file was not changed"):
        edit_file(secrets_copy, keyring(), env=env, retry=press_ctrl_c)
    assert secrets_copy.read_text() == before and not seen(tmp_path)[0].exists()


def test_sigterm_kills_an_editor_that_stays_and_waits_for_it(tmp_path: Path, secrets_copy: Path) -> None:
    # The editor must be gone before the plaintext is removed and edit returns: else it could write
    # the plaintext (or a swap file of it) somewhere after the clean-up.
    env = env_with_editor(tmp_path, "os.kill(os.getppid(), signal.SIGTERM)\ntime.sleep(60)\n")
    started = time.monotonic()
    with pytest.raises(SecretsError, match="interrupted by SIGTERM; the file was not changed"):
        edit_file(secrets_copy, keyring(), env=env)
    assert time.monotonic() - started < 30
    plaintext, pid = seen(tmp_path)
    assert not plaintext.parent.exists()
    with pytest.raises(ProcessLookupError):  # killed and reaped, not a zombie
        os.kill(pid, 0)


def test_an_editor_killed_by_a_signal_discards_the_edit(tmp_path: Path, secrets_copy: Path) -> None:
    env = env_with_editor(tmp_path, "open(p, 'a').write('x:\\n    Y: z\\n')\nos.kill(os.getpid(), signal.SIGKILL)\n")
    before = secrets_copy.read_text()
    with pytest.raises(SecretsError, match="the editor was killed by SIGKILL; the file was not changed"):
        edit_file(secrets_copy, keyring(), env=env)
    assert secrets_copy.read_text() == before


def test_the_retry_sees_each_problem_and_can_give_up(tmp_path: Path, secrets_copy: Path) -> None:
    env = env_with_editor(tmp_path, "open(p, 'w').write('svc:\\n    A: null\\n')\n")
    problems: list[str] = []

    def give_up_second_time(problem: SecretsError) -> bool:
        problems.append(str(problem))
        return len(problems) < 2

    with pytest.raises(SecretsError, match=rf"svc\.A has no value .*; {secrets_copy} was not changed$"):
        edit_file(secrets_copy, keyring(), env=env, retry=give_up_second_time)
    assert len(problems) == 2 and all(str(secrets_copy) in problem for problem in problems)
