"""What `--env prod` refuses or warns about: the repository's example secrets and example settings.

The repository ships an example secrets file encrypted for a development age key that is public
(secrets/dev-age-key.txt) and holding a published master key; whatever is encrypted for that key,
anyone can read. A production deploy with either is refused unless the operator says otherwise.
"""

from __future__ import annotations

from seance.deploy.errors import DeployError
from seance.deploy.secrets_source import SecretsSource
from seance.deploy.settings import ENVIRONMENTS, Settings

EXAMPLE_AGE_RECIPIENT = "age1arz9jrl0vef5ajc74thlvzu4yc5mawz0el0g6hq5pa5wzswe7vyseymznu"
EXAMPLE_MASTER_KEY = "sk-seance-dev-master-key"
ALLOW_FLAG = "--allow-example-secrets"


def refuse_example_secrets(source: SecretsSource) -> None:
    if EXAMPLE_AGE_RECIPIENT in source.recipients:
        raise DeployError(
            f"{source.path} is encrypted for the repository's public development key ({EXAMPLE_AGE_RECIPIENT[:12]}…),"
            " which anyone can use to read it: put your own recipients in .sops.yaml, run"
            f" `seance secrets updatekeys {source.path}`, and rotate every secret it held (or pass {ALLOW_FLAG})"
        )
    if source.values.get("LITELLM_MASTER_KEY") == EXAMPLE_MASTER_KEY:
        raise DeployError(
            f"{source.path} holds the example master key {EXAMPLE_MASTER_KEY}, which is published: set your own"
            f" LITELLM_MASTER_KEY with `seance secrets edit {source.path}` (or pass {ALLOW_FLAG})"
        )


def example_setting_warnings(settings: Settings) -> list[str]:
    """Settings still at the example values of the prod environment, which are the project's own."""
    example = Settings.model_validate(ENVIRONMENTS["prod"])
    warnings = []
    if settings.host == example.host:
        warnings.append(f"host is the example {example.host}: set `host` to your domain")
    if settings.image == example.image:
        warnings.append(
            f"image is the local build {example.image}, which a cluster cannot pull: push it and set `image`"
        )
    uses_issuer = settings.tls.enabled and settings.routing != "httproute"
    if uses_issuer and settings.tls.cluster_issuer == example.tls.cluster_issuer:
        warnings.append(
            f"tls.cluster_issuer is the example {example.tls.cluster_issuer!r}: set it to your cert-manager"
            " ClusterIssuer (or null with a tls.secret_name you create)"
        )
    return warnings
