"""`seance secrets …` end to end through click (tests for src/seance/secrets/cli.py and edit.py)."""

from __future__ import annotations

import os
import pty
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from secrets_testkit import FIXTURES, REPO

from seance.cli import main

DEV_KEY = REPO / "secrets" / "dev-age-key.txt"
EXAMPLE = REPO / "secrets" / "secrets.yaml"
DEV_RECIPIENT = "age1arz9jrl0vef5ajc74thlvzu4yc5mawz0el0g6hq5pa5wzswe7vyseymznu"


@pytest.fixture(autouse=True)
def sops_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("SOPS_") or name in ("XDG_CONFIG_HOME", "EDITOR", "GNUPGHOME"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(DEV_KEY))
    monkeypatch.chdir(tmp_path)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["secrets", *args])


def one_error_line(result: Result) -> str:
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_decrypt_yaml_json_and_env() -> None:
    assert "LITELLM_MASTER_KEY: sk-seance-dev-master-key" in run("decrypt", str(EXAMPLE)).output
    assert '"LITELLM_MASTER_KEY": "sk-seance-dev-master-key"' in run("decrypt", str(EXAMPLE), "--format", "json").output
    env = run("decrypt", str(EXAMPLE), "--format", "env").output
    assert "LITELLM_MASTER_KEY=sk-seance-dev-master-key\n" in env and "STRIPE_SECRET_KEY=" in env


def test_decrypt_env_is_dotenv_with_escaped_newlines(tmp_path: Path) -> None:
    plain = tmp_path / "m.yaml"
    plain.write_text("svc:\n    CERT: |\n        line one\n        line two\n    PLAIN: it's\n")
    run("encrypt", str(plain), "--age", DEV_RECIPIENT, "-i")
    assert run("decrypt", str(plain), "--format", "env").output == "CERT=line one\\nline two\\n\nPLAIN=it's\n"


def test_env_prints_quoted_exports_for_one_service(tmp_path: Path) -> None:
    result = run("env", str(EXAMPLE), "--service", "litellm")
    assert result.exit_code == 0
    assert "export LITELLM_MASTER_KEY=sk-seance-dev-master-key\n" in result.output
    assert "STRIPE" not in result.output
    plain = tmp_path / "q.yaml"
    plain.write_text('svc:\n    TOKEN: "it\'s $HOME"\n')
    run("encrypt", str(plain), "--age", DEV_RECIPIENT, "-i")
    assert run("env", str(plain)).output == "export TOKEN='it'\"'\"'s $HOME'\n"


def test_validate_reports_layout_and_required_names(tmp_path: Path) -> None:
    result = run("validate", str(EXAMPLE))
    assert result.exit_code == 0 and "OK (nested; litellm: 4, stripe: 1)" in result.output
    plain = tmp_path / "s.yaml"
    plain.write_text("litellm:\n    OPENAI_API_KEY: x\n")
    assert run("encrypt", str(plain), "--age", DEV_RECIPIENT, "--in-place").exit_code == 0
    assert "service 'litellm' lacks required secret(s): LITELLM_MASTER_KEY" in one_error_line(
        run("validate", str(plain))
    )
    assert run("validate", str(plain), "--require", "OPENAI_API_KEY").exit_code == 0


