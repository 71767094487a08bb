"""The one error of this package."""

from __future__ import annotations


class ConfigError(Exception):
    """A config that cannot be served; the message is one line for the operator."""
