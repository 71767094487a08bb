"""PGP recipients through the GnuPG binary (as sops does by default): the user's keyring and agent."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping

from seance.secrets.errors import SecretsError


def gpg_binary(env: Mapping[str, str]) -> str | None:
    """SOPS_GPG_EXEC if set, else `gpg` on PATH."""
    return env.get("SOPS_GPG_EXEC") or shutil.which("gpg", path=env.get("PATH"))


def _run(env: Mapping[str, str], args: list[str], data: bytes) -> subprocess.CompletedProcess[bytes]:
    binary = gpg_binary(env)
    if binary is None:
        raise SecretsError("PGP keys need GnuPG: install gpg (Debian package 'gnupg') or set SOPS_GPG_EXEC")
    try:
        return subprocess.run(
            [binary, "--batch", "--no-tty", *args],
            input=data,
            capture_output=True,
            env=dict(env),
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SecretsError(f"GnuPG failed to run: {error}") from None


def wrap(data_key: bytes, fingerprint: str, env: Mapping[str, str]) -> str:
    done = _run(env, ["--armor", "--trust-model", "always", "--encrypt", "--recipient", fingerprint], data_key)
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise SecretsError(
            f"GnuPG cannot encrypt to PGP key {fingerprint}: {reason[-1] if reason else 'unknown error'}"
        )
    return done.stdout.decode().rstrip("\n")  # sops stores the armor without its final newline


def unwrap(enc: str, env: Mapping[str, str]) -> bytes | None:
    """The data key, or None when GnuPG has no matching secret key (or is missing)."""
    if gpg_binary(env) is None:
        return None
    done = _run(env, ["--quiet", "--decrypt"], enc.encode())
    if done.returncode != 0:
        return None
    return done.stdout
