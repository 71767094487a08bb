"""Seance: a light, self-hosted LLM gateway and the tooling that ships it to Kubernetes."""

__version__ = "0.1.0"
