"""Azure OpenAI: OpenAI's wire format at a per-deployment path, `api-version` in the query and the
key in an `api-key` header. `azure/<deployment-name>` as LiteLLM names it."""

from __future__ import annotations

from seance.gateway.errors import BadRequest
from seance.gateway.providers.base import Call, json_headers, url_path
from seance.gateway.providers.openai_compat import PATHS, OpenAICompatible

DEFAULT_API_VERSION = "2024-10-21"


class Azure(OpenAICompatible):
    name = "azure"
    key_env = ("AZURE_API_KEY", "AZURE_OPENAI_API_KEY")
    base_env = ("AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT")
    version_env = ("AZURE_API_VERSION", "OPENAI_API_VERSION")
    default_base = None

    def url(self, call: Call) -> str:
        version = call.target.api_version or DEFAULT_API_VERSION
        if call.op not in PATHS:
            raise BadRequest(f"azure does not offer the {call.op} operation")
        deployment = url_path(call.target.model)
        return f"{call.target.api_base}/openai/deployments/{deployment}{PATHS[call.op]}?api-version={version}"

    def headers(self, call: Call) -> dict[str, str]:
        headers = json_headers(call.target.api_key, "api-key", "")
        return headers
