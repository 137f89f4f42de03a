"""Sending one replayed request: credentials from the environment, safety check, retries.

Credentials come from the environment only, never from the trace (which holds none):
:data:`CREDENTIALS` maps ``gen_ai.provider.name`` to the variable and header (each provider its
own: a Groq or Vertex AI call never gets ``OPENAI_API_KEY``; a provider of the semantic
conventions' list without an entry gets none); any other provider, including OpenAI-compatible
servers at unknown hosts (recorded as ``openai``), uses ``OPENAI_API_KEY`` as a Bearer token.
Amazon Bedrock (``aws.bedrock``) requests are signed instead (AWS SigV4, :mod:`._sigv4`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import httpx2
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import GenAiProviderNameValues

from spanreel import __version__
from spanreel.instrumentation._call import RETRY_COUNT_HEADER
from spanreel.instrumentation._http import sanitize_url

from ._safety import RetryPolicy, UnsafeHostError, check_url, parse_retry_after
from ._sigv4 import SigningError, sign_bedrock_request

__all__ = ["CREDENTIALS", "SendOutcome", "auth_headers", "send_request"]

_P = GenAiProviderNameValues


def _bearer(env_var: str) -> tuple[str, str, str]:
    return env_var, "Authorization", "Bearer "


#: ``gen_ai.provider.name`` → (environment variable, header, value prefix): each provider's own
#: key, under the variable its SDK reads. Vertex AI takes an OAuth access token
#: (``gcloud auth print-access-token``).
CREDENTIALS: Mapping[str, tuple[str, str, str]] = {
    _P.OPENAI.value: _bearer("OPENAI_API_KEY"),
    _P.ANTHROPIC.value: ("ANTHROPIC_API_KEY", "x-api-key", ""),
    _P.AZURE_AI_OPENAI.value: ("AZURE_OPENAI_API_KEY", "api-key", ""),
    _P.AZURE_AI_INFERENCE.value: ("AZURE_INFERENCE_CREDENTIAL", "api-key", ""),
    _P.GCP_GEMINI.value: ("GEMINI_API_KEY", "x-goog-api-key", ""),
    _P.GCP_VERTEX_AI.value: _bearer("GOOGLE_OAUTH_ACCESS_TOKEN"),
    _P.GROQ.value: _bearer("GROQ_API_KEY"),
    _P.DEEPSEEK.value: _bearer("DEEPSEEK_API_KEY"),
    _P.MISTRAL_AI.value: _bearer("MISTRAL_API_KEY"),
    _P.X_AI.value: _bearer("XAI_API_KEY"),
    _P.PERPLEXITY.value: _bearer("PERPLEXITY_API_KEY"),
    _P.COHERE.value: _bearer("CO_API_KEY"),
    "openrouter": _bearer("OPENROUTER_API_KEY"),
    "together_ai": _bearer("TOGETHER_API_KEY"),
    "fireworks_ai": _bearer("FIREWORKS_API_KEY"),
    "cerebras": _bearer("CEREBRAS_API_KEY"),
}
#: Named providers (the semconv list) without a key variable (Amazon Bedrock: signed instead, see
#: :func:`send_request`): no key header, and never another provider's key.
_NO_KEY = frozenset(p.value for p in _P) - set(CREDENTIALS)
#: Headers a provider requires besides the credential (never recorded: headers are not stored).
_EXTRA_HEADERS: Mapping[str, Mapping[str, str]] = {
    _P.ANTHROPIC.value: {"anthropic-version": "2023-06-01"},
}


def auth_headers(provider: str | None, environ: Mapping[str, str]) -> dict[str, str]:
    """The credential header (and required provider headers) for ``provider`` from ``environ``."""
    if provider in _NO_KEY:
        return {}
    key = provider if provider is not None and provider in CREDENTIALS else _P.OPENAI.value
    env_var, header, prefix = CREDENTIALS[key]
    headers = dict(_EXTRA_HEADERS.get(key, {}))
    secret = environ.get(env_var)
    if secret:
        headers[header] = prefix + secret
    return headers


@dataclass
class SendOutcome:
    """What happened to one request: final ``http_status`` (``None`` without a response),
    ``error`` text (``None`` on success), ``attempts`` made, wall time ``elapsed_ms`` and the final
    response's ``content_type`` header (``None`` without a response or header)."""

    http_status: int | None = None
    error: str | None = None
    attempts: int = 0
    elapsed_ms: float = 0.0
    content_type: str | None = None


