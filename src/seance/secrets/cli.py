"""`seance secrets …`: SOPS-compatible commands. Every expected failure is one `Error: …` line."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from seance.secrets.age_keys import default_keys_file, generate_identity_text
from seance.secrets.creation_rules import metadata_for_new_file
from seance.secrets.edit import edit_file
from seance.secrets.errors import Interrupted, SecretsError
from seance.secrets.fileio import write_atomic
from seance.secrets.keyring import KeyRing, now_rfc3339
from seance.secrets.model import GATEWAY_REQUIRED, Secrets, load_secrets
from seance.secrets.operations import encrypt_plaintext, rotate, update_keys
from seance.secrets.sopsfile import Decrypted, detect_format, load_and_decrypt, read_text, render

F = TypeVar("F", bound=Callable[..., Any])
FILE = click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
IGNORE_MAC = click.option("--ignore-mac", is_flag=True, help="Decrypt even if the MAC is missing or wrong.")


class _InterruptedError(click.ClickException):
    exit_code = 130  # as a shell reports a command stopped by Ctrl-C


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except Interrupted as stop:
        raise _InterruptedError(str(stop)) from None
    except SecretsError as error:
        raise click.ClickException(str(error)) from None


def _decrypt(file: Path, ignore_mac: bool) -> Decrypted:
    return load_and_decrypt(file, KeyRing.from_environ(), ignore_mac=ignore_mac)


def _model(file: Path, ignore_mac: bool) -> Secrets:
    return load_secrets(file, keyring=KeyRing.from_environ(), ignore_mac=ignore_mac)


def _export_lines(values: dict[str, str]) -> str:
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in values.items())


@click.group()
def secrets() -> None:
    """SOPS-encrypted secrets (age and PGP), compatible with the sops tool.

    Keys are found as sops finds them: SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, SOPS_AGE_KEY_CMD, the
    default ~/.config/sops/age/keys.txt, and the GnuPG keyring.
    """


@secrets.command()
@FILE
@click.option("--format", "output_format", type=click.Choice(["yaml", "json", "env"]), help="Default: the file's.")
@IGNORE_MAC
def decrypt(file: Path, output_format: str | None, ignore_mac: bool) -> None:
    """Print the decrypted FILE (never writes plaintext to disk)."""
    with _errors():
        if output_format == "env":  # sops' dotenv form: raw values, newlines as \n
            values = _model(file, ignore_mac).flatten()
            click.echo(
                "".join(f"{name}={value}".replace("\n", "\\n") + "\n" for name, value in values.items()), nl=False
            )
            return
        decrypted = _decrypt(file, ignore_mac)
        fmt = output_format or decrypted.format
        click.echo(render(decrypted.docs, None, "json" if fmt == "json" else "yaml"), nl=False)


def _recipients(values: tuple[str, ...]) -> list[str]:
    return [r.strip() for value in values for r in value.split(",") if r.strip()]


AGE = click.option("--age", "age", multiple=True, metavar="RECIPIENT", help="age recipient (repeatable, or a,b).")
PGP = click.option("--pgp", "pgp", multiple=True, metavar="FINGERPRINT", help="PGP fingerprint (repeatable, or a,b).")


@secrets.command()
@FILE
@AGE
@PGP
@click.option("-i", "--in-place", is_flag=True, help="Replace FILE instead of printing.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file.")
def encrypt(file: Path, age: tuple[str, ...], pgp: tuple[str, ...], in_place: bool, output: Path | None) -> None:
    """Encrypt a plaintext FILE for --age/--pgp recipients, or those of .sops.yaml."""
    with _errors():
        metadata = metadata_for_new_file(output or file, age=_recipients(age), pgp=_recipients(pgp))
        fmt = detect_format(file)
        text = encrypt_plaintext(read_text(file), fmt, str(file), metadata, KeyRing.from_environ())
        if in_place or output:
            write_atomic(output or file, text)
        else:
            click.echo(text, nl=False)


@secrets.command()
@FILE
@AGE
@PGP
@IGNORE_MAC
def edit(file: Path, age: tuple[str, ...], pgp: tuple[str, ...], ignore_mac: bool) -> None:
    """Edit FILE in $EDITOR; unchanged values keep their exact ciphertext.

    A new FILE is encrypted for --age/--pgp, else SOPS_AGE_RECIPIENTS, else .sops.yaml's rule.
    An invalid edit is shown and the editor reopened (with no terminal on stdin: an error).
    """
    retry = _ask_to_edit_again if sys.stdin.isatty() else None
    with _errors():
        changed = edit_file(
            file, KeyRing.from_environ(), ignore_mac=ignore_mac, age=_recipients(age), pgp=_recipients(pgp), retry=retry
        )
    click.echo(f"{file}: {'saved' if changed else 'no changes, file left as it was'}", err=True)


def _ask_to_edit_again(problem: SecretsError) -> bool:
    click.echo(f"Error: {problem}", err=True)
    click.echo("Press Enter to return to the editor, or Ctrl-C to discard the changes.", err=True)
    return sys.stdin.readline() != ""  # end of input: nobody to fix it, give up


@secrets.command()
@FILE
@click.option("--service", default="litellm", show_default=True, help="The service the required names belong to.")
@click.option("--require", "required", multiple=True, metavar="NAME", help="Default: LITELLM_MASTER_KEY.")
@IGNORE_MAC
def validate(file: Path, service: str, required: tuple[str, ...], ignore_mac: bool) -> None:
    """Check FILE decrypts (MAC included), its layout, names, duplicates and required secrets."""
    with _errors():
        model = _model(file, ignore_mac)
        model.flatten()
        model.require_in_service(service, required or GATEWAY_REQUIRED)
    summary = ", ".join(f"{name}: {len(values)}" for name, values in model.services.items())
    click.echo(f"{file}: OK ({model.layout}; {summary})")


@secrets.command()
@FILE
@click.option("--service", help="Only this service's values (default: every service, flattened).")
@IGNORE_MAC
def env(file: Path, service: str | None, ignore_mac: bool) -> None:
    """Print shell `export NAME='value'` lines (eval "$(seance secrets env FILE)")."""
    with _errors():
        model = _model(file, ignore_mac)
        values = model.service(service) if service else model.flatten()
    click.echo(_export_lines(values), nl=False)


@secrets.command()
@click.option("-o", "--output", help="Identity file to create ('-' prints it). Default: sops' keys.txt.")
def keygen(output: str | None) -> None:
    """Create a new age identity (file mode 0600) and print its public recipient."""
    text, recipient = generate_identity_text(now_rfc3339())
    if output == "-":
        click.echo(text, nl=False)
        return
    path = Path(output) if output else default_keys_file(os.environ)
    with _errors():
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise SecretsError(f"{path} already exists; keep it, or pass -o for a new file") from None
        except OSError as error:
            raise SecretsError(f"{path}: cannot create it ({error.strerror})") from None
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
    click.echo(f"wrote {path}", err=True)
    click.echo(recipient)


@secrets.command("rotate")
@FILE
@click.option("-i", "--in-place", is_flag=True, help="Replace FILE instead of printing.")
@IGNORE_MAC
def rotate_command(file: Path, in_place: bool, ignore_mac: bool) -> None:
    """Re-encrypt FILE under a new data key, for the same recipients."""
    with _errors():
        text = rotate(_decrypt(file, ignore_mac), KeyRing.from_environ())
        if in_place:
            write_atomic(file, text)
            click.echo(f"{file}: data key rotated", err=True)
        else:
            click.echo(text, nl=False)


@secrets.command()
@FILE
@IGNORE_MAC
def updatekeys(file: Path, ignore_mac: bool) -> None:
    """Re-wrap FILE's data key for the recipients .sops.yaml gives it now (rotating it if one was removed)."""
    with _errors():
        update = update_keys(file, _decrypt(file, ignore_mac), KeyRing.from_environ())
        if update.text is None:
            click.echo(f"{file}: recipients already up to date", err=True)
            return
        write_atomic(file, update.text)
    for recipient in update.added:
        click.echo(f"+ {recipient}", err=True)
    for recipient in update.removed:
        click.echo(f"- {recipient}", err=True)
    rotated = " (data key rotated)" if update.removed else ""
    click.echo(f"{file}: keys updated{rotated}", err=True)
