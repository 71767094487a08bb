"""Every key LiteLLM's proxy reads from config.yaml, and what Seance does with it.

Sources (facts, checked against LiteLLM's documentation "Proxy config.yaml" and "All settings",
its Router's arguments and its litellm_params / model_info types):

- top level: what the proxy's config loader reads;
- litellm_settings: each key becomes an attribute of the litellm module, so every module setting
  is a valid key (the documented ones and the rest);
- router_settings: the Router's constructor arguments;
- general_settings: the documented server settings and the few more the proxy reads;
- model_list[].litellm_params: the deployment settings (never sent to the provider) — anything
  else there is a request parameter LiteLLM passes to the provider (temperature, top_k, thinking…);
- model_info: metadata, open to any key.

Each key is SUPPORTED (Seance implements it), IGNORED (accepted, and listed in the start's warning
when set) or REFUSED (the start stops: ignoring it would surprise, e.g. guardrails or an IP allow
list that would silently stop protecting). docs/gateway.md's compatibility table is generated from
these tables (a test keeps the two equal).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass


class Status(enum.Enum):
    SUPPORTED = "supported"
    IGNORED = "accepted, ignored (warned)"
    REFUSED = "refused"


@dataclass(frozen=True)
class Key:
    status: Status
    note: str = ""


def _group(status: Status, names: str, note: str = "") -> dict[str, Key]:
    key = Key(status, note)
    return dict.fromkeys(names.split(), key)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _section(*groups: dict[str, Key]) -> dict[str, Key]:
    section: dict[str, Key] = {}
    for group in groups:
        twice = section.keys() & group.keys()
        if twice:
            raise ValueError(f"listed twice: {sorted(twice)}")  # a slip in the tables below
        section.update(group)
    return section


SUPPORTED, IGNORED, REFUSED = Status.SUPPORTED, Status.IGNORED, Status.REFUSED
# litellm_settings' callbacks Seance implements; any other one named is listed in the start's warning
CALLBACKS = frozenset({"prometheus", "otel"})
CALLBACK_KEYS = frozenset(f"litellm_settings.{name}" for name in ("callbacks", "success_callback", "failure_callback"))

LOGGING = "a LiteLLM logging integration: not implemented (Seance has Prometheus metrics and OpenTelemetry traces)"
MANAGEMENT = "keys, users, teams and budgets: this option of LiteLLM's is not implemented (see the management API)"
DEFAULTS = "defaults and caps for what the management API makes: not implemented; set each key's, team's or user's own"
NEVER_LOGGED = "Seance never logs messages or keys"
ROUTER_ISSUE = "router: not implemented"
FIDELITY_ISSUE = "provider fidelity: not implemented"
NOT_PLANNED = "no issue yet"

TOP_LEVEL: Mapping[str, Key] = _section(
    _group(SUPPORTED, "model_list litellm_settings router_settings general_settings environment_variables"),
    _group(IGNORED, "callback_settings", LOGGING),
    _group(IGNORED, "credential_list", "named credentials; give each deployment its api_key"),
    _group(
        IGNORED,
        "assistant_settings finetune_settings files_settings default_vertex_config search_tools prompts "
        "mcp_servers mcp_tools agent_list vector_store_registry",
        "endpoints Seance does not serve (assistants, fine-tuning, files, pass-through, search, MCP, agents)",
    ),
    _group(REFUSED, "guardrails policies policy_attachments", "requests would reach the provider unchecked"),
    _group(REFUSED, "include", "Seance reads one file: merge the included files into it"),
)

MODEL_ENTRY: Mapping[str, Key] = _group(SUPPORTED, "model_name litellm_params model_info")

_PROVIDER_KEYS = (
    "openai_key groq_key databricks_key openai_like_key azure_key anthropic_key replicate_key bytez_key "
    "cohere_key infinity_key clarifai_key maritalk_key ai21_key ollama_key openrouter_key datarobot_key "
    "predibase_key huggingface_key togetherai_api_key cloudflare_api_key vercel_ai_gateway_key baseten_key "
    "llama_api_key aleph_alpha_key nlp_cloud_key novita_api_key snowflake_key gradient_ai_api_key "
    "nebius_key wandb_key heroku_key cometapi_key ovhcloud_key lemonade_key"
)

# router_settings.routing_strategy values (usage-based-routing is LiteLLM's older name of -v2)
ROUTING_STRATEGIES = (
    "simple-shuffle", "least-busy", "latency-based-routing", "usage-based-routing-v2", "usage-based-routing",
    "cost-based-routing",
)  # fmt: skip
REFUSAL_FALLBACKS = "on each provider's context-length / content-policy refusal, instead of fallbacks"

LITELLM_SETTINGS: Mapping[str, Key] = _section(
    _group(SUPPORTED, "num_retries request_timeout drop_params fallbacks default_fallbacks"),
    _group(SUPPORTED, "max_fallbacks", ""),
    _group(SUPPORTED, "telemetry", "Seance sends no telemetry"),
    _group(SUPPORTED, "turn_off_message_logging redact_user_api_key_info", NEVER_LOGGED),
    _group(SUPPORTED, "redact_messages_in_exceptions", NEVER_LOGGED),
    _group(SUPPORTED, "context_window_fallbacks content_policy_fallbacks", REFUSAL_FALLBACKS),
    _group(IGNORED, "allowed_fails", ROUTER_ISSUE),
    _group(
        SUPPORTED,
        "cache cache_params",
        "response cache: cache_params type (local or redis), host, port, password, db, url, ttl, namespace, "
        "supported_call_types, mode, max_size_bytes (see Caching)",
    ),
    _group(
        SUPPORTED,
        "callbacks success_callback failure_callback",
        "prometheus: metrics on GET /metrics; otel: OpenTelemetry traces; any other callback is ignored (warned)",
    ),
    _group(SUPPORTED, "require_auth_for_metrics_endpoint", "false: GET /metrics without a key (default: a key)"),
    _group(
        SUPPORTED,
        "disable_end_user_cost_tracking disable_end_user_cost_tracking_prometheus_only",
        "metrics never label the end user (a client-chosen name); see 'Metrics' in docs/gateway.md",
    ),
    _group(
        SUPPORTED,
        "prometheus_initialize_budget_metrics",
        "always on: the budget gauges are read from the database at each scrape (see 'Metrics' in docs/gateway.md)",
    ),
    _group(IGNORED, "service_callbacks langfuse_default_tags", LOGGING),
    _group(
        IGNORED,
        "key_generation_settings enable_key_alias_format_validation",
        "rules for /key/generate beyond the roles: not implemented",
    ),
    _group(IGNORED, "set_verbose json_logs", "logging: see `--log-level`"),
    _group(
        IGNORED,
        "modify_params enable_preview_features force_ipv4 mcp_aliases disable_add_transform_inline_image_block "
        "use_chat_completions_url_for_anthropic_messages disable_hf_tokenizer_download "
        "enable_json_schema_validation disable_copilot_system_to_assistant",
        NOT_PLANNED,
    ),
    # read by LiteLLM (module settings) though not in its settings reference
    _group(
        IGNORED,
        "service_callback input_callback langsmith_batch_size "
        "argilla_batch_size datadog_use_v1 gcs_pub_sub_use_v1 "
        "generic_api_use_v1 argilla_transformation_object log_raw_request_response dynamodb_table_name "
        "s3_callback_params datadog_llm_observability_params datadog_params aws_sqs_callback_params "
        "generic_logger_headers cold_storage_custom_logger logged_real_time_event_types disable_streaming_logging",
        LOGGING,
    ),
    _group(
        IGNORED,
        "enable_end_user_cost_tracking_prometheus_only custom_prometheus_metadata_labels custom_prometheus_tags "
        "prometheus_metrics_config",
        "metrics keep LiteLLM's default labels: labels from the end user, tags or metadata (which clients "
        "choose) and per-metric label sets are not implemented",
    ),
    _group(
        IGNORED,
        "default_in_memory_ttl default_redis_ttl default_redis_batch_cache_expiry",
        "TTLs of LiteLLM's own caches: the response cache's is cache_params.ttl, the keys' "
        "general_settings.user_api_key_cache_ttl",
    ),
    _group(
        SUPPORTED,
        "enable_caching_on_provider_specific_optional_params",
        "always on: every body field but user, stream, stream_options and metadata is in the cache key",
    ),
    _group(
        IGNORED,
        "include_cost_in_streaming_usage",
        "the cost is not added to a stream's usage: it is in the spend logs (and x-litellm-response-cost "
        "when an answer is not streamed)",
    ),
    _group(
        SUPPORTED,
        "extra_spend_tag_headers",
        "each listed request header a request carries becomes a spend tag '<header>: <value>' (LiteLLM's "
        "form; Open WebUI's X-OpenWebUI-User-Email, …), beside the body's tags and x-litellm-tags",
    ),
    _group(SUPPORTED, "disable_add_user_agent_to_request_tags", "Seance never adds the User-Agent to the tags"),
    _group(
        IGNORED,
        "max_budget budget_duration",
        "a budget for the whole proxy: not implemented; give keys, teams or users a max_budget",
    ),
    _group(
        IGNORED,
        "max_end_user_budget_id max_internal_user_budget default_max_internal_user_budget "
        "internal_user_budget_duration max_user_budget max_ui_session_budget default_soft_budget "
        "default_internal_user_params default_team_params default_team_settings",
        DEFAULTS,
    ),
    _group(
        SUPPORTED,
        "max_end_user_budget",
        "the budget of every end user (a request's `user`) without one of their own (/customer/new)",
    ),
    _group(
        SUPPORTED,
        "default_key_generate_params upperbound_key_generate_params",
        "/key/generate's defaults for unset fields, and bounds on max_budget, budget_duration, duration, "
        "max_parallel_requests, tpm_limit and rpm_limit (a request over one: 400)",
    ),
    _group(
        IGNORED,
        "tag_budget_config store_audit_logs priority_reservation priority_reservation_settings",
        MANAGEMENT,
    ),
    _group(
        IGNORED,
        "public_model_groups public_model_groups_links public_agent_groups public_mcp_servers",
        "LiteLLM's UI model hub: Seance serves no UI",
    ),
    _group(
        IGNORED,
        "num_retries_per_request model_fallbacks model_group_settings model_alias_map "
        "enable_loadbalancing_on_batch_endpoints allow_dynamic_callback_disabling",
        ROUTER_ISSUE,
    ),
    _group(
        IGNORED,
        "pre_call_rules post_call_rules filter_invalid_headers add_user_information_to_llm_headers retry "
        "use_litellm_proxy use_client ssl_verify ssl_security_level ssl_certificate ssl_ecdh_curve "
        "disable_token_counter safe_memory_mode enable_azure_ad_token_refresh llamaguard_model_name "
        "openai_moderations_model_name presidio_ad_hoc_recognizers google_moderation_confidence_threshold "
        "llamaguard_unsafe_content_categories blocked_user_list banned_keywords_list llm_guard_mode "
        "output_parse_pii return_response_headers logging caching caching_with_models "
        "forward_traceparent_to_llm_provider add_function_to_prompt suppress_debug_info "
        "disable_add_prefix_to_prompt use_aiohttp_transport aiohttp_trust_env disable_aiohttp_transport "
        "disable_aiohttp_trust_env cost_discount_config check_provider_endpoint api_version organization "
        "project headers vertex_project vertex_location vertex_ai_safety_settings global_prompt_directory "
        "global_bitbucket_config global_gitlab_config custom_provider_map responses max_tokens email token "
        "predibase_tenant_id",
        NOT_PLANNED,
    ),
    _group(
        SUPPORTED,
        "model_cost_map_url",
        "a local file (path or file://) in LiteLLM's price map format; http(s) is not fetched (warned)",
    ),
    _group(REFUSED, "guardrails", "requests would reach the provider unchecked"),
    _group(
        REFUSED,
        "api_key api_base " + _PROVIDER_KEYS,
        "a global key or endpoint: set it per deployment (litellm_params.api_key / api_base)",
    ),
)

ROUTER_SETTINGS: Mapping[str, Key] = _section(
    _group(SUPPORTED, "num_retries timeout stream_timeout fallbacks default_fallbacks max_fallbacks"),
    _group(SUPPORTED, "routing_strategy", "; ".join(ROUTING_STRATEGIES[:4] + ROUTING_STRATEGIES[5:])),
    _group(SUPPORTED, "routing_strategy_args", "lowest_latency_buffer"),
    _group(
        SUPPORTED,
        "enable_pre_call_checks",
        "rpm/tpm as limits (shared through Redis when there is one); skips deployments the request cannot fit",
    ),
    _group(SUPPORTED, "context_window_fallbacks content_policy_fallbacks", REFUSAL_FALLBACKS),
    _group(SUPPORTED, "retry_policy model_group_retry_policy", "LiteLLM's RetryPolicy: retries per error class"),
    _group(SUPPORTED, "model_group_alias", "another name for a group; hidden ones are not on /v1/models"),
    _group(SUPPORTED, "allowed_fails cooldown_time", "cooldowns shared through Redis when there is one"),
    _group(
        SUPPORTED,
        "default_max_parallel_requests",
        "litellm_params.max_parallel_requests of every deployment that does not set its own",
    ),
    _group(
        IGNORED,
        "allowed_fails_policy disable_cooldowns "
        "retry_after enable_pre_call_check optional_pre_call_checks "
        "enable_tag_filtering tag_filtering_match_any default_priority polling_interval "
        "default_litellm_params provider_budget_config "
        "deployment_affinity_ttl_seconds",
        ROUTER_ISSUE,
    ),
    _group(
        SUPPORTED,
        "redis_host redis_password redis_port redis_url redis_db",
        "the shared Redis/Valkey of rate limits, deployments' rpm/tpm, the response cache and router cooldowns "
        "(after REDIS_URL and REDIS_HOST); an unset os.environ/ reference leaves that state in each process",
    ),
    _group(IGNORED, "cache_responses cache_kwargs", "the router's cache: use litellm_settings.cache and cache_params"),
    _group(
        SUPPORTED,
        "caching_groups",
        "model groups whose requests share the response cache's answers (a group in one list at most)",
    ),
    _group(
        IGNORED,
        "debug_level set_verbose client_ttl alerting_config assistants_config router_general_settings "
        "ignore_invalid_deployments search_tools guardrail_list",
        NOT_PLANNED,
    ),
    _group(
        IGNORED,
        "routing_groups model_group_affinity_config tag_routing_prefix max_retries",
        ROUTER_ISSUE,
    ),
)

GENERAL_SETTINGS: Mapping[str, Key] = _section(
    _group(SUPPORTED, "master_key"),
    _group(SUPPORTED, "database_url", "PostgreSQL for keys, teams, budgets and spend (else SQLite seance.db)"),
    _group(SUPPORTED, "user_api_key_cache_ttl", "seconds a virtual key is served from memory before a re-read"),
    _group(SUPPORTED, "store_model_in_db", "always on with the database: /model/new stores models there"),
    _group(SUPPORTED, "proxy_batch_write_at", "seconds between spend-log writes (default 1)"),
    _group(SUPPORTED, "disable_spend_logs", "no per-request spend rows; key, team and user spend still add up"),
    _group(
        IGNORED,
        "database_connection_pool_limit database_connection_timeout allow_requests_on_db_unavailable "
        "disable_spend_updates disable_master_key_return disable_reset_budget "
        "disable_adding_master_key_hash_to_db disable_prisma_schema_update supported_db_objects "
        "store_prompts_in_spend_logs maximum_spend_logs_retention_period maximum_spend_logs_retention_interval "
        "proxy_budget_rescheduler_min_time proxy_budget_rescheduler_max_time "
        "custom_auth custom_key_generate enable_jwt_auth litellm_jwtauth enable_oauth2_auth "
        "enable_oauth2_proxy_auth oauth2_config_mappings public_routes "
        "key_management_system key_management_settings use_azure_key_vault use_google_kms "
        "litellm_key_header_name allow_client_side_credentials default_team_disabled "
        "service_account_settings reject_clientside_metadata_tags "
        "allow_user_auth custom_sso ui_access_mode user_mcp_management_mode spend_report_frequency "
        "litellm_license disable_responses_id_security",
        MANAGEMENT,
    ),
    _group(
        REFUSED,
        "allowed_routes admin_only_routes",
        "Seance does not restrict routes beyond its roles: keys would reach routes the config closes",
    ),
    _group(
        SUPPORTED,
        "enforce_user_param enforced_params",
        "an LLM request without `user` / each listed field (`metadata.generation_name`: a field of one) gets a 400",
    ),
    _group(
        SUPPORTED,
        "global_max_parallel_requests",
        "LLM requests in flight at once in each worker process, whoever sends them (LiteLLM counts it in "
        "each instance's memory): past it a 429 with retry-after",
    ),
    _group(
        IGNORED,
        "max_parallel_requests",
        "LiteLLM's per-deployment default: set router_settings.default_max_parallel_requests (or a "
        "deployment's litellm_params.max_parallel_requests) instead",
    ),
    _group(
        IGNORED,
        "alerting alerting_threshold alert_types alerting_args alert_to_webhook_url",
        "Slack and webhook alerts: not implemented; alert from the Prometheus metrics",
    ),
    _group(
        SUPPORTED,
        "background_health_checks health_check_interval",
        "one cheap call per deployment per interval (model_info.health_check_model, mode): one round for all "
        "workers and replicas with Redis, else per worker",
    ),
    _group(IGNORED, "health_check_details", ROUTER_ISSUE),
    _group(
        IGNORED,
        "completion_model embedding_model image_generation_model moderation_model infer_model_from_keys "
        "disable_retry_on_max_parallel_request_limit_error use_client_credentials_pass_through_routes "
        "pass_through_endpoints forward_openai_org_id forward_client_headers_to_llm_api use_x_forwarded_for "
        "max_request_size_mb max_response_size_mb proxy_batch_polling_interval",
        NOT_PLANNED,
    ),
    _group(IGNORED, "use_shared_health_check", ROUTER_ISSUE),
    _group(
        IGNORED,
        "custom_auth_settings custom_ui_sso_sign_in_handler role_permissions use_redis_transaction_buffer "
        "otel",
        NOT_PLANNED,
    ),
    _group(
        SUPPORTED,
        "user_header_mappings user_header_name",
        "headers that name the end user (litellm_user_role customer), after x-litellm-customer-id and "
        "x-litellm-end-user-id, before the body's user; other roles are ignored (warned)",
    ),
    _group(REFUSED, "allowed_ips", "Seance does not filter client addresses: restrict access in the network"),
)

# model_list[].litellm_params: settings of the deployment; never sent to the provider
_PRICES = (
    "input_cost_per_token output_cost_per_token input_cost_per_second output_cost_per_second "
    "input_cost_per_token_batches output_cost_per_token_batches cache_read_input_token_cost "
    "cache_creation_input_token_cost input_cost_per_character output_cost_per_character input_cost_per_image "
    "output_cost_per_image input_cost_per_audio_token output_cost_per_audio_token "
    "output_cost_per_reasoning_token input_cost_per_pixel output_cost_per_pixel output_cost_per_second_480p "
    "output_cost_per_second_1080p output_cost_per_second_4k input_cost_per_query search_context_cost_per_query "
    "input_cost_per_token_above_128k_tokens output_cost_per_token_above_128k_tokens "
    "input_cost_per_token_above_200k_tokens output_cost_per_token_above_200k_tokens "
    "cache_read_input_token_cost_above_200k_tokens cache_creation_input_token_cost_above_1hr "
    "input_cost_per_audio_per_second input_cost_per_video_per_second"
)
# the prices Seance bills by (per token of each kind; LiteLLM's long-context tiers)
_BILLED = (
    "input_cost_per_token output_cost_per_token cache_read_input_token_cost cache_creation_input_token_cost "
    "output_cost_per_reasoning_token input_cost_per_token_above_128k_tokens output_cost_per_token_above_128k_tokens "
    "input_cost_per_token_above_200k_tokens output_cost_per_token_above_200k_tokens "
    "cache_read_input_token_cost_above_200k_tokens"
)
LITELLM_PARAMS: Mapping[str, Key] = _section(
    _group(
        SUPPORTED,
        "model api_key api_base api_version timeout stream_timeout request_timeout weight drop_params "
        "custom_llm_provider base_model " + _BILLED,
    ),
    _group(SUPPORTED, "rpm tpm", "weights without weight; usage-based-routing-v2; limits with enable_pre_call_checks"),
    _group(SUPPORTED, "max_retries", "the deployment tried again before the router's num_retries move on"),
    _group(
        SUPPORTED,
        "max_parallel_requests",
        "the deployment's calls in flight per worker: others wait for a place (429 after their timeout)",
    ),
    _group(IGNORED, "itpm otpm order num_retries cooldown_time", ROUTER_ISSUE),
    _group(
        IGNORED,
        "tags tag_regex mock_response mock_timeout fallbacks max_fallbacks context_window_fallback_dict "
        "retry_policy retry_strategy",
        ROUTER_ISSUE,
    ),
    _group(
        IGNORED,
        "max_budget budget_duration default_api_key_tpm_limit default_api_key_rpm_limit "
        "configurable_clientside_auth_params metadata litellm_metadata model_info",
        "a deployment's budget, key defaults or metadata: not implemented",
    ),
    _group(IGNORED, "litellm_credential_name", "named credentials; give each deployment its api_key"),
    _group(
        IGNORED,
        " ".join(p for p in _PRICES.split() if p not in _BILLED.split()),
        "Seance bills tokens: prices per second, character, image, audio or query, and batch rates, are not used",
    ),
    _group(
        IGNORED,
        "organization headers extra_headers additional_drop_params allowed_openai_params "
        "merge_reasoning_content_in_choices supports_system_message user_continue_message "
        "assistant_continue_message ensure_alternating_roles roles final_prompt_value initial_prompt_value "
        "bos_token eos_token hf_model_name cache_control_injection_points",
        FIDELITY_ISSUE,
    ),
    _group(
        IGNORED,
        "caching cache ttl cache_key preset_cache_key caching_groups",
        "a deployment's cache settings: not implemented; a request's cache object and cache_params apply",
    ),
    _group(SUPPORTED, "no-log turn_off_message_logging", NEVER_LOGGED),
    _group(
        IGNORED,
        "litellm_trace_id litellm_session_id langfuse_public_key langfuse_secret langfuse_secret_key langfuse_host "
        "gcs_path_service_account langsmith_api_key langsmith_project langsmith_base_url humanloop_api_key "
        "arize_api_key arize_space_key",
        LOGGING,
    ),
    # credentials of providers Seance does not serve yet, and other LiteLLM features
    _group(
        IGNORED,
        "azure_ad_token azure_ad_token_provider tenant_id client_id client_secret azure_username azure_password "
        "azure_scope vertex_project vertex_location vertex_credentials region_name allowed_model_region "
        "gcs_bucket_name aws_access_key_id aws_secret_access_key aws_session_token aws_region_name "
        "aws_session_name aws_profile_name aws_role_name aws_web_identity_token aws_sts_endpoint aws_external_id "
        "aws_bedrock_runtime_endpoint aws_bedrock_project_id s3_bucket_name s3_region_name s3_encryption_key_id "
        "aws_batch_role_arn s3_output_bucket_name bedrock_tags watsonx_region_name use_in_pass_through "
        "use_litellm_proxy use_chat_completions_api use_xai_oauth max_file_size_mb keepalive_seconds "
        "allow_client_keepalive_override auto_router_config_path auto_router_config auto_router_default_model "
        "auto_router_embedding_model auto_router_max_input_chars complexity_router_config "
        "complexity_router_default_model adaptive_router_default_model adaptive_router_config "
        "quality_router_config quality_router_default_model vector_store_id milvus_text_field milvus_db_name "
        "milvus_partition_names valkey_host valkey_port valkey_password valkey_ssl valkey_text_field "
        "valkey_embedding_field vector_bucket_name index_name embedding_model prompt_id prompt_variables "
        "prompt_label provider_specific_header fastest_response knowledge_bases vector_store_ids",
        NOT_PLANNED,
    ),
)

# request parameters LiteLLM forwards from litellm_params to the provider (as defaults of the body);
# any other unknown key is forwarded too: this list only makes typos of these names detectable
REQUEST_PARAMS = _words(
    "temperature top_p n stop max_tokens max_completion_tokens presence_penalty frequency_penalty logit_bias "
    "user response_format seed tools tool_choice parallel_tool_calls logprobs top_logprobs reasoning_effort "
    "verbosity modalities prediction audio web_search_options service_tier store dimensions encoding_format "
    "functions function_call suffix echo best_of stream_options extra_body thinking top_k top_a min_p "
    "repetition_penalty typical_p safety_settings safe_prompt num_ctx num_predict keep_alive format "
    "mirostat mirostat_eta mirostat_tau tfs_z num_gpu num_thread repeat_penalty repeat_last_n random_seed "
    "input_type truncate transforms route models provider include_reasoning reasoning max_new_tokens "
    "do_sample return_full_text details watermark decoder_input_details citation_options documents "
    "response_mime_type response_schema candidate_count max_output_tokens stop_sequences "
    "seed_value tool_config cached_content labels top_n return_documents max_chunks_per_doc rank_fields"
)

MODEL_INFO = _words(
    "id mode base_model db_model team_id team_public_model_name tier access_groups description metadata "
    "max_tokens max_input_tokens max_output_tokens litellm_provider key health_check_model "
    "health_check_timeout health_check_voice tpm rpm blocked allow_fail_open enable_tag_filtering "
    "ptu_count cost_per_ptu_per_hour ptu_effective_from ptu_effective_to created_at created_by updated_at "
    "updated_by output_vector_size tool_use_system_prompt_tokens deprecation_date source "
    "supported_openai_params supports_function_calling supports_parallel_function_calling supports_vision "
    "supports_system_messages supports_tool_choice supports_response_schema supports_prompt_caching "
    "supports_audio_input supports_audio_output supports_pdf_input supports_reasoning supports_web_search "
    "supports_computer_use supports_embedding_image_input supports_native_streaming "
    "supports_assistant_prefill supports_video_input supports_url_context supported_environments " + _PRICES
)

# provider prefixes LiteLLM knows (its `LlmProviders`): an entry with one of these that Seance does
# not serve starts the gateway with a warning and answers 501; any other unknown prefix is a typo
LITELLM_PROVIDERS = _words(
    "openai openai_like jina_ai xai custom_openai text-completion-openai cohere cohere_chat clarifai "
    "anthropic anthropic_text replicate huggingface together_ai openrouter datarobot vertex_ai "
    "vertex_ai_beta gemini ai21 baseten azure azure_text azure_ai sagemaker sagemaker_chat bedrock vllm "
    "nlp_cloud petals oobabooga ollama ollama_chat deepinfra perplexity mistral groq nvidia_nim cerebras "
    "ai21_chat volcengine codestral deepseek sambanova maritalk voyage cloudflare "
    "xinference fireworks_ai friendliai featherless_ai watsonx watsonx_text triton predibase databricks "
    "empower github custom litellm_proxy hosted_vllm llamafile lm_studio galadriel nebius infinity "
    "deepgram novita aiohttp_openai langfuse humanloop topaz assemblyai snowflake meta_llama nscale "
    "palm aleph_alpha anyscale dashscope moonshot v0 morph lambda_ai hyperbolic recraft cometapi oci "
    "vercel_ai_gateway wandb ovhcloud lemonade docker_model_runner gradient_ai bytez heroku aiml "
    "elevenlabs fal_ai runwayml github_copilot llama compactifai"
)

SECTIONS: Mapping[str, Mapping[str, Key]] = {
    "": TOP_LEVEL,
    "litellm_settings": LITELLM_SETTINGS,
    "router_settings": ROUTER_SETTINGS,
    "general_settings": GENERAL_SETTINGS,
}
