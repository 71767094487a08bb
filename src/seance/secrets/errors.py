"""The one exception type of `seance.secrets`.

Every message is a single user-facing line that names the file, key path or key type involved and
never contains a secret value (neither plaintext nor data key), so it can be printed as is.
"""

from __future__ import annotations


class SecretsError(Exception):
    """A secrets file could not be read, decrypted, encrypted or validated."""


class MacMismatchError(SecretsError):
    """The file's MAC is missing or does not match its content (tampered, or edited by hand)."""


class NoKeyError(SecretsError):
    """None of the available identities could unwrap the file's data key."""


class Interrupted(SecretsError):
    """The user stopped the command (Ctrl-C); nothing was written."""