def test_encrypt_uses_sops_yaml_rules_and_refuses_without_recipients(tmp_path: Path) -> None:
    plain = tmp_path / "secrets" / "s.yaml"
    plain.parent.mkdir()
    plain.write_text("svc:\n    A: b\n")
    assert "no .sops.yaml found" in one_error_line(run("encrypt", str(plain)))
    (tmp_path / ".sops.yaml").write_text(f"creation_rules:\n  - path_regex: secrets/.*\n    age: {DEV_RECIPIENT}\n")
    result = run("encrypt", str(plain))
    assert result.exit_code == 0 and f"recipient: {DEV_RECIPIENT}" in result.output
    assert plain.read_text() == "svc:\n    A: b\n"  # stdout only without --in-place
    assert run("encrypt", str(plain), "-i").exit_code == 0
    assert "it is already encrypted" in one_error_line(run("encrypt", str(plain), "-i"))
    named_sops = tmp_path / "secrets" / "n.yaml"
    named_sops.write_text("sops: my own key\n")
    assert "that key must be renamed" in one_error_line(run("encrypt", str(named_sops)))
    dotenv = tmp_path / "secrets" / "x.env"
    dotenv.write_text("A=b\n")
    assert "dotenv and INI sops files are not supported" in one_error_line(run("encrypt", str(dotenv)))
    assert run("decrypt", str(plain)).output == "svc:\n    A: b\n"


def test_bad_inputs_are_one_clear_error_line(tmp_path: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("a: [1, 2\nb: c\n")
    assert re.match(r"Error: .*bad\.yaml: not valid YAML at line \d", one_error_line(run("decrypt", str(bad_yaml))))
    assert "no such file" in one_error_line(run("decrypt", str(tmp_path / "missing.yaml")))
    sops_key = tmp_path / "has_sops.yaml"
    sops_key.write_text("sops: 1\n")
    assert "'sops' section must be a mapping" in one_error_line(run("decrypt", str(sops_key)))
    truncated = tmp_path / "trunc.yaml"
    truncated.write_text(re.sub(r"(OPENAI_API_KEY: ENC\[AES256_GCM,data:)[^\]]*\]", r"\1abc", EXAMPLE.read_text()))
    line = one_error_line(run("decrypt", str(truncated)))
    assert "litellm.OPENAI_API_KEY: value is not in sops' ENC" in line
    assert "sk-" not in line


def test_wrong_key_is_one_clear_error_line(monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = FIXTURES / "keys" / "sops-age.key.txt"
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key_file))
    line = one_error_line(run("decrypt", str(EXAMPLE)))
    assert "no available key decrypts the data key" in line and f"the file is for age {DEV_RECIPIENT}" in line
    tried = "age1je6kjhzuhdjy3fqptpttxjh5k8q46vygzlgtpuq3030c947pc5tqz9dqvr"  # that key file's public key
    assert f"tried age {tried} from SOPS_AGE_KEY_FILE={key_file}" in line
    assert "AGE-SECRET-KEY" not in line
    monkeypatch.delenv("SOPS_AGE_KEY_FILE")
    line = one_error_line(run("decrypt", str(EXAMPLE)))
    assert "tried no age identity (none in SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, SOPS_AGE_KEY_CMD" in line


def test_no_mac_file_needs_ignore_mac(monkeypatch: pytest.MonkeyPatch, gnupg_home: Path) -> None:
    monkeypatch.setenv("GNUPGHOME", str(gnupg_home))
    path = str(FIXTURES / "pgp" / "sops.no_mac.yaml")
    assert "has no MAC" in one_error_line(run("decrypt", path))
    assert run("decrypt", path, "--ignore-mac").output == "myapp1: t00m4nys3cr3tzupdated\n"


def test_keygen_writes_a_private_identity_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "keys" / "new.txt"
    result = run("keygen", "-o", str(target))
    assert result.exit_code == 0
    recipient = result.stdout.strip()
    assert recipient.startswith("age1")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert f"# public key: {recipient}" in target.read_text()
    assert "already exists" in one_error_line(run("keygen", "-o", str(target)))
    plain = tmp_path / "p.yaml"
    plain.write_text("a: b\n")
    run("encrypt", str(plain), "--age", recipient, "-i")
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(target))
    assert run("decrypt", str(plain)).output == "a: b\n"


def test_keygen_defaults_to_sops_keys_txt(tmp_path: Path) -> None:
    assert run("keygen").exit_code == 0
    default = tmp_path / "home" / ".config" / "sops" / "age" / "keys.txt"
    assert stat.S_IMODE(default.stat().st_mode) == 0o600


