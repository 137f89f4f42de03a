"""HTTP-level helpers (pure): URL sanitising, provider detection by host, content decoding."""

from __future__ import annotations

import functools
import importlib
import re
import traceback
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, unquote_plus, urlencode, urlsplit, urlunsplit

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import GenAiProviderNameValues
from opentelemetry.semconv.attributes.exception_attributes import EXCEPTION_MESSAGE, EXCEPTION_STACKTRACE

from ._common import map_dict, map_list

#: Query parameter names (compared case-insensitively, ignoring ``-`` and ``_``) whose values are
#: credentials and must never be recorded.
CREDENTIAL_QUERY_PARAMS: frozenset[str] = frozenset(
    {
        "key",
        "api_key",
        "apikey",
        "x_api_key",
        "token",
        "access_token",
        "id_token",
        "refresh_token",
        "auth",
        "authorization",
        "sig",
        "signature",
        "x_goog_signature",
        "x_amz_signature",
        "x_amz_credential",
        "x_amz_security_token",
        "awsaccesskeyid",
        "client_secret",
        "password",
        "secret",
        "code",
        "subscription_key",  # Azure API Management
        "auth_token",
        "api_token",
        "private_token",  # GitLab
        "session_token",
        "access_key",
        "secret_key",
        "client_assertion",
        "jwt",
    }
)
#: :data:`CREDENTIAL_QUERY_PARAMS` as compared: lower case, without ``_`` (so ``api-key``,
#: ``API_KEY``, ``apiKey`` and ``accessToken`` match too).
_CREDENTIAL_NAMES: frozenset[str] = frozenset(name.replace("_", "") for name in CREDENTIAL_QUERY_PARAMS)

_PROVIDER = GenAiProviderNameValues
#: Exact host → ``gen_ai.provider.name`` for OpenAI-compatible endpoints.
_HOST_PROVIDERS: dict[str, str] = {
    "api.openai.com": _PROVIDER.OPENAI.value,
    "api.groq.com": _PROVIDER.GROQ.value,
    "api.deepseek.com": _PROVIDER.DEEPSEEK.value,
    "api.mistral.ai": _PROVIDER.MISTRAL_AI.value,
    "api.x.ai": _PROVIDER.X_AI.value,
    "api.perplexity.ai": _PROVIDER.PERPLEXITY.value,
    "generativelanguage.googleapis.com": _PROVIDER.GCP_GEMINI.value,
    # Vertex AI's global and multi-region endpoints ({region}-aiplatform… is a suffix below)
    "aiplatform.googleapis.com": _PROVIDER.GCP_VERTEX_AI.value,
    "aiplatform.us.rep.googleapis.com": _PROVIDER.GCP_VERTEX_AI.value,
    "aiplatform.eu.rep.googleapis.com": _PROVIDER.GCP_VERTEX_AI.value,
    "api.anthropic.com": _PROVIDER.ANTHROPIC.value,
    "api.cohere.ai": _PROVIDER.COHERE.value,
    "api.cohere.com": _PROVIDER.COHERE.value,
    # Not in the semconv list (custom values are allowed): named like genai-prices' providers.
    "openrouter.ai": "openrouter",
    "api.together.xyz": "together_ai",
    "api.together.ai": "together_ai",
    "api.fireworks.ai": "fireworks_ai",
    "api.cerebras.ai": "cerebras",
}
#: Host suffix → provider (checked after the exact table).
_SUFFIX_PROVIDERS: tuple[tuple[str, str], ...] = (
    (".openai.azure.com", _PROVIDER.AZURE_AI_OPENAI.value),
    # Azure AI Foundry resources serve the Azure OpenAI APIs (deployments, /openai/v1/…) here too
    (".cognitiveservices.azure.com", _PROVIDER.AZURE_AI_OPENAI.value),
    (".services.ai.azure.com", _PROVIDER.AZURE_AI_INFERENCE.value),
    (".models.ai.azure.com", _PROVIDER.AZURE_AI_INFERENCE.value),
    ("-aiplatform.googleapis.com", _PROVIDER.GCP_VERTEX_AI.value),
)


