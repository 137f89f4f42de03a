"""A deterministic LLM server for demos and tests (``spanreel fake-llm``).

It speaks enough of the OpenAI Chat Completions API (https://platform.openai.com/docs/api-reference/chat)
for the official SDKs to work unchanged against it, and, on the routes of :meth:`FakeLLMServer._make_app`,
enough of OpenAI's Responses, legacy completions and embeddings, Anthropic Messages, Gemini
``generateContent`` and Azure OpenAI's deployment paths (answers in :mod:`spanreel._fakellm_apis`):

- ``POST /v1/chat/completions`` (also ``/chat/completions``): a JSON ``chat.completion`` object, or with
  ``"stream": true`` Server-Sent Events (``data: {chat.completion.chunk}\\n\\n`` … ``data: [DONE]\\n\\n``),
  a few words per chunk. ``"stream_options": {"include_usage": true}`` adds a final chunk carrying
  ``usage`` and an empty ``choices`` list, as OpenAI does.
- ``GET /v1/models`` (also ``/models``): a model list.
- Errors are OpenAI-shaped, ``{"error": {"message", "type", "param", "code"}}``: 400 for a body that is
  not a JSON object or has no ``messages`` list; a model named ``fake-error-NNN`` (e.g.
  ``fake-error-500``, ``fake-error-429``) forces HTTP status NNN (400–599).

Answers are deterministic: the text is chosen by a SHA-256 of the canonical JSON of the parts of the
request that matter (model, messages, sampling parameters, tools — not ``stream``), so the same
request always gets the same answer, streamed or not, and any change to the prompt changes it.
Answers are 20–60 words of readable English built from templates. When the last user message asks
for a score or a judgement (mentions "score", "judge", "rate" or "grade") the answer ends with a line
``Score: N/10``. When the request offers ``tools`` and the last message is from the user (and
``tool_choice`` is not ``"none"``), the answer is a call to the first (or the chosen) tool with
arguments filled from its JSON schema; after a ``tool`` message the answer is text again.

Token counts are whitespace-separated words: ``completion_tokens`` is the number of words in the
answer, ``prompt_tokens`` the number of words in the messages' text (plus tool call names and
arguments). ``max_tokens`` / ``max_completion_tokens`` cut the answer to that many words and set
``finish_reason`` to ``"length"``.

Use :class:`FakeLLMServer` in tests (a background thread with its own event loop) or run
``spanreel fake-llm --port 8000`` and point an SDK at it with ``OPENAI_BASE_URL``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import click
from aiohttp import web

from spanreel._threaded_server import ThreadedAiohttpServer

__all__ = ["FakeLLMServer", "RecordedRequest", "fake_llm_command", "generate_answer"]

#: Request fields that change the answer. ``stream``/``stream_options``/``user``/``metadata`` do not.
_ANSWER_FIELDS: tuple[str, ...] = (
    "model",
    "messages",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "seed",
    "stop",
    "frequency_penalty",
    "presence_penalty",
    "n",
    "tools",
    "tool_choice",
    "response_format",
    "reasoning_effort",
)
_WORDS_PER_CHUNK = 3
_MODELS = ("fake-gpt", "gpt-4o-mini", "gpt-4.1", "fake-judge")
_ERROR_MODEL = re.compile(r"^fake-error-([45]\d\d)$")
_SCORE_WORDS = re.compile(r"\b(score|judge|rate|rating|grade)\b", re.IGNORECASE)

_OPENERS = (
    "Here is my view.",
    "Short answer first.",
    "Let me think about this carefully.",
    "That is a fair question.",
    "Good point to raise.",
    "There are two sides to this.",
)
_SUBJECTS = (
    "the evidence",
    "a careful reader",
    "the strongest argument",
    "the history of the idea",
    "a simple experiment",
    "the opposing side",
    "a practical engineer",
    "the data we have",
)
_VERBS = (
    "suggests",
    "shows",
    "hints",
    "makes clear",
    "reminds us",
    "supports the view",
    "points out",
)
_CLAIMS = (
    "that small steps compound into large results",
    "that clarity matters more than cleverness",
    "that the trade-off depends on context",
    "that measuring first avoids most surprises",
    "that the simplest explanation usually wins",
    "that both positions share a common core",
    "that patience beats haste in the long run",
    "that good defaults save everyone time",
    "that the cost is lower than it first appears",
)
_CLOSERS = (
    "In short, I would lean towards the practical option.",
    "So the balance tips slightly in favour of caution.",
    "That is why I find the argument convincing overall.",
    "Still, reasonable people can disagree here.",
    "On reflection, the case holds up well.",
)


@dataclass(frozen=True)
class RecordedRequest:
    """One request received by :class:`FakeLLMServer` (for assertions in tests).

    ``headers`` keeps the header names as sent (case-insensitive lookups: use
    :meth:`header`); ``json`` is the parsed body, or ``None`` when there was no valid JSON body.
    """

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    body: bytes = field(repr=False, default=b"")

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (case-insensitive), or ``None``."""
        lname = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lname:
                return value
        return None


