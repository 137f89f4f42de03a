"""Edits applied to replayed request bodies (pure, except for calling a user's hook).

Order, for each call an edit applies to (all calls, or those selected by ``only``):

1. ``model`` — replaces the body's top-level ``"model"``, or, for APIs that name the model in the
   URL path instead (Gemini ``…/models/{model}:generateContent``, Anthropic on Vertex AI
   ``…:rawPredict`` and on Amazon Bedrock ``…/model/{modelId}/invoke``), the path's
   (:func:`url_with_model`). Not on embeddings calls: a chat model there would be refused (change
   an embeddings model with ``params`` — ``--set model=M --only 'embeddings *'``);
2. ``params`` (``--set key=value``) — sets a body key; ``a.b`` walks into (or creates) nested
   objects; values are JSON (``temperature=0`` is the number 0, ``stop=["\\n"]`` a list,
   anything that is not JSON is a string);
3. ``system`` — only on chat-like calls (chat completions, Responses, Anthropic messages,
   Gemini; not embeddings or legacy completions, which have no system prompt): the new system
   prompt: replaces the content of the first ``system`` /
   ``developer`` chat message (or inserts a system message first), or sets Anthropic's
   top-level ``system`` / the Responses API's ``instructions`` / Gemini's
   ``systemInstruction`` when the body has those shapes;
4. ``system_append`` — appended to the existing system prompt: to a string after a blank line;
   to a system prompt made of content blocks or parts (Anthropic's ``system`` list, a chat
   message's list of parts, Gemini's ``parts``) as a new text block, the others kept as they are
   (``cache_control`` included); it becomes the system prompt when there is none;
5. ``hook`` — a callable that receives the body (a ``dict``) and returns the body to send (or
   ``None`` after changing it in place), like Helicone's ``modifyRequestBody``.

Which calls are which: the recorded ``gen_ai.operation.name`` (``chat``, ``generate_content``,
``text_completion``, ``embeddings``), else the one the request URL's API implies
(:func:`call_operation`); a call of unknown operation gets every edit (the body's shape decides).
:func:`edit_warnings` says when an edit changes no call.

``only``: glob patterns (:mod:`fnmatch`, case-sensitive; ``*`` also matches ``/``); an edit
applies to a call when any pattern matches its span name (``chat gpt-4o-mini``), its session
path as recorded by ``spanreel.session`` (the ``spanreel.session.path`` attribute, e.g.
``/debate/round-2``), or its tree path — the span names from its trace's root down to the call,
joined by ``/`` (``debate/judge/chat gpt-4o-mini``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from spanreel.instrumentation._anthropic import BEDROCK_MESSAGES, MESSAGES
from spanreel.instrumentation._apis import route
from spanreel.instrumentation._gemini import GENERATE_CONTENT
from spanreel.instrumentation._openai import CHAT
from spanreel.instrumentation._openai_misc import COMPLETIONS, EMBEDDINGS
from spanreel.instrumentation._openai_responses import RESPONSES

__all__ = [
    "EditError",
    "ReplayEdits",
    "RequestHook",
    "call_operation",
    "edit_body",
    "edit_warnings",
    "model_in_path",
    "parse_set",
    "url_with_model",
]

#: ``--hook``: receives the request body, returns the body to send (``None``: edited in place).
RequestHook = Callable[[dict[str, Any]], "dict[str, Any] | None"]

_ANTHROPIC = "anthropic"

_CHAT, _GENERATE_CONTENT, _TEXT_COMPLETION, _EMBEDDINGS = (
    "chat",
    "generate_content",
    "text_completion",
    "embeddings",
)
#: Operations whose requests have a system prompt (what ``system`` / ``system_append`` edit).
SYSTEM_PROMPT_OPERATIONS = frozenset({_CHAT, _GENERATE_CONTENT})
#: ``gen_ai.operation.name`` of each API's requests (for calls recorded without one).
_API_OPERATIONS = {
    CHAT.name: _CHAT,
    RESPONSES.name: _CHAT,
    MESSAGES.name: _CHAT,
    BEDROCK_MESSAGES.name: _CHAT,
    GENERATE_CONTENT.name: _GENERATE_CONTENT,
    COMPLETIONS.name: _TEXT_COMPLETION,
    EMBEDDINGS.name: _EMBEDDINGS,
}


#: APIs whose URL path names the model (the body has none; Azure's deployment is not one).
_MODEL_IN_PATH = frozenset({GENERATE_CONTENT.name, MESSAGES.name, BEDROCK_MESSAGES.name})


def _path_model(path: str) -> str | None:
    found = route(path)
    return found.path_model if found is not None and found.api.name in _MODEL_IN_PATH else None


def call_operation(operation: str | None, url: str | None = None) -> str | None:
    """A call's operation for the edits: ``operation`` (its recorded ``gen_ai.operation.name``)
    when set, else the one the API of ``url``'s path implies (``…/embeddings`` → ``embeddings``,
    ``…/completions`` → ``text_completion``, chat completions / Responses / Anthropic messages →
    ``chat``, Gemini → ``generate_content``), else ``None`` (unknown)."""
    if operation:
        return operation
    found = route(urlsplit(url).path) if url else None
    return _API_OPERATIONS.get(found.api.name) if found is not None else None


def model_in_path(url: str) -> bool:
    """Whether ``url``'s path names the model (see :func:`url_with_model`)."""
    return bool(_path_model(urlsplit(url).path))