@functools.lru_cache(maxsize=1024)
def host_provider(host: str) -> str | None:
    """``gen_ai.provider.name`` of a known API host (``api.groq.com`` → ``groq``,
    ``*.openai.azure.com`` and ``*.cognitiveservices.azure.com`` → ``azure.ai.openai`` …), else
    ``None``."""
    h = host.lower().rstrip(".")
    found = _HOST_PROVIDERS.get(h)
    if found is not None:
        return found
    for suffix, provider in _SUFFIX_PROVIDERS:
        if h.endswith(suffix):
            return provider
    return None


def provider_for_host(host: str, default: str = _PROVIDER.OPENAI.value) -> str:
    """``gen_ai.provider.name`` for an OpenAI-compatible API host: :func:`host_provider`, and for
    anything else (a proxy, a local server) ``default`` — the API shape spoken, ``openai``."""
    return host_provider(host) or default


def _is_credential(name: str) -> bool:
    return name.lower().replace("-", "").replace("_", "") in _CREDENTIAL_NAMES


#: Query parameter separators: ``&``, and ``;``, which some servers still split on.
_QUERY_SEPARATOR = re.compile("([&;])")


#: ``=`` as written in a query, or percent-encoded.
_EQUALS = re.compile("=|%3[dD]")


def _credential_value(segment: str) -> tuple[str, str] | None:
    """The value of a raw query segment (``name=value``) that is a credential parameter, as
    ``(percent-decoded, as spelled in the URL)``, else ``None``. The name is read both before the
    first raw ``=`` and before the first ``=`` after decoding, so ``key%3DSECRET`` (a name some
    servers decode to ``key=SECRET``) counts as the credential ``key`` too."""
    raw_name, eq, raw_value = segment.partition("=")
    if eq and _is_credential(unquote_plus(raw_name)):
        return unquote_plus(raw_value), raw_value
    name, _, value = unquote_plus(segment).partition("=")
    if _is_credential(name):
        return value, _EQUALS.split(segment, maxsplit=1)[-1]
    return None


def _strip_credential_params(query: str) -> str:
    """``query`` (raw) without its credential parameters; the others keep their spelling and
    separators."""
    pieces = _QUERY_SEPARATOR.split(query)  # [segment, separator, segment, ...]
    kept: list[str] = []
    for i in range(0, len(pieces), 2):
        if _credential_value(pieces[i]) is None:
            kept.extend((pieces[i - 1] if i and kept else "", pieces[i]))
    return "".join(kept)


def sanitize_url(url: str) -> str:
    """``url`` without credentials: user-info (``user:pass@``) and credential query parameters
    (:data:`CREDENTIAL_QUERY_PARAMS`, e.g. ``key``, ``api-key``, ``token``, ``sig``; also when
    separated by ``;`` or spelled ``key%3D…``) are removed; everything else, including the order
    and the percent-encoding of the other parameters, is kept."""
    if "?" not in url and "@" not in url:
        return url  # nothing to remove (the common case, checked without parsing)
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2] if "@" in parts.netloc else parts.netloc
    query = parts.query
    if query:
        query = _strip_credential_params(query)
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


#: Request headers whose values are credentials (lower-case names).
CREDENTIAL_HEADERS: frozenset[str] = frozenset(
    {
        "authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "ocp-apim-subscription-key",
        "proxy-authorization",
    }
)
#: Shorter values are not masked in free text (they would match ordinary words).
_MIN_SECRET_CHARS = 8
CREDENTIAL_MASK = "[REDACTED:credential]"


