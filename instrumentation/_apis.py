"""Which LLM API a request speaks, decided at the wire by URL path, then body shape (pure).

| path (any prefix, any host)                         | body has          | API                      |
|-----------------------------------------------------|-------------------|--------------------------|
| ``…/chat/completions``                              | ``messages`` list | OpenAI Chat Completions  |
| ``…/responses``                                     | ``input``/``model`` | OpenAI Responses       |
| ``…/completions`` (not chat)                        | ``prompt``        | OpenAI legacy completions|
| ``…/embeddings``                                    | ``input``         | OpenAI Embeddings        |
| ``…/messages``                                      | ``messages`` list | Anthropic Messages       |
| ``…/models/{model}:generateContent`` / ``:streamGenerateContent`` | ``contents`` | Gemini          |
| ``…/publishers/anthropic/models/{m}:rawPredict`` / ``:streamRawPredict`` | ``messages`` | Anthropic |
| ``…/model/{id}/invoke`` / ``/invoke-with-response-stream`` | + ``anthropic_version`` | Anthropic |

Azure OpenAI's ``/openai/deployments/{deployment}/…`` paths are the OpenAI ones under a prefix;
the deployment stands in for a missing ``model``; Vertex AI and Bedrock paths name the model too.
``gen_ai.provider.name`` comes from the host where it is known
(:func:`~._http.provider_for_host`), else from the path (Azure deployments, or any ``/openai/…``
path with an ``api-version`` query, such as Azure's ``/openai/responses`` → ``azure.ai.openai``,
also behind a custom domain or proxy; a Vertex AI model path
``…/locations/{region}/publishers/{publisher}/models/…`` → ``gcp.vertex_ai``), else the API's own
provider (``anthropic``, ``aws.bedrock`` for Bedrock's paths, ``gcp.gemini``), else ``openai``
(an OpenAI-compatible server: vLLM, Ollama, LiteLLM, a proxy…).
"""

from __future__ import annotations

from typing import NamedTuple

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import GenAiProviderNameValues

from ._anthropic import BEDROCK_MESSAGES, MESSAGES
from ._common import Api
from ._gemini import GENERATE_CONTENT
from ._http import host_provider
from ._openai import CHAT
from ._openai_misc import COMPLETIONS, EMBEDDINGS
from ._openai_responses import RESPONSES

_AZURE = GenAiProviderNameValues.AZURE_AI_OPENAI.value
_OPENAI = GenAiProviderNameValues.OPENAI.value
_VERTEX = GenAiProviderNameValues.GCP_VERTEX_AI.value

#: Path suffix → API, checked in order (``/chat/completions`` before ``/completions``).
_SUFFIXES: tuple[tuple[str, Api], ...] = (
    ("/chat/completions", CHAT),
    ("/responses", RESPONSES),
    ("/completions", COMPLETIONS),
    ("/embeddings", EMBEDDINGS),
    ("/messages", MESSAGES),
)
_GEMINI_METHODS = {"generateContent": False, "streamGenerateContent": True}
#: Vertex AI's methods for a partner model: Anthropic Messages bodies (the model in the path).
_RAW_PREDICT_METHODS = {"rawPredict": False, "streamRawPredict": True}
#: Amazon Bedrock's InvokeModel paths (``…/model/{modelId}{suffix}``) → streamed.
_BEDROCK_SUFFIXES = (("/invoke", False), ("/invoke-with-response-stream", True))


class Route(NamedTuple):
    """The API a path speaks, the model (or deployment) the path names, and whether the path
    itself asks for a stream (Gemini ``:streamGenerateContent``)."""

    api: Api
    path_model: str | None
    path_stream: bool


_ROUTES_CACHED = 1024
#: path → :func:`route`'s answer (the paths an application posts to are few; cleared when full).
_routes: dict[str, Route | None] = {}


def route(path: str) -> Route | None:
    """The :class:`Route` for a request path, or ``None`` for paths of no known LLM API.
    Cheap: memoised per path, else string suffix checks (called for every POST through
    httpx/httpx2)."""
    found = _routes.get(path)
    if found is not None or path in _routes:
        return found
    found = _route(path)
    if len(_routes) >= _ROUTES_CACHED:
        _routes.clear()
    _routes[path] = found
    return found


def _route(path: str) -> Route | None:
    path = path.rstrip("/")
    for suffix, api in _SUFFIXES:
        if path.endswith(suffix):
            return Route(api, _deployment(path), False)
    for suffix, streamed in _BEDROCK_SUFFIXES:
        if path.endswith(suffix):
            at = path.find("/model/")
            model_id = path[at + len("/model/") : -len(suffix)] if at >= 0 else ""
            return Route(BEDROCK_MESSAGES, model_id, streamed) if model_id else None
    last = path.rpartition("/")[2]
    if ":" in last:
        model, _, method = last.partition(":")
        stream = _GEMINI_METHODS.get(method)
        if stream is not None and model:
            return Route(GENERATE_CONTENT, model, stream)
        stream = _RAW_PREDICT_METHODS.get(method)
        # …/models/count-tokens:rawPredict counts a Messages body's tokens: not a model call.
        if stream is not None and model and model != "count-tokens" and "/publishers/anthropic/" in path:
            return Route(MESSAGES, model, stream)
    return None


def _deployment(path: str) -> str | None:
    marker = "/openai/deployments/"
    at = path.find(marker)
    if at < 0:
        return None
    name = path[at + len(marker) :].partition("/")[0]
    return name or None


def provider_for(api: Api, host: str, path: str, query: bytes = b"") -> str:
    """``gen_ai.provider.name`` for a call of ``api`` to ``host`` (see the module docstring);
    ``query`` is the URL's raw query string (bytes, as httpx gives it): Azure's ``api-version``
    marks its paths other than deployments."""
    found = host_provider(host)
    if found is not None:
        return found
    if "/openai/deployments/" in path or (path.startswith("/openai/") and b"api-version=" in query):
        return _AZURE
    if "/locations/" in path and "/publishers/" in path:  # a Vertex AI model path, behind any host
        return _VERTEX
    return api.provider or _OPENAI