def url_with_model(url: str, model: str) -> str:
    """``url`` with the model its path names replaced by ``model`` (URL-quoted), for Gemini
    (``…/models/{model}:generateContent``), Anthropic on Vertex AI (``…/models/{model}:rawPredict``)
    and on Amazon Bedrock (``…/model/{modelId}/invoke``); any other URL unchanged."""
    parts = urlsplit(url)
    old = _path_model(parts.path)
    if not old:
        return url
    at = parts.path.rfind("/" + old) + 1
    path = parts.path[:at] + quote(model, safe=":@") + parts.path[at + len(old) :]
    return urlunsplit(parts._replace(path=path))


class EditError(ValueError):
    """An edit cannot be applied to a recorded request body (unknown body shape, bad hook result)."""


def parse_set(text: str) -> tuple[str, Any]:
    """``"key=value"`` → ``(key, value)``; value parsed as JSON, else kept as a string.

    Raises :class:`ValueError` when there is no ``=`` or the key is empty.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ValueError(f"expected KEY=VALUE (e.g. temperature=0), got {text!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


@dataclass(frozen=True, slots=True)
class ReplayEdits:
    """What to change in replayed requests (semantics and order in the module docstring).

    ``model``, ``system``, ``system_append``: text or ``None``. ``params``: ``(key, JSON value)``
    pairs applied in order. ``only``: glob patterns selecting the calls edited (empty: all).
    ``hook``: a :data:`RequestHook`; ``hook_name`` how to show it (``module:function``).
    """

    model: str | None = None
    system: str | None = None
    system_append: str | None = None
    params: tuple[tuple[str, Any], ...] = ()
    only: tuple[str, ...] = ()
    hook: RequestHook | None = None
    hook_name: str | None = None

    @property
    def empty(self) -> bool:
        """No edit at all (``only`` alone changes nothing)."""
        return (
            self.model is None
            and self.system is None
            and self.system_append is None
            and not self.params
            and self.hook is None
        )

    def for_operation(self, operation: str | None) -> ReplayEdits:
        """The edits that fit a call of ``operation`` (:func:`call_operation`; ``None``: unknown,
        all fit): ``system`` / ``system_append`` only on ``chat`` and ``generate_content`` calls,
        ``model`` not on ``embeddings`` calls; ``params`` and ``hook`` on every call."""
        if operation is None:
            return self
        no_system = operation not in SYSTEM_PROMPT_OPERATIONS
        return replace(
            self,
            model=None if operation == _EMBEDDINGS else self.model,
            system=None if no_system else self.system,
            system_append=None if no_system else self.system_append,
        )

    def applies_to(self, name: str, *paths: str | None) -> bool:
        """Whether the edits apply to a call with span ``name`` and the given paths (its tree path,
        its ``spanreel.session.path``); ``None`` paths are ignored."""
        if not self.only:
            return True
        candidates = [name, *(p for p in paths if p)]
        return any(fnmatchcase(c, p) for p in self.only for c in candidates)

    def describe(self) -> dict[str, Any]:
        """JSON-safe summary for reports."""
        return {
            "model": self.model,
            "system": self.system,
            "system_append": self.system_append,
            "set": {k: v for k, v in self.params},
            "only": list(self.only),
            "hook": self.hook_name,
        }


def _looks_anthropic(body: Mapping[str, Any]) -> bool:
    model = body.get("model")
    return isinstance(model, str) and model.startswith("claude")


def _set_system(body: dict[str, Any], text: str, provider: str | None) -> None:
    if "system" in body or (provider == _ANTHROPIC and "messages" in body):
        body["system"] = text  # Anthropic Messages API: the system prompt is top-level
        return
    messages = body.get("messages")
    if isinstance(messages, list):
        for i, message in enumerate(messages):
            if isinstance(message, Mapping) and message.get("role") in ("system", "developer"):
                messages[i] = {**message, "content": text}
                return
        if _looks_anthropic(body):  # Anthropic body recorded without a provider name
            body["system"] = text
        else:
            messages.insert(0, {"role": "system", "content": text})
        return
    if "input" in body or "instructions" in body:  # OpenAI Responses API
        body["instructions"] = text
        return
    if "contents" in body:  # Gemini generateContent
        body[_gemini_system_key(body)] = {"parts": [{"text": text}]}
        return
    raise EditError("cannot apply the system-prompt edit: the request body has no messages/input/contents")


def _gemini_system_key(body: Mapping[str, Any]) -> str:
    """The key of a Gemini body's system instruction: the REST API takes the proto's JSON name
    ``systemInstruction`` and its field name ``system_instruction`` (a body that has the latter
    keeps it: adding the former beside it would send two)."""
    return "system_instruction" if "system_instruction" in body else "systemInstruction"


def _appended(current: Any, text: str, where: str) -> Any:
    """System content ``current`` with ``text`` appended: a string gets it after a blank line, a
    list of content blocks / parts a new ``{"type": "text"}`` block (the others kept as they are,
    ``cache_control`` included); nothing yet: ``text``."""
    if current is None or current == "" or current == []:
        return text
    if isinstance(current, str):
        return f"{current}\n\n{text}"
    if isinstance(current, list):
        return [*current, {"type": "text", "text": text}]
    raise EditError(f"cannot append to the system prompt: {where} is a {type(current).__name__}")


def _append_system(body: dict[str, Any], text: str, provider: str | None) -> None:
    if "system" in body or (provider == _ANTHROPIC and "messages" in body):
        body["system"] = _appended(body.get("system"), text, "system")
        return
    messages = body.get("messages")
    if isinstance(messages, list):
        for i, message in enumerate(messages):
            if isinstance(message, Mapping) and message.get("role") in ("system", "developer"):
                where = f"the {message.get('role')} message's content"
                messages[i] = {**message, "content": _appended(message.get("content"), text, where)}
                return
    elif "input" in body or "instructions" in body:  # OpenAI Responses API: a string
        current = body.get("instructions")
        if current is not None and not isinstance(current, str):
            raise EditError(f"cannot append to the system prompt: instructions is a {type(current).__name__}")
        body["instructions"] = _appended(current, text, "instructions")
        return
    elif isinstance(body.get(key := _gemini_system_key(body)), Mapping):  # Gemini: a new part
        instruction = body[key]
        parts = instruction.get("parts")
        if parts is not None and not isinstance(parts, list):
            raise EditError(f"cannot append to the system prompt: {key}.parts is not a list")
        body[key] = {**instruction, "parts": [*(parts or []), {"text": text}]}
        return
    _set_system(body, text, provider)  # no system prompt yet: it becomes the system prompt


def _set_path(body: dict[str, Any], key: str, value: Any) -> None:
    target = body
    parts = key.split(".")
    for part in parts[:-1]:
        child = target.get(part)
        if not isinstance(child, dict):
            if child is not None:
                raise EditError(f"cannot set {key}: {part!r} is not an object in the request body")
            child = target[part] = {}
        target = child
    target[parts[-1]] = value


def edit_body(
    body: dict[str, Any],
    edits: ReplayEdits,
    provider: str | None = None,
    *,
    model_in_path: bool = False,
    operation: str | None = None,
) -> dict[str, Any]:
    """Apply ``edits`` to ``body`` (a parsed JSON object, mutated) and return the body to send.

    ``provider``: the recorded ``gen_ai.provider.name`` (picks Anthropic's top-level ``system``).
    ``operation``: the call's operation (:func:`call_operation`): only the edits that fit it are
    applied (:meth:`ReplayEdits.for_operation`).
    ``model_in_path``: the request's URL names the model (:func:`model_in_path`): the ``model``
    edit goes there (:func:`url_with_model`), not into the body.
    Raises :class:`EditError` when an edit does not fit the body or the hook fails / returns a
    non-object; the hook's own exception is chained.
    """
    edits = edits.for_operation(operation)
    if edits.model is not None and not model_in_path:
        body["model"] = edits.model
    for key, value in edits.params:
        _set_path(body, key, value)
    if edits.system is not None:
        _set_system(body, edits.system, provider)
    if edits.system_append is not None:
        _append_system(body, edits.system_append, provider)
    if edits.hook is not None:
        name = edits.hook_name or repr(edits.hook)
        try:
            returned = edits.hook(body)
        except Exception as exc:
            raise EditError(f"hook {name} failed: {type(exc).__name__}: {exc}") from exc
        if returned is not None:
            if not isinstance(returned, dict):
                raise EditError(
                    f"hook {name} returned {type(returned).__name__}, "
                    "expected the request body (a dict) or None"
                )
            body = returned
    return body


def edit_warnings(edits: ReplayEdits, selected: Sequence[str | None]) -> list[str]:
    """What to tell the user about edits that change no call. ``selected``: the operation
    (:func:`call_operation`) of each replayable call that ``edits.only`` selects (all of them
    without ``only``). One line each: ``only`` selected no call; ``system`` / ``system_append``
    or ``model`` fit none of the selected calls (:meth:`ReplayEdits.for_operation`)."""
    if edits.empty:
        return []
    if not selected:
        if not edits.only:
            return []
        patterns = " ".join(repr(p) for p in edits.only)
        return [
            f"--only {patterns} matched no replayable call (by span name, tree path or "
            "spanreel.session.path): nothing was edited"
        ]
    kinds = ", ".join(sorted({op or "unknown" for op in selected}))
    out: list[str] = []
    fitting = [edits.for_operation(op) for op in selected]
    if (edits.system is not None or edits.system_append is not None) and not any(
        e.system is not None or e.system_append is not None for e in fitting
    ):
        out.append(
            "--system/--system-append changed no call: a system prompt is edited on chat calls "
            f"(chat completions, Responses, Anthropic messages, Gemini) only, and the calls are {kinds}"
        )
    if edits.model is not None and not any(e.model is not None for e in fitting):
        out.append(
            "--model changed no call: it leaves embeddings calls alone "
            "(use --set model=M --only 'embeddings *' to change an embeddings model)"
        )
    return out


def validate_only(patterns: Sequence[str]) -> tuple[str, ...]:
    """Strip and de-duplicate ``--only`` patterns; raises :class:`ValueError` for an empty one."""
    out: list[str] = []
    for p in patterns:
        if not p.strip():
            raise ValueError("--only needs a span name glob or a session path")
        if p.strip() not in out:
            out.append(p.strip())
    return tuple(out)