def test_rotate_changes_every_ciphertext_but_not_the_plaintext(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(EXAMPLE.read_text())
    before = path.read_text()
    assert run("rotate", str(path), "-i").exit_code == 0
    after = path.read_text()
    old = set(re.findall(r"data:([^,]+)", before))
    assert not old & set(re.findall(r"data:([^,]+)", after))
    assert run("decrypt", str(path)).output == run("decrypt", str(EXAMPLE)).output


def test_updatekeys_follows_sops_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secrets" / "s.yaml"
    path.parent.mkdir()
    path.write_text(EXAMPLE.read_text())
    (tmp_path / ".sops.yaml").write_text(f"creation_rules:\n  - age: {DEV_RECIPIENT}\n")
    assert "already up to date" in run("updatekeys", str(path)).output
    other = "age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw"
    (tmp_path / ".sops.yaml").write_text(f"creation_rules:\n  - age: {other}\n")
    result = run("updatekeys", str(path))
    assert result.exit_code == 0 and f"+ age {other}" in result.output and "data key rotated" in result.output
    assert "no available key" in one_error_line(run("decrypt", str(path)))  # the old key is out
    expected = run("decrypt", str(EXAMPLE)).output
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(FIXTURES / "keys" / "sops-nix.age-keys.txt"))
    assert run("decrypt", str(path)).output == expected


# -- edit ---------------------------------------------------------------------------------------
def editor(tmp_path: Path, body: str) -> str:
    """An $EDITOR that logs the temp file's path and mode, then runs `body` (path in `p`)."""
    script = tmp_path / "editor.py"
    script.write_text(
        "import os, signal, stat, sys\n"
        "p = sys.argv[1]\n"
        f"open({str(tmp_path / 'seen')!r}, 'w').write(p + ' ' + oct(stat.S_IMODE(os.stat(p).st_mode)))\n" + body
    )
    return f"{sys.executable} {script}"


def seen(tmp_path: Path) -> tuple[Path, str]:
    path, mode = (tmp_path / "seen").read_text().split()
    return Path(path), mode


def example_copy(tmp_path: Path) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(EXAMPLE.read_text())
    return path


def test_edit_changes_one_value_and_keeps_the_other_ciphertexts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = example_copy(tmp_path)
    monkeypatch.setenv(
        "EDITOR",
        editor(tmp_path, "t = open(p).read().replace('sk_test_fake', 'sk_test_new')\nopen(p, 'w').write(t)\n"),
    )
    before = path.read_text()
    result = run("edit", str(path))
    assert result.exit_code == 0, result.output
    temp, mode = seen(tmp_path)
    assert mode == "0o600" and not temp.exists() and not temp.parent.exists()
    if Path("/dev/shm").is_dir():
        assert temp.parent.parent == Path("/dev/shm")
    after = path.read_text()
    changed = [line for line in after.splitlines() if line not in before.splitlines()]
    assert [line.split(":")[0].strip() for line in changed] == ["STRIPE_SECRET_KEY", "lastmodified", "mac"]
    assert "sk_test_new" in run("decrypt", str(path)).output


def test_edit_removes_editor_swap_files_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = example_copy(tmp_path)
    swap = "open(os.path.join(os.path.dirname(p), '.secrets.yaml.swp'), 'w').write(open(p).read())\n"
    monkeypatch.setenv("EDITOR", editor(tmp_path, swap + "open(p, 'a').write('extra:\\n    X: z\\n')\n"))
    assert run("edit", str(path)).exit_code == 0
    temp, _ = seen(tmp_path)
    assert not temp.parent.exists()
    assert "X: z" in run("decrypt", str(path)).output


