"""Shared by the deploy tests: synthesize and read back as kubectl would."""

from __future__ import annotations

from typing import Any

import yaml  # PyYAML reads YAML 1.1, as kubectl does: what it parses is what the cluster gets

from seance.deploy.settings import load_settings
from seance.deploy.synth import dump_yaml, synthesize

SECRETS = {
    "LITELLM_MASTER_KEY": "sk-master-test",
    "OPENAI_API_KEY": "sk-openai-test",
    "TOGETHER_API_KEY": "together-test",
    "STRIPE_SECRET_KEY": "sk_live_test",
}


def synth_documents(
    env: str = "dev", secrets: dict[str, str] | None = None, **overrides: Any
) -> list[dict[str, Any]]:
    """Synthesize, render and parse back exactly as kubectl would read the file."""
    settings = load_settings(env, overrides)
    text = dump_yaml(synthesize(settings, SECRETS if secrets is None else secrets))
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def find(documents: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [
        doc for doc in documents if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]

