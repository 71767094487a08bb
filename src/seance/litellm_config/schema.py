"""The typed shape of config.yaml: the keys Seance uses, with their types.

Keys that are only accepted (known to LiteLLM, not implemented here) stay in each model's extras:
`known_keys` decides which keys may appear at all, before these models see the file.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator


def _fallback_rules(value: Any) -> Any:
    """LiteLLM writes a rule's targets as a list, or as one name: `{"gpt-4": "gpt-3.5"}`."""
    if value is None:
        return []
    if isinstance(value, list):
        return [
            {k: [v] if isinstance(v, str) else v for k, v in rule.items()} if isinstance(rule, dict) else rule
            for rule in value
        ]
    return value


def _names(value: Any) -> Any:
    if value is None:
        return []
    return [value] if isinstance(value, str) else value


FallbackRules = Annotated[list[dict[str, list[str]]], BeforeValidator(_fallback_rules)]
Names = Annotated[list[str], BeforeValidator(_names)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        # `key:` with nothing after it is YAML's null: LiteLLM reads it as "not set"
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


class LiteLLMParams(_Section):
    model: str
    api_key: str | None = None
    api_base: str | None = None
    api_version: str | None = None
    rpm: int | None = Field(default=None, ge=0)
    tpm: int | None = Field(default=None, ge=0)
    weight: float = Field(default=1.0, gt=0)
    timeout: float | None = Field(default=None, gt=0)
    stream_timeout: float | None = Field(default=None, gt=0)
    request_timeout: float | None = Field(default=None, gt=0)
    max_retries: int | None = Field(default=None, ge=0)
    drop_params: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _provider_in_model(cls, data: Any) -> Any:
        """`custom_llm_provider: groq` + `model: llama-3` is LiteLLM's other spelling of `groq/llama-3`."""
        if isinstance(data, dict) and isinstance(data.get("custom_llm_provider"), str):
            provider, model = data["custom_llm_provider"], data.get("model")
            if isinstance(model, str) and provider and not model.startswith(provider + "/"):
                data = {**data, "model": f"{provider}/{model}"}
        return data

    @field_validator("api_base")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = urlsplit(value)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"must be an http:// or https:// URL, not {value!r}")
        return value


class ModelEntry(_Section):
    model_name: str
    litellm_params: LiteLLMParams
    model_info: dict[str, Any] = Field(default_factory=dict)


class LiteLLMSettings(_Section):
    num_retries: int | None = Field(default=None, ge=0)
    request_timeout: float | None = Field(default=None, gt=0)
    drop_params: bool = False
    fallbacks: FallbackRules = Field(default_factory=list)
    default_fallbacks: Names = Field(default_factory=list)
    context_window_fallbacks: FallbackRules = Field(default_factory=list)
    content_policy_fallbacks: FallbackRules = Field(default_factory=list)
    max_fallbacks: int | None = Field(default=None, ge=0)
    cache: bool = False
    cache_params: dict[str, Any] = Field(default_factory=dict)
    callbacks: list[str] | str | None = None
    # /key/generate's defaults and upper bounds (checked by gateway/admin/key_policy.py)
    default_key_generate_params: dict[str, Any] = Field(default_factory=dict)
    upperbound_key_generate_params: dict[str, Any] = Field(default_factory=dict)
    max_end_user_budget: float | None = Field(default=None, ge=0)  # end users without a budget of their own
    # request headers whose values become spend tags, "<header as written here>: <value>"
    extra_spend_tag_headers: list[str] = Field(default_factory=list)

    @field_validator("extra_spend_tag_headers")
    @classmethod
    def _tag_headers(cls, names: list[str]) -> list[str]:
        for name in names:
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not an HTTP header name")
        return names

    @field_validator("cache_params")
    @classmethod
    def _redis_database(cls, params: dict[str, Any]) -> dict[str, Any]:
        db = params.get("db")
        if db is not None and (type(db) is not int or db < 0):
            raise ValueError(f"db: a Redis database number (0, 1, …), not {db!r}")
        return params