def test_edit_without_change_leaves_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = example_copy(tmp_path)
    monkeypatch.setenv("EDITOR", editor(tmp_path, ""))
    before = path.read_text()
    result = run("edit", str(path))
    assert result.exit_code == 0 and "no changes" in result.output
    assert path.read_text() == before and not seen(tmp_path)[0].exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("sys.exit(3)\n", "the editor exited with status 3"),
        ("open(p, 'w').write('a: [broken\\n')\n", "not valid YAML"),
        ("open(p, 'w').write('sops: {}\\n')\n", "top-level 'sops' key"),
        ("os.kill(os.getppid(), signal.SIGTERM)\n", "interrupted by SIGTERM"),
    ],
)
def test_edit_failures_leave_file_and_no_plaintext(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, message: str
) -> None:
    path = example_copy(tmp_path)
    monkeypatch.setenv("EDITOR", editor(tmp_path, body))
    before = path.read_text()
    assert message in one_error_line(run("edit", str(path)))
    assert path.read_text() == before
    assert not seen(tmp_path)[0].exists()


# What a terminal does on Ctrl-C: SIGINT to every foreground process, the editor and us. (Signalling
# only us made the old test depend on how pytest was started: a background job inherits SIGINT
# ignored, and then nothing happened at all.)
CTRL_C = (
    "signal.signal(signal.SIGINT, signal.SIG_DFL)\n"
    "os.kill(os.getppid(), signal.SIGINT)\n"
    "os.kill(os.getpid(), signal.SIGINT)\n"
)


@pytest.mark.parametrize("inherited", [signal.default_int_handler, signal.SIG_IGN], ids=["foreground", "background"])
def test_edit_ctrl_c_removes_the_plaintext(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inherited: signal.Handlers
) -> None:
    path = example_copy(tmp_path)
    monkeypatch.setenv("EDITOR", editor(tmp_path, CTRL_C))
    before = path.read_text()
    previous = signal.signal(signal.SIGINT, inherited)
    try:
        result = run("edit", str(path))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert result.exit_code == 130
    assert "the editor was interrupted (SIGINT); the file was not changed" in one_error_line(result)
    assert path.read_text() == before and not seen(tmp_path)[0].exists()


def test_ctrl_c_while_the_editor_runs_is_the_editor_s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An editor that handles Ctrl-C itself and goes on: the edit must not be lost under it.
    path = example_copy(tmp_path)
    change = "t = open(p).read().replace('sk_test_fake', 'sk_test_new')\nopen(p, 'w').write(t)\n"
    monkeypatch.setenv("EDITOR", editor(tmp_path, "os.kill(os.getppid(), signal.SIGINT)\n" + change))
    result = run("edit", str(path))
    assert result.exit_code == 0, result.output
    assert "sk_test_new" in run("decrypt", str(path)).output


@pytest.mark.parametrize(
    ("edited", "message"),
    [
        ("litellm:\n    BAD-NAME: x\n", "not valid environment variable names: 'BAD-NAME'"),
        ("litellm:\n    TOKEN: null\n", "litellm.TOKEN has no value (null)"),
        ("litellm:\n    TOKEN: x\nSTRAY: y\n", "mixes service sections (litellm) with top-level values (STRAY)"),
        ("a:\n    T: x\nb:\n    T: y\n", "T is defined differently in 'a' and 'b'"),
    ],
)
def test_an_edit_that_breaks_the_secrets_file_is_not_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edited: str, message: str
) -> None:
    path = example_copy(tmp_path)
    monkeypatch.setenv("EDITOR", editor(tmp_path, f"open(p, 'w').write({edited!r})\n"))
    before = path.read_text()
    line = one_error_line(run("edit", str(path)))  # no terminal on stdin: fail, do not ask
    assert message in line and line.endswith(f"{path} was not changed")
    assert path.read_text() == before and not seen(tmp_path)[0].exists()