# ---------------------------------------------------------------------------------------------
# Deterministic content (pure functions)
# ---------------------------------------------------------------------------------------------


def _canonical(body: Mapping[str, Any]) -> bytes:
    subset = {k: body[k] for k in _ANSWER_FIELDS if k in body and body[k] is not None}
    return json.dumps(subset, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _digest(body: Mapping[str, Any]) -> bytes:
    return hashlib.sha256(_canonical(body)).digest()


class _Picker:
    """Deterministic choices from a seed (SHA-256 in counter mode; stable across Python versions)."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0

    def number(self, bound: int) -> int:
        self._counter += 1
        block = hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
        return int.from_bytes(block[:8], "big") % bound

    def pick(self, options: Sequence[str]) -> str:
        return options[self.number(len(options))]


def _text_of(content: Any) -> str:
    """The text of a message ``content``: a string, or a list of parts (``{"type": "text", "text"}``)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, Mapping):
                text = part.get("text")
                if isinstance(text, str):
                    texts.append(text)
            elif isinstance(part, str):
                texts.append(part)
        return " ".join(texts)
    return ""


def count_words(text: str) -> int:
    """The fake tokenizer: the number of whitespace-separated words in ``text``."""
    return len(text.split())


def _prompt_tokens(messages: Sequence[Any]) -> int:
    total = 0
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        total += count_words(_text_of(message.get("content")))
        for call in message.get("tool_calls") or ():
            if isinstance(call, Mapping) and isinstance(call.get("function"), Mapping):
                fn = call["function"]
                total += count_words(str(fn.get("name") or "")) + count_words(str(fn.get("arguments") or ""))
    return total