def request_credentials(headers: Any, url: str) -> list[str]:
    """The credential values a request carries — :data:`CREDENTIAL_HEADERS` values (an
    ``Authorization`` scheme word dropped), credential query parameters and the URL's user-info —
    in every spelling error text may quote them (see :func:`_spellings`), longest first; values
    under 8 characters are left out."""
    found: set[str] = set()
    for name, value in headers.items() if headers is not None else ():
        if isinstance(name, bytes):
            name, value = name.decode("latin-1"), value.decode("latin-1")
        if name.lower() in CREDENTIAL_HEADERS:
            found.add(value.strip())
            found.update(value.split())  # without "Bearer " / "Basic " and stray whitespace
    if "?" in url or "@" in url:
        parts = urlsplit(url)
        for segment in _QUERY_SEPARATOR.split(parts.query)[::2]:
            value = _credential_value(segment)
            if value is not None:
                found.update(value)  # decoded, and as spelled in the URL (error text may quote it)
        userinfo = parts.netloc.rpartition("@")[0]
        if userinfo:  # user:password@ (a token may be the user name)
            for raw in userinfo.split(":", 1):
                found.update((raw, unquote(raw)))
    return sorted(
        {form for secret in found for form in _spellings(secret) if len(form) >= _MIN_SECRET_CHARS},
        key=len,
        reverse=True,
    )


#: Control characters, which an error message quotes escaped (``\n``, ``\x00``).
_CONTROL = re.compile("[\x00-\x1f\x7f]+")


def _spellings(secret: str) -> set[str]:
    """``secret`` as error text may quote it: as is, escaped like a ``str`` or ``bytes`` repr
    (a transport refusing a header value with a control character in it quotes the repr), and
    each run of it between control characters."""
    forms = {secret}
    if _CONTROL.search(secret):
        forms.add(repr(secret)[1:-1])
        forms.add(repr(secret.encode("utf-8", "surrogateescape"))[2:-1])
        forms.update(_CONTROL.split(secret))
    return forms


#: JSON keys (compared like query names: any case, ignoring ``-`` and ``_``) whose string values
#: in a request body are credentials: a remote MCP server's ``authorization`` (OpenAI Responses)
#: or ``authorization_token`` (Anthropic's MCP connector), keys and secrets of data sources. Not
#: the query names too generic for a body (``key``, ``code``, ``auth``) nor ``signature`` (of an
#: Anthropic thinking block, sent back with the conversation).
_BODY_CREDENTIAL_SPELLINGS: frozenset[str] = CREDENTIAL_QUERY_PARAMS - {
    "key",
    "code",
    "auth",
    "sig",
    "signature",
    "x_goog_signature",
    "x_amz_signature",
} | {"authorization_token", "bearer_token", "connection_string", "encoded_api_key"}
_BODY_CREDENTIAL_KEYS = frozenset(name.replace("_", "") for name in _BODY_CREDENTIAL_SPELLINGS)
#: Objects whose every credential-looking member is one: ``headers`` (sent to an MCP server) and
#: ``authentication`` (Azure OpenAI "On Your Data": ``{"type": "api_key", "key": …}``).
_BODY_CREDENTIAL_HOLDERS = frozenset({"headers", "authentication"})
_CREDENTIAL_WORDS = ("auth", "key", "token", "secret", "password", "cookie", "signature")
#: Top-level request members whose items may carry credentials: OpenAI Responses' remote MCP tools
#: (``tools[]`` of type ``mcp``), Anthropic's ``mcp_servers``, Azure OpenAI's ``data_sources``.
_BODY_CREDENTIAL_LISTS = ("tools", "mcp_servers", "data_sources")


def mask_body_credentials(body: Any) -> Any:
    """``body`` (a parsed JSON request body) with the credentials its MCP tools, MCP servers and
    data sources carry replaced by :data:`CREDENTIAL_MASK`: string values of credential keys
    (``authorization``, ``authorization_token``, ``api_key``, ``access_token``, ``client_secret``,
    ``password``…) at any depth, and inside a ``headers`` or ``authentication`` object every member
    whose name holds ``auth``, ``key``, ``token``, ``secret``… Other tools (JSON Schemas) are not
    walked. Copy-on-write: the very same object comes back when nothing was masked, the common case
    decided by three dict look-ups."""
    if not isinstance(body, dict):
        return body
    out: dict[str, Any] | None = None
    for name in _BODY_CREDENTIAL_LISTS:
        items = body.get(name)
        if not isinstance(items, list):
            continue
        masked = map_list(items, _mask_mcp_tool if name == "tools" else _mask_credential_item)
        if masked is not items:
            if out is None:
                out = dict(body)
            out[name] = masked
    return body if out is None else out


