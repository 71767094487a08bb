"""`seance secrets edit`: decrypt to a private temporary file, run $EDITOR, check, re-encrypt.

The plaintext lives only in a 0600 file in /dev/shm (memory) where available, and is removed on
every way out: success, an invalid edit, editor failure, Ctrl-C, SIGTERM. An edit that is not valid
YAML/JSON, or that breaks a secrets file (a bad name, a null, a value beside the sections), is not
saved: the problem is shown and the editor reopened on the same text, as sops does — or, with no
terminal to ask on, the command fails and the file stays as it was.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from seance.secrets.creation_rules import metadata_for_new_file
from seance.secrets.editor import editor_command, run_editor
from seance.secrets.errors import SecretsError
from seance.secrets.fileio import private_plaintext, write_atomic
from seance.secrets.keyring import KeyRing
from seance.secrets.model import check_secrets_docs
from seance.secrets.operations import Check, encrypt_plaintext, reencrypt
from seance.secrets.sopsfile import DelegationNeeded, Format, decrypt, detect_format, parse, read_text, render
from seance.secrets.tree import Branch

NEW_FILE_TEMPLATE = "# New secrets file: one section per service.\nlitellm:\n    LITELLM_MASTER_KEY: change-me\n"
# Shown a problem with the edit; True to reopen the editor on the same text, False to give up.
Retry = Callable[[SecretsError], bool]


def _edit_until_valid(
    path: Path, text: str, fmt: Format, command: list[str], encrypt_edit: Callable[[str], str], retry: Retry | None
) -> str | None:
    """Run the editor until the edit encrypts; returns the new encrypted text, or None when nothing changed."""
    with private_plaintext(text, f".{fmt if fmt == 'json' else 'yaml'}") as plaintext:
        while True:
            run_editor(command, plaintext)
            try:
                edited = _read_edit(plaintext, path)
                return None if edited == text else encrypt_edit(edited)
            except SecretsError as problem:
                if retry is None or not retry(problem):
                    raise SecretsError(f"{problem}; {path} was not changed") from None


def _read_edit(plaintext: Path, path: Path) -> str:
    try:
        return plaintext.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SecretsError(f"{path}: the edited text is not UTF-8") from None
    except OSError as error:
        raise SecretsError(f"{path}: the editor left no file to read ({error.strerror})") from None


def _secrets_check(docs: list[Branch], where: str) -> Check | None:
    """The secrets-file check for an edit of `docs`, if they are a secrets file: an edit must not
    break one, while any other sops file (a Kubernetes manifest, several documents) stays editable."""
    try:
        check_secrets_docs(docs, where)
    except SecretsError:
        return None
    return check_secrets_docs


def edit_file(
    path: Path,
    keyring: KeyRing,
    *,
    ignore_mac: bool = False,
    env: Mapping[str, str] | None = None,
    age: Sequence[str] = (),
    pgp: Sequence[str] = (),
    retry: Retry | None = None,
) -> bool:
    """Edit `path` in place (creating it for `age`/`pgp` recipients or .sops.yaml's); returns False
    when the content did not change. `retry` is asked what to do about an invalid edit; without it,
    an invalid edit fails."""
    env = os.environ if env is None else env
    command = editor_command(env)
    fmt = detect_format(path)
    if not path.exists():
        metadata = metadata_for_new_file(path, age=list(age), pgp=list(pgp), env=env)
        template = "{}\n" if fmt == "json" else NEW_FILE_TEMPLATE
        new_text = _edit_until_valid(
            path,
            template,
            fmt,
            command,
            lambda edited: encrypt_plaintext(edited, fmt, str(path), metadata, keyring, check_secrets_docs),
            retry,
        )
        if new_text is None:
            return False
        write_atomic(path, new_text, 0o644)
        return True
    if age or pgp:
        raise SecretsError(
            f"{path} exists: --age/--pgp choose the recipients of a new file; to change this one's,"
            f" edit .sops.yaml and run `seance secrets updatekeys {path}`"
        )
    encrypted = parse(read_text(path), fmt, str(path))
    try:
        decrypted = decrypt(encrypted, str(path), keyring, ignore_mac=ignore_mac)
    except DelegationNeeded as reason:
        raise SecretsError(f"{reason}; edit it with `sops edit`") from None
    check = _secrets_check(decrypted.docs, str(path))
    new_text = _edit_until_valid(
        path,
        render(decrypted.docs, None, fmt),
        fmt,
        command,
        lambda edited: reencrypt(edited, encrypted, decrypted, keyring, str(path), check),
        retry,
    )
    if new_text is None:
        return False
    write_atomic(path, new_text)
    return True