def test_any_other_sops_file_stays_editable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # not a secrets file (two documents, a list): edit is a sops editor for it, as before
    plain = tmp_path / "k8s.yaml"
    plain.write_text("kind: Secret\nitems: [1, 2]\n---\nkind: Other\n")
    assert run("encrypt", str(plain), "--age", DEV_RECIPIENT, "-i").exit_code == 0
    monkeypatch.setenv("EDITOR", editor(tmp_path, "open(p, 'a').write('extra: null\\n')\n"))
    assert run("edit", str(plain)).exit_code == 0
    assert run("decrypt", str(plain)).output.endswith("kind: Other\nextra: null\n")


def run_in_a_terminal(args: list[str], keys: bytes) -> subprocess.CompletedProcess[str]:
    """`seance ARGS` with a pseudo-terminal as standard input, `keys` typed into it ahead."""
    main_fd, terminal = pty.openpty()
    try:
        os.write(main_fd, keys)
        return subprocess.run(
            [sys.executable, "-m", "seance", *args], stdin=terminal, capture_output=True, text=True, timeout=60
        )
    finally:
        os.close(terminal)
        os.close(main_fd)


def test_an_invalid_edit_reopens_the_editor_on_the_same_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = example_copy(tmp_path)
    runs = tmp_path / "runs"
    script = (
        f"runs = open({str(runs)!r}, 'a+')\nruns.seek(0)\nn = len(runs.read())\nruns.write('x')\n"
        "t = open(p).read()\n"
        "if n == 0: open(p, 'w').write(t.replace('STRIPE_SECRET_KEY', 'STRIPE-KEY'))\n"
        "else: open(p, 'w').write(t.replace('STRIPE-KEY', 'STRIPE_KEY'))\n"  # the broken text came back
    )
    monkeypatch.setenv("EDITOR", editor(tmp_path, script))
    result = run_in_a_terminal(["secrets", "edit", str(path)], b"\n")
    assert result.returncode == 0, result.stderr
    assert runs.read_text() == "xx"
    assert "Error: " in result.stderr and "'STRIPE-KEY'" in result.stderr and "Press Enter" in result.stderr
    assert "STRIPE_KEY: sk_test_fake" in run("decrypt", str(path)).output
    assert not seen(tmp_path)[0].exists()


def test_giving_up_on_an_invalid_edit_leaves_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = example_copy(tmp_path)
    before = path.read_text()
    monkeypatch.setenv("EDITOR", editor(tmp_path, "open(p, 'w').write('a: [broken\\n')\n"))
    result = run_in_a_terminal(["secrets", "edit", str(path)], b"\x04")  # Ctrl-D: end of input
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].endswith(f"{path} was not changed")
    assert path.read_text() == before and not seen(tmp_path)[0].exists()


def test_edit_creates_a_new_file_from_sops_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".sops.yaml").write_text(f"creation_rules:\n  - age: {DEV_RECIPIENT}\n")
    monkeypatch.setenv("EDITOR", editor(tmp_path, "open(p, 'w').write('svc:\\n    TOKEN: t\\n')\n"))
    path = tmp_path / "new.yaml"
    assert run("edit", str(path)).exit_code == 0
    assert run("decrypt", str(path)).output == "svc:\n    TOKEN: t\n"


def test_edit_creates_a_new_file_for_age_recipients(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDITOR", editor(tmp_path, "open(p, 'w').write('svc:\\n    TOKEN: t\\n')\n"))
    path = tmp_path / "new.yaml"
    line = one_error_line(run("edit", str(path)))
    assert "no .sops.yaml found; pass --age RECIPIENT" in line and "SOPS_AGE_RECIPIENTS" in line
    assert not path.exists()
    assert run("edit", "--age", DEV_RECIPIENT, str(path)).exit_code == 0
    assert f"recipient: {DEV_RECIPIENT}" in path.read_text()
    assert run("decrypt", str(path)).output == "svc:\n    TOKEN: t\n"
    assert "--age/--pgp choose the recipients of a new file" in one_error_line(
        run("edit", "--age", DEV_RECIPIENT, str(path))
    )
