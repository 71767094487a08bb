"""The fake upstream: Debian's nginx answering every provider route with a static file.

nginx's static handler answers POST with 405, so `error_page 405 =200 $uri` serves the file to a POST
(the request body is discarded). With open_file_cache one nginx worker serves tens of thousands of
answers a second, far above what a gateway relays. The 50 ms route uses the echo module's
`echo_sleep` (a timer, not a blocked worker), then `echo_exec` to the fast route. The flaky route
fails FLAKY_PERCENT % of its requests, drawn per request by `split_clients` on `$request_id` (random):
half a 500, half a reset (`return 444`: nginx closes the connection without an answer).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bodies import (
    anthropic_messages_json,
    anthropic_messages_sse,
    openai_chat_json,
    openai_chat_sse,
    openai_embeddings_json,
)

ECHO_MODULE = Path("/usr/lib/nginx/modules/ngx_http_echo_module.so")
SLOW_UPSTREAM_SECONDS = 0.05
FLAKY_PERCENT = 20
FLAKY_ERROR = '{"error":{"message":"bench: injected failure","type":"server_error"}}'


@dataclass(frozen=True)
class Route:
    path: str
    content_type: str
    body: str
    delay: float = 0.0
    flaky: bool = False  # fails FLAKY_PERCENT % of its requests


def routes() -> list[Route]:
    """Each api_base in the gateways' config ends where one of these paths begins."""
    json_type, sse_type = "application/json", "text/event-stream"
    chat = openai_chat_json()
    return [
        Route("/v1/chat/completions", json_type, chat),
        Route("/stream/v1/chat/completions", sse_type, openai_chat_sse()),
        # Served by /v1/chat/completions after the delay; its path must be that one under /slow.
        Route("/slow/v1/chat/completions", json_type, chat, delay=SLOW_UPSTREAM_SECONDS),
        Route("/flaky/v1/chat/completions", json_type, chat, flaky=True),
        Route("/v1/embeddings", json_type, openai_embeddings_json()),
        Route("/anthropic/v1/messages", json_type, anthropic_messages_json()),
        Route("/anthropic-stream/v1/messages", sse_type, anthropic_messages_sse()),
    ]


def _location(route: Route) -> str:
    lines = [f"        location = {route.path} {{", f"            default_type {route.content_type};"]
    if route.delay:
        # After the timer, an internal redirect to the same answer's static route (Content-Length,
        # one write), so the slow answer differs from the fast one by the delay alone.
        lines += [
            f"            echo_sleep {route.delay};",
            f"            echo_exec {route.path.removeprefix('/slow')};",
        ]
    else:
        if route.flaky:  # `if` with `return` only: the safe use of nginx's `if`
            lines += [
                f"            if ($bench_flaky = fail) {{ return 500 '{FLAKY_ERROR}'; }}",
                "            if ($bench_flaky = reset) { return 444; }",
            ]
        lines.append("            error_page 405 =200 $uri;")
    lines.append("        }")
    return "\n".join(lines)


def nginx_config(port: int, work: Path) -> str:
    """The config for `port`; writes each static answer under work/files as a side effect."""
    for route in routes():
        if not route.delay:
            path = work / "files" / route.path.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(route.body)
    locations = "\n".join(_location(route) for route in routes())
    temp = work / "nginx-temp"
    return f"""\
load_module {ECHO_MODULE};
daemon off;
worker_processes 1;
pid {work / "nginx.pid"};
error_log {work / "nginx-error.log"} warn;
events {{
    worker_connections 8192;
}}
http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    tcp_nodelay on;
    client_body_buffer_size 64k;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    open_file_cache max=64 inactive=600s;
    open_file_cache_valid 600s;
    etag off;
    split_clients "${{request_id}}" $bench_flaky {{
        {FLAKY_PERCENT / 2:g}% fail;
        {FLAKY_PERCENT / 2:g}% reset;
        * ok;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {work / "files"};
{locations}
        location / {{
            default_type application/json;
            return 404 '{{"error":{{"message":"no such route on the bench upstream","type":"not_found"}}}}';
        }}
    }}
}}
"""


def nginx_argv(port: int, work: Path) -> list[str]:
    work.mkdir(parents=True, exist_ok=True)
    (work / "nginx-temp").mkdir(exist_ok=True)
    config = work / "nginx.conf"
    config.write_text(nginx_config(port, work))
    return ["nginx", "-p", str(work), "-e", str(work / "nginx-error.log"), "-c", str(config)]