def _last_user_text(messages: Sequence[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def generate_answer(body: Mapping[str, Any]) -> str:
    """The full (untruncated) answer text for a chat completions request body.

    Deterministic in the request's model, messages and parameters (see the module docstring);
    20–60 words, plus a ``Score: N/10`` line when the last user message asks for a score.
    """
    picker = _Picker(_digest(body))
    messages = body.get("messages") or []
    sentences = [picker.pick(_OPENERS)]
    for _ in range(2 + picker.number(3)):
        claim = f"{picker.pick(_SUBJECTS)} {picker.pick(_VERBS)} {picker.pick(_CLAIMS)}."
        sentences.append(claim[0].upper() + claim[1:])
    sentences.append(picker.pick(_CLOSERS))
    words = " ".join(sentences).split()
    # Keep within 20–60 words whatever the templates produce.
    while len(words) < 20:
        words += picker.pick(_CLOSERS).split()
    text = " ".join(words[:60])
    if _SCORE_WORDS.search(_last_user_text(messages)):
        text += f"\nScore: {1 + picker.number(10)}/10"
    return text


def _tool_call_for(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """A deterministic tool call when the request offers tools and the model 'should' call one."""
    tools = body.get("tools")
    messages = body.get("messages") or []
    choice = body.get("tool_choice")
    if not isinstance(tools, list) or not tools or choice == "none" or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, Mapping) or last.get("role") != "user":
        return None
    wanted: str | None = None
    if isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        wanted = choice["function"].get("name")
    functions = [
        t["function"] for t in tools if isinstance(t, Mapping) and isinstance(t.get("function"), Mapping)
    ]
    chosen = next((f for f in functions if f.get("name") == wanted), functions[0] if functions else None)
    if chosen is None:
        return None
    picker = _Picker(_digest(body))
    args: dict[str, Any] = {}
    params = chosen.get("parameters")
    props = params.get("properties") if isinstance(params, Mapping) else None
    if isinstance(props, Mapping):
        for name, schema in props.items():
            kind = schema.get("type") if isinstance(schema, Mapping) else None
            if isinstance(schema, Mapping) and isinstance(schema.get("enum"), list) and schema["enum"]:
                args[name] = schema["enum"][picker.number(len(schema["enum"]))]
            elif kind in ("integer", "number"):
                args[name] = 1 + picker.number(100)
            elif kind == "boolean":
                args[name] = bool(picker.number(2))
            else:
                args[name] = picker.pick(_SUBJECTS)
    return {
        "id": "call_" + hashlib.sha256(_canonical(body) + b"tool").hexdigest()[:24],
        "type": "function",
        "function": {"name": str(chosen.get("name") or "tool"), "arguments": json.dumps(args)},
    }


@dataclass(frozen=True)
class _Completion:
    id: str
    model: str
    created: int
    content: str | None
    tool_call: dict[str, Any] | None
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int

    @property
    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def _complete(body: Mapping[str, Any]) -> _Completion:
    messages = body.get("messages") or []
    completion_id = "chatcmpl-" + hashlib.sha256(_canonical(body)).hexdigest()[:29]
    model = str(body.get("model") or "fake-gpt")
    tool_call = _tool_call_for(body)
    if tool_call is not None:
        args = tool_call["function"]["arguments"]
        return _Completion(
            completion_id,
            model,
            int(time.time()),
            None,
            tool_call,
            "tool_calls",
            _prompt_tokens(messages),
            count_words(tool_call["function"]["name"]) + count_words(args),
        )
    text = generate_answer(body)
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    finish = "stop"
    if isinstance(limit, int) and limit > 0 and count_words(text) > limit:
        # Cut to ``limit`` whitespace words, keeping the original spacing (incl. newlines).
        kept = re.match(rf"\s*(?:\S+\s+){{{limit - 1}}}\S+", text)
        text = kept.group(0) if kept else text
        finish = "length"
    return _Completion(
        completion_id,
        model,
        int(time.time()),
        text,
        None,
        finish,
        _prompt_tokens(messages),
        count_words(text),
    )


def _completion_json(c: _Completion) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": c.content, "refusal": None}
    if c.tool_call is not None:
        message["tool_calls"] = [c.tool_call]
    return {
        "id": c.id,
        "object": "chat.completion",
        "created": c.created,
        "model": c.model,
        "system_fingerprint": "fp_spanreel",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": c.finish_reason}],
        "usage": c.usage,
    }


def _split_chunks(text: str, words_per_chunk: int = _WORDS_PER_CHUNK) -> list[str]:
    """Split ``text`` into pieces of a few words whose concatenation is exactly ``text``."""
    tokens = re.findall(r"\S+\s*", text)
    lead = text[: len(text) - len(text.lstrip())]
    pieces = ["".join(tokens[i : i + words_per_chunk]) for i in range(0, len(tokens), words_per_chunk)]
    if pieces:
        pieces[0] = lead + pieces[0]
    return pieces or [text]


def _stream_chunks(c: _Completion, include_usage: bool) -> Iterator[dict[str, Any]]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": c.id,
            "object": "chat.completion.chunk",
            "created": c.created,
            "model": c.model,
            "system_fingerprint": "fp_spanreel",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            out["usage"] = None
        return out

    if c.tool_call is not None:
        fn = c.tool_call["function"]
        yield chunk(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "index": 0,
                        "id": c.tool_call["id"],
                        "type": "function",
                        "function": {"name": fn["name"], "arguments": ""},
                    }
                ],
            }
        )
        args = fn["arguments"]
        for i in range(0, len(args), 12):
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + 12]}}]})
    else:
        yield chunk({"role": "assistant", "content": "", "refusal": None})
        for piece in _split_chunks(c.content or ""):
            yield chunk({"content": piece})
    yield chunk({}, c.finish_reason)
    if include_usage:
        final = chunk({})
        final["choices"] = []
        final["usage"] = c.usage
        yield final