class GroupAlias(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    hidden: bool = False


class RetryPolicy(BaseModel):
    """LiteLLM's RetryPolicy: retries per error class, over num_retries."""

    model_config = ConfigDict(extra="forbid")
    BadRequestErrorRetries: int | None = Field(default=None, ge=0)
    AuthenticationErrorRetries: int | None = Field(default=None, ge=0)
    TimeoutErrorRetries: int | None = Field(default=None, ge=0)
    RateLimitErrorRetries: int | None = Field(default=None, ge=0)
    ContentPolicyViolationErrorRetries: int | None = Field(default=None, ge=0)
    InternalServerErrorRetries: int | None = Field(default=None, ge=0)

    def counts(self) -> dict[str, int]:
        return {name: value for name, value in self.model_dump().items() if value is not None}


class RouterSettings(_Section):
    routing_strategy: str = "simple-shuffle"
    num_retries: int | None = Field(default=None, ge=0)
    timeout: float | None = Field(default=None, gt=0)
    stream_timeout: float | None = Field(default=None, gt=0)
    fallbacks: FallbackRules = Field(default_factory=list)
    default_fallbacks: Names = Field(default_factory=list)
    context_window_fallbacks: FallbackRules = Field(default_factory=list)
    content_policy_fallbacks: FallbackRules = Field(default_factory=list)
    max_fallbacks: int | None = Field(default=None, ge=0)
    allowed_fails: int | None = Field(default=None, ge=0)
    cooldown_time: float | None = Field(default=None, ge=0)
    routing_strategy_args: dict[str, Any] = Field(default_factory=dict)
    retry_policy: RetryPolicy | None = None
    model_group_retry_policy: dict[str, RetryPolicy] = Field(default_factory=dict)
    enable_pre_call_checks: bool = False
    # litellm_params.max_parallel_requests of the deployments that do not set their own
    default_max_parallel_requests: int | None = Field(default=None, ge=1)
    # {"alias": "group"} or {"alias": {"model": "group", "hidden": true}}
    model_group_alias: dict[str, str | GroupAlias] = Field(default_factory=dict)
    redis_host: str | None = None
    redis_port: int | None = None
    redis_password: str | None = None
    redis_db: int | None = Field(default=None, ge=0)  # the database number, with redis_host
    # model groups whose requests share the response cache's answers: [["gpt-4o", "azure-gpt-4o"]]
    caching_groups: list[list[str]] = Field(default_factory=list)

    @field_validator("caching_groups")
    @classmethod
    def _one_group_each(cls, groups: list[list[str]]) -> list[list[str]]:
        seen: dict[str, int] = {}
        for number, group in enumerate(groups):
            for name in group:
                if not name:
                    raise ValueError(f"group {number}: a model group's name, not an empty string")
                if seen.setdefault(name, number) != number:
                    raise ValueError(
                        f"'{name}' is in groups {seen[name]} and {number}: a model group shares the cache of one group"
                    )
        return groups


# an HTTP header name (RFC 9110's token): what a client could send
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# LiteLLM's user roles a user_header_mappings entry may name
USER_ROLES = ("customer", "internal_user", "internal_user_viewer", "proxy_admin", "proxy_admin_viewer")


class UserHeaderMapping(BaseModel):
    """general_settings.user_header_mappings: a header whose value names who is calling."""

    model_config = ConfigDict(extra="forbid")
    header_name: str
    litellm_user_role: str

    @field_validator("header_name")
    @classmethod
    def _header(cls, name: str) -> str:
        if not _HEADER_NAME.match(name):
            raise ValueError(f"{name!r} is not an HTTP header name")
        return name.lower()

    @field_validator("litellm_user_role")
    @classmethod
    def _role(cls, role: str) -> str:
        if role not in USER_ROLES:
            raise ValueError(f"{role!r} is not one of LiteLLM's roles: {', '.join(USER_ROLES)}")
        return role


class GeneralSettings(_Section):
    master_key: str | None = None
    database_url: str | None = None
    background_health_checks: bool = False
    health_check_interval: float | None = Field(default=None, gt=0)
    proxy_batch_write_at: float | None = Field(default=None, gt=0, le=3600)  # seconds between spend writes
    disable_spend_logs: bool = False
    enforce_user_param: bool = False  # every LLM request carries `user`
    enforced_params: list[str] = Field(default_factory=list)  # body fields every LLM request carries
    # LLM requests in flight at once, per worker process (LiteLLM counts it in each instance's memory)
    global_max_parallel_requests: int | None = Field(default=None, ge=1)
    # headers that name the end user (role customer), before the body's `user`; user_header_name is
    # LiteLLM's older form of one such mapping
    user_header_mappings: list[UserHeaderMapping] = Field(default_factory=list)
    user_header_name: str | None = None

    @field_validator("user_header_name")
    @classmethod
    def _header_name(cls, name: str | None) -> str | None:
        if name is not None and not _HEADER_NAME.match(name):
            raise ValueError(f"{name!r} is not an HTTP header name")
        return None if name is None else name.lower()

    def end_user_headers(self) -> tuple[str, ...]:
        """The configured headers that name the end user, in LiteLLM's order: the mappings of role
        customer, then user_header_name."""
        names = [m.header_name for m in self.user_header_mappings if m.litellm_user_role == "customer"]
        if self.user_header_name and self.user_header_name not in names:
            names.append(self.user_header_name)
        return tuple(names)

    @field_validator("enforced_params")
    @classmethod
    def _field_paths(cls, names: list[str]) -> list[str]:
        for name in names:
            parts = name.split(".")
            if len(parts) > 2 or not all(part.strip() == part and part for part in parts):
                raise ValueError(f"{name!r}: a body field, or a field of one (such as metadata.generation_name)")
        return names


class ConfigFile(_Section):
    model_list: list[ModelEntry] = Field(default_factory=list)
    litellm_settings: LiteLLMSettings = Field(default_factory=LiteLLMSettings)
    router_settings: RouterSettings = Field(default_factory=RouterSettings)
    general_settings: GeneralSettings = Field(default_factory=GeneralSettings)
    environment_variables: dict[str, Any] = Field(default_factory=dict)