def _mask_mcp_tool(item: Any) -> Any:
    if not isinstance(item, dict) or item.get("type") != "mcp":
        return item  # a function tool is a JSON Schema: nothing to mask, much to walk
    return _mask_credential_members(item, "")


def _mask_credential_item(item: Any) -> Any:
    return _mask_credential_members(item, "") if isinstance(item, dict) else item


def _mask_credential_members(value: Any, holder: str) -> Any:
    if isinstance(value, dict):
        return map_dict(value, lambda key, item: _mask_member(key, item, holder))
    if isinstance(value, list):
        return map_list(value, lambda item: _mask_credential_members(item, holder))
    return value


def _mask_member(key: Any, item: Any, holder: str) -> Any:
    if not isinstance(item, str):
        return _mask_credential_members(item, key.lower() if isinstance(key, str) else "")
    name = key.lower().replace("-", "").replace("_", "") if isinstance(key, str) else ""
    secret = name in _BODY_CREDENTIAL_KEYS or (
        holder in _BODY_CREDENTIAL_HOLDERS and any(w in name for w in _CREDENTIAL_WORDS)
    )
    return CREDENTIAL_MASK if secret and item else item


def mask_credentials(text: str, credentials: list[str]) -> str:
    """``text`` with every occurrence of each credential replaced by :data:`CREDENTIAL_MASK`
    (a provider's error message may quote the key it refused)."""
    for secret in credentials:
        if secret in text:
            text = text.replace(secret, CREDENTIAL_MASK)
    return text


def masked_exception(exc: BaseException, credentials: list[str]) -> dict[str, str] | None:
    """``exception.message`` / ``exception.stacktrace`` attributes for ``record_exception`` with
    ``credentials`` masked, when the exception's message or its stacktrace (which shows chained
    causes: a transport error quoting the header it refused) holds one; ``None`` when neither does
    (the SDK's own attributes are fine)."""
    if not credentials:
        return None
    message = str(exc)
    stacktrace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    masked_message = mask_credentials(message, credentials)
    masked_stacktrace = mask_credentials(stacktrace, credentials)
    if masked_message == message and masked_stacktrace == stacktrace:
        return None
    return {EXCEPTION_MESSAGE: masked_message, EXCEPTION_STACKTRACE: masked_stacktrace}


def exception_credentials(exc: BaseException) -> list[str]:
    """The credentials (see :func:`request_credentials`) of every HTTP request an exception, its
    chained causes and, for an exception group (``asyncio.TaskGroup``), its members carry as
    ``.request`` (the openai and anthropic SDKs' errors and httpx's own do), longest first."""
    found: set[str] = set()
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending and len(seen) < 32:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        try:
            request = getattr(current, "request", None)  # httpx raises when it was never set
        except Exception:
            request = None
        headers = getattr(request, "headers", None)
        if headers is not None and hasattr(headers, "items"):
            found.update(request_credentials(headers, str(getattr(request, "url", ""))))
        pending += (current.__cause__, current.__context__, *getattr(current, "exceptions", ()))
    return sorted(found, key=len, reverse=True)


