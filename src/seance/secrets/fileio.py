"""Writing files safely: atomic replacement, and the private plaintext file `edit` needs."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from seance.secrets.errors import Interrupted, SecretsError


def write_atomic(path: Path, text: str, mode: int | None = None) -> None:
    """Replace `path` with `text` in one rename, so a crash never leaves half a file."""
    if mode is None:
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as error:
        raise SecretsError(f"{path}: cannot write it ({error.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise SecretsError(f"{path}: cannot write it ({error.strerror})") from None
        raise


def private_directory() -> str | None:
    """/dev/shm (memory, never written to disk) where it exists, else the system temp directory."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return str(shm)
    return None


class _Terminated(Exception):
    pass


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """SIGTERM/SIGHUP become exceptions while plaintext exists, so `finally` blocks still run (the
    editor, while it runs, gets its own handling: see `editor`)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Terminated(signal.Signals(signum).name)

    previous = {}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError, OSError):  # not in the main thread: nothing to install
            previous[signum] = signal.signal(signum, handler)
    try:
        yield
    except _Terminated as stop:
        raise SecretsError(f"interrupted by {stop}; the file was not changed") from None
    except KeyboardInterrupt:
        raise Interrupted("interrupted; the file was not changed") from None
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextlib.contextmanager
def private_plaintext(text: str, suffix: str) -> Iterator[Path]:
    """A 0600 file holding `text` inside a fresh 0700 directory, both removed on every way out
    (errors, Ctrl-C, SIGTERM). The whole directory goes, so editor swap and backup files written
    next to the file (vim's .swp, emacs' ~ files) go with it. Ctrl-C becomes `Interrupted`."""
    with _signals_raise():
        directory = Path(tempfile.mkdtemp(prefix="seance-secrets-", dir=private_directory()))
        try:
            path = directory / f"secrets{suffix}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            yield path
        finally:
            shutil.rmtree(directory, ignore_errors=True)
            if directory.exists():
                print(f"warning: could not remove {directory}: it holds plaintext, delete it", file=sys.stderr)