def _http_error_text(response: httpx2.Response) -> str:
    detail = ""
    try:
        payload = response.json()
        err = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(err, Mapping):
            detail = str(err.get("message") or "")
        elif isinstance(err, str):
            detail = err
    except ValueError:
        detail = response.text[:200]
    return f"HTTP {response.status_code}" + (f": {detail}" if detail else "")


def send_request(
    client: httpx2.Client,
    method: str,
    url: str,
    body: bytes,
    *,
    provider: str | None,
    environ: Mapping[str, str],
    retry: RetryPolicy,
    allowed_hosts: Collection[str] = (),
    check: Callable[[str, Collection[str]], None] = check_url,
    sleep: Callable[[float], None] = time.sleep,
) -> SendOutcome:
    """Send ``body`` to ``url`` (after :func:`~spanreel.replay._safety.check_url`), retrying 429,
    5xx and connection errors per ``retry`` (honouring ``Retry-After``). An ``aws.bedrock`` request
    is signed (AWS SigV4) for each attempt. A retry carries the header the openai and anthropic
    SDKs send, ``x-stainless-retry-count`` (1 for the first retry, …; the first attempt is sent
    without it), so the instrumentation records each attempt's span with
    ``http.request.resend_count`` as it does for an app's SDK retries. Never raises for HTTP or
    network failures, or a request that cannot be signed: they are in the outcome.

    The error text of an HTTP or network failure names the request — method and URL without
    credentials (user-info and key/token query parameters removed:
    :func:`spanreel.instrumentation._http.sanitize_url`) — and, after retries, the number of
    attempts: ``ConnectError: [Errno 111] Connection refused (POST http://h:1/v1/chat/completions,
    after 4 attempts)``."""
    outcome = SendOutcome()
    try:
        check(url, allowed_hosts)
    except UnsafeHostError as exc:
        outcome.error = str(exc)
        return outcome
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "user-agent": f"spanreel-replay/{__version__}",
        **auth_headers(provider, environ),
    }
    start = time.perf_counter()
    sent = False  # whether the error text comes from sending (HTTP or network), not from signing
    while True:
        outcome.attempts += 1
        retry_after: float | None = None
        retryable = False
        try:
            sent_headers = headers
            if outcome.attempts > 1:  # numbered like the SDKs' retries: http.request.resend_count
                sent_headers = {**headers, RETRY_COUNT_HEADER: str(outcome.attempts - 1)}
            if provider == _P.AWS_BEDROCK.value:  # accept: what AnthropicBedrock sends, streamed or not
                sent_headers = sign_bedrock_request(
                    method, url, body, {**sent_headers, "accept": "application/json"}, environ
                )
            response = client.request(method, url, content=body, headers=sent_headers)
        except SigningError as exc:
            sent = False
            outcome.error = str(exc)
            break
        except httpx2.HTTPError as exc:
            sent = True
            outcome.http_status = outcome.content_type = None
            outcome.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            retryable = isinstance(exc, httpx2.TransportError)
        else:
            sent = True
            outcome.http_status = response.status_code
            outcome.content_type = response.headers.get("content-type")
            if response.status_code >= 400:
                outcome.error = _http_error_text(response)
                retryable = retry.retryable_status(response.status_code)
                retry_after = parse_retry_after(response.headers.get("retry-after"))
            else:
                outcome.error = None
        if not retryable or outcome.attempts > retry.max_retries:
            break
        sleep(retry.delay(outcome.attempts, retry_after))
    outcome.elapsed_ms = (time.perf_counter() - start) * 1000
    if outcome.error:
        where = [f"{method} {sanitize_url(url)}"] if sent else []
        if outcome.attempts > 1:
            where.append(f"after {outcome.attempts} attempts")
        if where:
            outcome.error += f" ({', '.join(where)})"
    return outcome
