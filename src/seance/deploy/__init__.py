"""Kubernetes deploy tooling: typed per-environment settings, manifest synthesis, `seance deploy`.

This package never imports `seance.gateway`: it only writes the gateway's config file and manifests.
"""
