"""Azure OpenAI: OpenAI's wire format at a per-deployment path, `api-version` in the query and the
key in an `api-key` header. `azure/<deployment-name>` as LiteLLM names it.

Parameters depend on the API version and the model behind the deployment
(https://learn.microsoft.com/azure/ai-foundry/openai/how-to/reasoning): `max_completion_tokens`
exists from 2024-09-01-preview on (before, it is `max_tokens`); reasoning models (o-series, gpt-5)
take `max_completion_tokens` only and are the only ones with `reasoning_effort`. The model is the
deployment name, or `base_model` in litellm_params when the name does not tell.
"""

from __future__ import annotations

import re

from seance.gateway.errors import CONTENT_POLICY, BadRequest
from seance.gateway.providers.base import OPENAI_ERROR_KINDS, Call, json_headers, url_path
from seance.gateway.providers.completion import completions_through_chat
from seance.gateway.providers.openai_compat import PATHS, OpenAICompatible
from seance.gateway.providers.params import Params

DEFAULT_API_VERSION = "2024-10-21"
FIRST_WITH_MAX_COMPLETION_TOKENS = "2024-09-01"
REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")

# (reasoning model, API version has max_completion_tokens) -> table
TABLES = {
    (True, True): Params.all_but({"top_k"}, max_tokens="max_completion_tokens"),
    (True, False): Params.all_but({"top_k"}),  # no such deployment: Azure's own error says so
    (False, True): Params.all_but({"top_k", "reasoning_effort"}),
    (False, False): Params.all_but({"top_k", "reasoning_effort"}, max_completion_tokens="max_tokens"),
}


@completions_through_chat
class Azure(OpenAICompatible):
    name = "azure"
    catalogue = ("azure", "azure_text")
    # Azure's content filter: code "content_filter", innererror.code "ResponsibleAIPolicyViolation"
    error_kinds = (*OPENAI_ERROR_KINDS, ("responsibleaipolicyviolation", CONTENT_POLICY))
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

    def native_completion(self, call: Call) -> bool:
        return "instruct" in str(call.target.extra.get("base_model") or call.target.model)

    def table(self, call: Call) -> Params:
        model = str(call.target.extra.get("base_model") or call.target.model).removeprefix("azure/")
        version = call.target.api_version or DEFAULT_API_VERSION
        return TABLES[bool(REASONING_MODEL.match(model)), version[:10] >= FIRST_WITH_MAX_COMPLETION_TOKENS]