def _error_body(message: str, type_: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


# ---------------------------------------------------------------------------------------------
# aiohttp application
# ---------------------------------------------------------------------------------------------


class FakeLLMServer(ThreadedAiohttpServer):
    """The fake OpenAI-compatible server, run on a background thread with its own event loop.

    ``FakeLLMServer(host="127.0.0.1", port=0, chunk_delay=0.0, coalesce_last=0)``: ``port=0``
    picks a free port; ``chunk_delay`` is the pause in seconds before each streamed chunk;
    ``coalesce_last`` sends the last that many events of every stream in one write (as a client
    often reads a real server's final events, usage and ``[DONE]``, together; a large number sends
    the whole stream in one write; 0: one write per event). :meth:`start` returns once
    the socket is bound (then :attr:`base_url`, e.g. ``http://127.0.0.1:PORT/v1``, is valid;
    ``OSError`` if binding fails); :meth:`stop` shuts it down. Also a context manager (starts on
    enter, stops on exit). :attr:`requests` lists every request received
    (:class:`RecordedRequest`), in arrival order. The lifecycle is
    :class:`spanreel._threaded_server.ThreadedAiohttpServer`'s.
    """

    thread_name = "spanreel-fake-llm"
    startup_failure = "fake LLM server failed to start"

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, chunk_delay: float = 0.0, coalesce_last: int = 0
    ) -> None:
        super().__init__(host, port)
        self.chunk_delay = chunk_delay
        self.coalesce_last = coalesce_last
        self.requests: list[RecordedRequest] = []

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, ``http://HOST:PORT/v1`` (valid after :meth:`start`)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    def _make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        # "/openai", "/openai/v1": Azure OpenAI's Responses and v1 API paths (no deployment)
        for prefix in ("/v1", "", "/openai", "/openai/v1"):
            app.router.add_post(prefix + "/chat/completions", self._chat_completions)
            app.router.add_get(prefix + "/models", self._models)
            app.router.add_post(prefix + "/responses", self._responses)
            app.router.add_post(prefix + "/completions", self._completions)
            app.router.add_post(prefix + "/embeddings", self._embeddings)
            app.router.add_post(prefix + "/messages", self._messages)
        deployments = "/openai/deployments/{deployment}"
        app.router.add_post(deployments + "/chat/completions", self._azure)
        app.router.add_post(deployments + "/completions", self._azure)
        app.router.add_post(deployments + "/embeddings", self._azure)
        app.router.add_post("/{version:v1|v1beta|v1alpha}/models/{target}", self._gemini)
        return app

    # -- handlers ------------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> tuple[bytes, Any]:
        raw = await request.read()
        parsed: Any = None
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
        self.requests.append(
            RecordedRequest(request.method, request.path, dict(request.headers), parsed, raw)
        )
        return raw, parsed

    async def _models(self, request: web.Request) -> web.Response:
        await self._record(request)
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "spanreel"} for m in _MODELS]
        return web.json_response({"object": "list", "data": data})

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        raw, body = await self._record(request)
        return await self._answer_chat(request, raw, body)

    async def _answer_chat(self, request: web.Request, raw: bytes, body: Any) -> web.StreamResponse:
        if not isinstance(body, dict):
            return _openai_error(400, _not_json(raw), "invalid_request_error", None)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _openai_error(
                400, "Missing required parameter: 'messages'.", "invalid_request_error",
                "missing_required_parameter", "messages",
            )  # fmt: skip
        forced = _forced_status(body.get("model"))
        if forced:
            return _openai_forced(forced)
        completion = _complete(body)
        if not body.get("stream"):
            return web.json_response(_completion_json(completion))
        chunks = (_sse_data(chunk) for chunk in _stream_chunks(completion, _include_usage(body)))
        return await self._stream(request, [*chunks, b"data: [DONE]\n\n"])

    async def _stream(
        self,
        request: web.Request,
        events: Iterable[bytes],
        content_type: str = "text/event-stream; charset=utf-8",
    ) -> web.StreamResponse:
        """Write ``events`` one by one (after ``chunk_delay`` each; the last ``coalesce_last`` in
        one write) as a streamed response."""
        response = web.StreamResponse(headers={"Content-Type": content_type, "Cache-Control": "no-cache"})
        await response.prepare(request)
        writes = list(events)
        if self.coalesce_last > 1:
            cut = max(0, len(writes) - self.coalesce_last)
            writes = [*writes[:cut], b"".join(writes[cut:])]
        for event in writes:
            if self.chunk_delay > 0:
                await asyncio.sleep(self.chunk_delay)
            await response.write(event)
        await response.write_eof()
        return response

    async def _azure(self, request: web.Request) -> web.StreamResponse:
        """Azure OpenAI: the OpenAI API under ``/openai/deployments/{deployment}/…?api-version=…``;
        the deployment is the model when the body names none."""
        raw, body = await self._record(request)
        if not request.query.get("api-version"):
            return _openai_error(
                404, "Resource not found: the api-version query parameter is required.",
                "invalid_request_error", "404",
            )  # fmt: skip
        if isinstance(body, dict) and not body.get("model"):
            body["model"] = request.match_info["deployment"]
        path = request.path
        if path.endswith("/chat/completions"):
            return await self._answer_chat(request, raw, body)
        if path.endswith("/embeddings"):
            return self._answer_embeddings(raw, body)
        return await self._answer_completions(request, raw, body)

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        from spanreel import _fakellm_apis as apis

        raw, body = await self._record(request)
        if not isinstance(body, dict):
            return _openai_error(400, _not_json(raw), "invalid_request_error", None)
        if not body.get("model"):
            return _openai_error(400, "Missing required parameter: 'model'.", "invalid_request_error",
                                 "missing_required_parameter", "model")  # fmt: skip
        forced = _forced_status(body.get("model"))
        if forced:
            return _openai_forced(forced)
        chat = apis.responses_to_chat(body)
        if not chat["messages"]:
            return _openai_error(400, "Missing required parameter: 'input'.", "invalid_request_error",
                                 "missing_required_parameter", "input")  # fmt: skip
        completion = _complete(chat)
        if not body.get("stream"):
            return web.json_response(apis.render_response(completion, body))
        events = (_sse_data(payload, name) for name, payload in apis.responses_stream(completion, body))
        return await self._stream(request, events)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        raw, body = await self._record(request)
        return await self._answer_completions(request, raw, body)

    async def _answer_completions(self, request: web.Request, raw: bytes, body: Any) -> web.StreamResponse:
        from spanreel import _fakellm_apis as apis

        if not isinstance(body, dict):
            return _openai_error(400, _not_json(raw), "invalid_request_error", None)
        if "prompt" not in body:
            return _openai_error(400, "Missing required parameter: 'prompt'.", "invalid_request_error",
                                 "missing_required_parameter", "prompt")  # fmt: skip
        forced = _forced_status(body.get("model"))
        if forced:
            return _openai_forced(forced)
        completion = _complete(apis.completions_to_chat(body))
        if not body.get("stream"):
            return web.json_response(apis.render_text_completion(completion))
        chunks = (_sse_data(c) for c in apis.text_completion_chunks(completion, _include_usage(body)))
        return await self._stream(request, [*chunks, b"data: [DONE]\n\n"])

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        raw, body = await self._record(request)
        return self._answer_embeddings(raw, body)

    def _answer_embeddings(self, raw: bytes, body: Any) -> web.StreamResponse:
        from spanreel import _fakellm_apis as apis

        if not isinstance(body, dict):
            return _openai_error(400, _not_json(raw), "invalid_request_error", None)
        forced = _forced_status(body.get("model"))
        if forced:
            return _openai_forced(forced)
        result = apis.render_embeddings(body)
        if result is None:
            return _openai_error(400, "'input' must be a non-empty string or array.", "invalid_request_error",
                                 "invalid_value", "input")  # fmt: skip
        return web.json_response(result)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        """Anthropic Messages."""
        from spanreel import _fakellm_apis as apis

        raw, body = await self._record(request)
        if not isinstance(body, dict):
            return web.json_response(
                apis.anthropic_error(_not_json(raw), "invalid_request_error"), status=400
            )
        for field_name in ("model", "max_tokens", "messages"):
            if field_name not in body:
                return web.json_response(
                    apis.anthropic_error(f"{field_name}: Field required", "invalid_request_error"), status=400
                )
        if not isinstance(body["messages"], list) or not body["messages"]:
            return web.json_response(
                apis.anthropic_error("messages: at least one message is required", "invalid_request_error"),
                status=400,
            )
        forced = _forced_status(body.get("model"))
        if forced:
            kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(forced, "api_error")
            kind = "invalid_request_error" if forced < 500 and forced != 429 else kind
            message = f"Forced error {forced} from the fake LLM server."
            return web.json_response(apis.anthropic_error(message, kind), status=forced)
        completion = _complete(apis.anthropic_to_chat(body))
        if not body.get("stream"):
            return web.json_response(apis.render_anthropic(completion))
        events = (_sse_data(payload, name) for name, payload in apis.anthropic_stream(completion))
        return await self._stream(request, events)

    async def _gemini(self, request: web.Request) -> web.StreamResponse:
        """Gemini ``models/{model}:generateContent`` and ``:streamGenerateContent``."""
        from spanreel import _fakellm_apis as apis

        raw, body = await self._record(request)
        model, _, method = request.match_info["target"].partition(":")
        if method not in ("generateContent", "streamGenerateContent") or not model:
            return web.json_response(apis.gemini_error(404, f"Method not found: {method}"), status=404)
        if not isinstance(body, dict):
            return web.json_response(apis.gemini_error(400, _not_json(raw)), status=400)
        if not isinstance(body.get("contents"), list) or not body["contents"]:
            return web.json_response(apis.gemini_error(400, "contents is not specified"), status=400)
        forced = _forced_status(model)
        if forced:
            message = f"Forced error {forced} from the fake LLM server."
            return web.json_response(apis.gemini_error(forced, message), status=forced)
        completion = _complete(apis.gemini_to_chat(model, body))
        if method == "generateContent":
            return web.json_response(apis.render_gemini(completion))
        chunks = list(apis.gemini_stream(completion))
        if request.query.get("alt") == "sse":
            return await self._stream(
                request, (b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in chunks)
            )
        # Without alt=sse Google streams one JSON array, element by element.
        pieces = [("[" if i == 0 else "\n,\r\n") + json.dumps(c) for i, c in enumerate(chunks)]
        return await self._stream(
            request, [p.encode() for p in [*pieces, "]"]], "application/json; charset=UTF-8"
        )


