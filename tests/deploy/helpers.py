"""Shared by the deploy tests: synthesize and read back as kubectl would."""

from __future__ import annotations

import json
from pathlib import Path
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


PLAINTEXT = """\
litellm:
  LITELLM_MASTER_KEY: sk-e2e-master
  OPENAI_API_KEY: sk-e2e-openai
  TOGETHER_API_KEY: "0123"
stripe:
  STRIPE_SECRET_KEY: sk_test_e2e
"""
FLAT = {
    "LITELLM_MASTER_KEY": "sk-e2e-master",
    "OPENAI_API_KEY": "sk-e2e-openai",
    "TOGETHER_API_KEY": "0123",
    "STRIPE_SECRET_KEY": "sk_test_e2e",
}


FAKE_KUBECTL = """#!PYTHON
# Records each call (argv and stdin) as one JSON line, like a cluster that accepts everything.
import json, os, sys
stdin = sys.stdin.read() if "-f" in sys.argv and sys.argv[sys.argv.index("-f") + 1] == "-" else None
with open(os.environ["FAKE_KUBECTL_LOG"], "a") as log:
    log.write(json.dumps({"argv": sys.argv[1:], "stdin": stdin}) + "\\n")
if sys.argv[1:3] == ["config", "current-context"]:
    print("kind-seance")
if "version" in sys.argv:
    git = os.environ.get("FAKE_KUBECTL_VERSION", "v1.31.2+k3s1")
    print(json.dumps({"clientVersion": {"gitVersion": "v1.33.0"}, "serverVersion": {"gitVersion": git}}))
if sys.argv[1:3] == ["create", "namespace"]:
    print("apiVersion: v1\\nkind: Namespace\\nmetadata:\\n  name: " + sys.argv[3])
if "rollout" in sys.argv and os.environ.get("FAKE_KUBECTL_ROLLOUT_FAILS"):
    sys.exit(1)
if os.environ.get("FAKE_KUBECTL_FAILS") and os.environ["FAKE_KUBECTL_FAILS"] in " ".join(sys.argv):
    sys.exit(1)
"""


def kubectl_calls(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