def redact_url(url: str, redactor: Callable[[str], str]) -> str:
    """``url`` with ``redactor`` applied to its path and to each query parameter's name and value
    as text (percent-decoded first: ``jane%40example.com`` is the e-mail address it encodes), and
    re-encoded where it changed; parts it leaves alone keep their original spelling."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    redacted_path = redactor(path)
    new_path = parts.path if redacted_path == path else quote(redacted_path, safe="/:@!$&'()*+,;=")
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        redacted = [(redactor(k), redactor(v)) for k, v in pairs]
        if redacted != pairs:
            query = urlencode(redacted)
    if new_path == parts.path and query == parts.query:
        return url
    return urlunsplit((parts.scheme, parts.netloc, new_path, query, parts.fragment))


_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def default_port(scheme: str) -> int | None:
    """The default TCP port for ``http``/``https`` (``ws``/``wss``), else ``None``."""
    return _DEFAULT_PORTS.get(scheme.lower())


Decoder = Callable[[bytes], bytes]


def make_decoder(content_encoding: str) -> Decoder | None:
    """An incremental decoder for a ``Content-Encoding`` header value.

    Returns a function ``bytes -> bytes`` fed the raw body chunk by chunk (``identity``/empty →
    pass-through; ``gzip``/``x-gzip``/``deflate`` via :mod:`zlib`; ``br`` and ``zstd`` with the
    modules httpx/httpx2 decode them with — ``brotli``/``brotlicffi``, ``backports.zstd`` /
    ``compression.zstd`` or ``zstandard`` — when installed: the clients only ask for these
    encodings then; applied in reverse order of a comma-separated list). Returns ``None`` for
    encodings it cannot decode: the caller then skips parsing the body, never the body itself.
    """
    if not content_encoding:
        return _identity
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    steps: list[Decoder] = []
    for coding in reversed(codings):
        if coding == "identity":
            continue
        if coding in ("gzip", "x-gzip"):
            steps.append(zlib.decompressobj(zlib.MAX_WBITS | 16).decompress)
        elif coding == "deflate":
            steps.append(_DeflateDecoder())
        elif coding == "br" and _brotli() is not None:
            decompressor = _brotli().Decompressor()
            # ``brotli`` names the method ``process``, ``brotlicffi`` ``decompress``
            steps.append(getattr(decompressor, "process", None) or decompressor.decompress)
        elif coding == "zstd" and (zstd := _zstd()) is not None:
            steps.append(_ZstdDecoder(zstd))
        else:
            return None
    if not steps:
        return _identity
    if len(steps) == 1:
        return steps[0]

    def chained(data: bytes) -> bytes:
        for step in steps:
            data = step(data)
        return data

    return chained


def _identity(data: bytes) -> bytes:
    return data


class _DeflateDecoder:
    """``deflate`` is zlib-wrapped per RFC 9110 but some servers send raw DEFLATE; handle both."""

    def __init__(self) -> None:
        self._obj: zlib._Decompress | None = None

    def __call__(self, data: bytes) -> bytes:
        if self._obj is None:
            if not data:
                return b""
            # A zlib header (RFC 1950): method 8 in the low nibble and a 16-bit check value.
            zlib_header = data[0] & 0x0F == 8 and (len(data) < 2 or (data[0] << 8 | data[1]) % 31 == 0)
            wbits = zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS
            self._obj = zlib.decompressobj(wbits)
        return self._obj.decompress(data)


def _optional_module(*names: str) -> Any:
    """The first of ``names`` that imports, else ``None``."""
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


@functools.cache
def _brotli() -> Any:
    """The brotli module httpx/httpx2 use for ``br`` (``brotli``, else ``brotlicffi``), or ``None``."""
    return _optional_module("brotli", "brotlicffi")


@functools.cache
def _zstd() -> Callable[[], Any] | None:
    """A factory of incremental ``zstd`` decompressors from the module httpx2 uses
    (``compression.zstd`` from Python 3.14, else ``backports.zstd``) or the one httpx uses
    (``zstandard``), or ``None`` when none is installed. A decompressor has ``decompress(data)``,
    ``eof`` and ``unused_data``."""
    module = _optional_module("compression.zstd", "backports.zstd")
    if module is not None:
        factory: Callable[[], Any] = module.ZstdDecompressor
        return factory
    zstandard = _optional_module("zstandard")
    if zstandard is not None:
        return lambda: zstandard.ZstdDecompressor().decompressobj()
    return None


class _ZstdDecoder:
    """``zstd``, incrementally; a body may hold several frames, one after the other."""

    def __init__(self, new_decompressor: Callable[[], Any]) -> None:
        self._new = new_decompressor
        self._obj = new_decompressor()

    def __call__(self, data: bytes) -> bytes:
        out: list[bytes] = []
        while data:
            if self._obj.eof:  # the previous frame is complete: the next one starts here
                self._obj = self._new()
            out.append(self._obj.decompress(data))
            data = self._obj.unused_data if self._obj.eof else b""
        return b"".join(out)
