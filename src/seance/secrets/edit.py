"""`seance secrets edit`: decrypt to a private temporary file, run $EDITOR, re-encrypt.

The plaintext lives only in a 0600 file in /dev/shm (memory) where available, and is removed on
every way out: success, an invalid edit, editor failure, Ctrl-C, SIGTERM.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from seance.secrets.creation_rules import metadata_for_new_file
from seance.secrets.errors import SecretsError
from seance.secrets.fileio import private_plaintext, write_atomic
from seance.secrets.keyring import KeyRing
from seance.secrets.operations import encrypt_plaintext, reencrypt
from seance.secrets.sopsfile import DelegationNeeded, Format, decrypt, detect_format, parse, read_text, render

NEW_FILE_TEMPLATE = "# New secrets file: one section per service.\nlitellm:\n    LITELLM_MASTER_KEY: change-me\n"


def editor_command(env: Mapping[str, str]) -> list[str]:
    """$SOPS_EDITOR, then $EDITOR, then the first of vim / nano / vi on PATH (as sops does)."""
    for variable in ("SOPS_EDITOR", "EDITOR"):
        if env.get(variable):
            return shlex.split(env[variable])
    for candidate in ("vim", "nano", "vi"):
        if shutil.which(candidate):
            return [candidate]
    raise SecretsError("no editor: set $EDITOR")


def _run_editor(command: list[str], path: Path) -> None:
    try:
        done = subprocess.run([*command, str(path)], check=False)
    except OSError as error:
        raise SecretsError(f"cannot start the editor {command[0]!r}: {error.strerror}") from None
    if done.returncode != 0:
        raise SecretsError(f"the editor exited with status {done.returncode}; the file was not changed")


def _edit_until_valid(text: str, fmt: Format, command: list[str], encrypt_edit: Callable[[str], str]) -> str | None:
    """Run the editor; returns the new encrypted text, or None when nothing changed."""
    with private_plaintext(text, f".{fmt if fmt == 'json' else 'yaml'}") as plaintext:
        while True:
            _run_editor(command, plaintext)
            edited = plaintext.read_text(encoding="utf-8")
            if edited == text:
                return None
            try:
                return encrypt_edit(edited)
            except SecretsError as error:
                if not sys.stdin.isatty():
                    raise
                print(f"Error: {error}", file=sys.stderr)
                answer = input("Edit again to fix it? [Y/n] ").strip().lower()
                if answer not in ("", "y", "yes"):
                    raise SecretsError("edit abandoned; the file was not changed") from None


def edit_file(path: Path, keyring: KeyRing, *, ignore_mac: bool = False, env: Mapping[str, str] | None = None) -> bool:
    """Edit `path` in place; returns False when the content did not change."""
    env = os.environ if env is None else env
    command = editor_command(env)
    fmt = detect_format(path)
    if not path.exists():
        metadata = metadata_for_new_file(path, env=env)
        template = "{}\n" if fmt == "json" else NEW_FILE_TEMPLATE
        new_text = _edit_until_valid(
            template, fmt, command, lambda edited: encrypt_plaintext(edited, fmt, str(path), metadata, keyring)
        )
        if new_text is None:
            return False
        write_atomic(path, new_text, 0o644)
        return True
    encrypted = parse(read_text(path), fmt, str(path))
    try:
        decrypted = decrypt(encrypted, str(path), keyring, ignore_mac=ignore_mac)
    except DelegationNeeded as reason:
        raise SecretsError(f"{reason}; edit it with `sops edit`") from None
    plaintext = render(decrypted.docs, None, fmt)
    new_text = _edit_until_valid(
        plaintext, fmt, command, lambda edited: reencrypt(edited, encrypted, decrypted, keyring, str(path))
    )
    if new_text is None:
        return False
    write_atomic(path, new_text)
    return True
