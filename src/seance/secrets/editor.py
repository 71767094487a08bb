"""Running the user's editor on the plaintext file, in the foreground, until it is gone.

While the editor runs the terminal is the editor's (as with git): Ctrl-C and Ctrl-\\ are its to
handle and never interrupt us half-way through starting or reaping it. If the editor dies of them,
the edit is discarded. SIGTERM or SIGHUP to us kills the editor, and we return only once it is gone,
so it can never write plaintext again after the caller removes the temporary directory.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import signal
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from seance.secrets.errors import Interrupted, SecretsError

_KEYBOARD = (signal.SIGINT, signal.SIGQUIT)
_TERMINATION = (signal.SIGTERM, signal.SIGHUP)


def editor_command(env: Mapping[str, str]) -> list[str]:
    """$SOPS_EDITOR, then $EDITOR, then the first of vim / nano / vi on PATH (as sops does)."""
    for variable in ("SOPS_EDITOR", "EDITOR"):
        if env.get(variable):
            return shlex.split(env[variable])
    for candidate in ("vim", "nano", "vi"):
        if shutil.which(candidate):
            return [candidate]
    raise SecretsError("no editor: set $EDITOR")


class _Stop:
    """The SIGTERM/SIGHUP handler while the editor runs: remember the signal, kill the editor."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.signum = self.signum or signum
        if self.process is not None:
            self.process.kill()

    def watch(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        if self.signum is not None:  # arrived while the editor was being started
            process.kill()


def _leave_to_the_editor(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C / Ctrl-\\ while the editor runs: the editor got it too, and decides."""


@contextlib.contextmanager
def _foreground_signals(stop: _Stop) -> Iterator[None]:
    # Handlers, not SIG_IGN: a caught signal is reset to its default in the editor at exec, an ignored
    # one would stay ignored there. A signal ignored already (a background job) stays ignored.
    wanted: dict[int, Any] = {signum: stop for signum in _TERMINATION}
    wanted |= {signum: _leave_to_the_editor for signum in _KEYBOARD if signal.getsignal(signum) != signal.SIG_IGN}
    previous: dict[int, Any] = {}
    try:
        for signum, handler in wanted.items():
            with contextlib.suppress(ValueError):  # not the main thread: no handlers to install
                previous[signum] = signal.signal(signum, handler)
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_editor(command: list[str], path: Path) -> None:
    """Run `command path` and wait for it; a SecretsError unless it exited with status 0."""
    stop = _Stop()
    with _foreground_signals(stop):
        try:
            process = subprocess.Popen([*command, str(path)])
        except OSError as error:
            raise SecretsError(f"cannot start the editor {command[0]!r}: {error.strerror}") from None
        stop.watch(process)
        status = process.wait()  # the handlers do not raise, so this wait always reaps the editor
    if stop.signum is not None:
        raise SecretsError(f"interrupted by {signal.Signals(stop.signum).name}; the file was not changed")
    if status < 0 and -status in _KEYBOARD:
        raise Interrupted(f"the editor was interrupted ({signal.Signals(-status).name}); the file was not changed")
    if status < 0:
        raise SecretsError(f"the editor was killed by {signal.Signals(-status).name}; the file was not changed")
    if status != 0:
        raise SecretsError(f"the editor exited with status {status}; the file was not changed")