def _not_json(raw: bytes) -> str:
    what = "empty" if not raw else "not a JSON object"
    return f"We could not parse the JSON body of your request ({what})."


def _forced_status(model: Any) -> int | None:
    """The HTTP status a ``fake-error-NNN`` model name forces, else ``None``."""
    forced = _ERROR_MODEL.match(str(model or ""))
    return int(forced.group(1)) if forced else None


def _openai_error(
    status: int, message: str, type_: str, code: str | None, param: str | None = None
) -> web.Response:
    return web.json_response(_error_body(message, type_, code, param), status=status)


def _openai_forced(status: int) -> web.Response:
    type_ = "server_error" if status >= 500 else "invalid_request_error"
    return _openai_error(
        status, f"Forced error {status} from the fake LLM server.", type_, f"fake_error_{status}"
    )


def _include_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


def _sse_data(payload: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + json.dumps(payload).encode() + b"\n\n"


@click.command("fake-llm")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port (0 picks a free one).",
)
@click.option(
    "--chunk-delay",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds to wait before each streamed chunk (to make streaming visible).",
)
def fake_llm_command(host: str, port: int, chunk_delay: float) -> None:
    """Serve the deterministic fake LLM until Ctrl-C: OpenAI Chat Completions, Responses, legacy
    completions and embeddings (base URL http://HOST:PORT/v1), Anthropic Messages (/v1/messages),
    Gemini (/v1beta/models/MODEL:generateContent) and Azure OpenAI deployment paths.

    Same request, same answer; any change to model, messages or parameters changes it.
    A model named fake-error-500 (or any fake-error-NNN) answers with that HTTP error.
    """
    server = FakeLLMServer(host=host, port=port, chunk_delay=chunk_delay)
    try:
        server.start()
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    click.echo(f"fake LLM serving at {server.base_url}")
    click.echo(f"  export OPENAI_BASE_URL={server.base_url} OPENAI_API_KEY=fake")
    click.echo("Press Ctrl-C to stop.")
    stop = threading.Event()
    try:
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        click.echo("stopped")


if __name__ == "__main__":  # python -m spanreel.fakellm: the same as spanreel fake-llm
    fake_llm_command()
