"""What captured content may look like when it leaves the process: inline blobs replaced by a
placeholder, redaction, and a size cap per attribute (pure, no OpenTelemetry).

Settings (read by :meth:`ContentPolicy.from_env`; ``Instrumentor().instrument(...)`` keyword
arguments override them):

- ``SPANREEL_CAPTURE_MAX_BYTES`` — cap on the UTF-8 size of each captured content attribute
  (``gen_ai.input.messages``, ``gen_ai.output.messages``, ``gen_ai.system_instructions``,
  ``gen_ai.tool.definitions``, ``spanreel.request.body``); default 1 MiB (1048576), ``0`` = no
  cap. A longer value is cut at a character boundary and ends with the marker
  ``…[spanreel: truncated, N bytes]`` (N = the full size); the span lists the attributes cut in
  ``spanreel.content.truncated``. A cut JSON value is no longer valid JSON.
- ``SPANREEL_CAPTURE_BLOBS`` — ``true`` keeps inline binary data; by default every inline
  base64 blob (a ``data:…;base64,`` URL, or a string of at least 1024 base64 characters) is
  replaced by ``[spanreel: base64 omitted, N bytes]`` (N = decoded size, with the media type when
  known).
- ``SPANREEL_REDACT`` — built-in redaction patterns, comma-separated: ``email``, ``phone``,
  ``card`` (13–19 digits passing the Luhn check), ``api_key`` (``sk-…``, ``sk-ant-…``,
  ``AIza…``, ``ghp_…``, ``github_pat_…``, ``AKIA…``, ``xox?-…``, ``Bearer …`` in any case), or
  ``all``. A match becomes ``[REDACTED:<pattern>]``. Off by default.
- ``SPANREEL_REDACT_HOOK`` — ``module:function`` of a user function ``str -> str`` applied to
  every captured string (after the built-in patterns); ``instrument(redact=fn)`` does the same
  in code.

Blob replacement and redaction walk the parsed request/response (every string value, never
keys), so the JSON stays valid; when they change the request, ``spanreel.request.body`` holds the
changed JSON and ``spanreel.request.body_modified`` is ``true`` (the call is then not replayed
byte for byte).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import re
import sys
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from spanreel._env import env_flag

from ._common import dumps, loads, map_list

MAX_BYTES_ENV = "SPANREEL_CAPTURE_MAX_BYTES"
BLOBS_ENV = "SPANREEL_CAPTURE_BLOBS"
REDACT_ENV = "SPANREEL_REDACT"
REDACT_HOOK_ENV = "SPANREEL_REDACT_HOOK"

DEFAULT_MAX_BYTES = 1024 * 1024
#: Strings shorter than this are never blobs (so small bodies skip the walk entirely).
BLOB_MIN_CHARS = 1024
TRUNCATION_MARKER = "…[spanreel: truncated, {total} bytes]"
BLOB_PLACEHOLDER = "[spanreel: {what} omitted, {size} bytes]"

Redactor = Callable[[str], str]

_BASE64 = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
#: A run of BLOB_MIN_CHARS base64 characters (backslash included: JSON may escape ``/``) that
#: starts a run, so each run is scanned once; ``base64,`` marks a data URL (``;`` may be escaped).
_RUN = r"(?<![A-Za-z0-9+/_=\\-])[A-Za-z0-9+/_=\\-]{" + str(BLOB_MIN_CHARS) + "}"
_BLOB_RUN = re.compile(_RUN)
_BLOB_RUN_BYTES = re.compile(_RUN.encode())
#: (The scheme and ``;base64`` in any case: RFC 3986 and RFC 2397 make them case-insensitive.)
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?(?:;[\w-]+=[^;,]*)*;base64,", re.ASCII | re.IGNORECASE)


#: Integers with fewer digits are not redacted (the shortest card number has 12 digits).
REDACT_MIN_DIGITS = 12
_REDACT_MIN_INT = 10 ** (REDACT_MIN_DIGITS - 1)


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_NON_DIGIT = re.compile(r"\D")


def _redact_cards(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        digits = _NON_DIGIT.sub("", m.group(0))
        return "[REDACTED:card]" if 13 <= len(digits) <= 19 and _luhn(digits) else m.group(0)

    return _CARD.sub(repl, text)


_EMAIL = re.compile(r"[\w.%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
#: Phone number candidates (checked by :func:`_redact_phones`), not inside a longer run of digits
#: or words:
#: - international: ``+`` country code then digit groups with single separators (``+33 1 23 45 67
#:   89``, ``+81 3-1234-5678``, ``+1 (415) 555-2671``) or none (E.164 ``+14155552671``);
#: - North American: ``(415) 555-2671``, ``415-555-2671``, ``1-800-555-0199``;
#: - national with a trunk ``0``: ``020 7946 0958``, ``07700 900123``, ``01 23 45 67 89``.
#: Thousands-grouped numbers (``12 500 000``, ``123 456 789``), years (``2019-2020``) and card-like
#: groups of four are not phone numbers.
_PHONE = re.compile(
    r"(?<![\w+.-])(?<!\d[ .,])(?:"
    r"\+\d{1,3}(?:[ .-]\d{1,8}|[ .-]?\(\d{1,5}\)\d{0,4}){1,6}"  # a separator or "(" per group:
    r"|\+\d{8,15}"  # one way to split the digits (no backtracking blow-up), or E.164 without any
    r"|(?:1[ .-])?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}"
    r"|0[1-9]\d{0,3}([ .-])\d{2,6}(?:\1\d{2,6}){0,3}"  # trunk 0, one separator throughout
    r")(?![\w]|[.,-]\d| \d)"
)
_DIGIT = re.compile(r"\d")
_GROUP = re.compile(r"\d+")


def _redact_phones(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        found = m.group(0)
        digits = len(_DIGIT.findall(found))
        low = 8 if found.startswith("+") else 9  # E.164: 8-15 digits with the country code
        groups = _GROUP.findall(found)
        if len(groups) > 2 and all(len(g) == 4 for g in groups):
            return found  # groups of four: an id or a card number, not a phone number
        return "[REDACTED:phone]" if low <= digits <= 15 else found

    return _PHONE.sub(repl, text)


_API_KEY = re.compile(
    r"\b(?:sk-ant-[\w-]{16,}|(?:sk|pk|rk)-(?:proj-)?[\w-]{16,}|AIza[\w-]{30,}|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|AKIA[0-9A-Z]{16}|xox[abprs]-[\w-]{10,}|gsk_[A-Za-z0-9]{20,}|xai-[A-Za-z0-9]{20,}"
    r"|hf_[A-Za-z0-9]{20,}|(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,})"
    r"|\bgithub_pat_\w{22,}"
    r"|\b(?i:bearer)\s+[\w.~+/-]{16,}=*"
)


def _sub(pattern: re.Pattern[str], name: str) -> Redactor:
    replacement = f"[REDACTED:{name}]"

    def redact(text: str) -> str:
        return pattern.sub(replacement, text)

    return redact


#: Built-in redaction patterns by name (``SPANREEL_REDACT``).
PATTERNS: dict[str, Redactor] = {
    "email": _sub(_EMAIL, "email"),
    "phone": _redact_phones,
    "card": _redact_cards,
    "api_key": _sub(_API_KEY, "api_key"),
}


def builtin_redactor(names: str) -> Redactor | None:
    """The redactor for a ``SPANREEL_REDACT`` value (``"email,card"``, ``"all"``); ``None`` for
    an empty value. Raises ``ValueError`` naming an unknown pattern."""
    wanted = [n.strip().lower() for n in names.split(",") if n.strip()]
    if not wanted:
        return None
    if "all" in wanted:
        wanted = list(PATTERNS)
    unknown = [n for n in wanted if n not in PATTERNS]
    if unknown:
        raise ValueError(
            f"{REDACT_ENV}: unknown pattern(s) {', '.join(unknown)} (known: {', '.join(PATTERNS)}, all)"
        )
    # api_key first: a key may contain digit runs that look like phone numbers
    ordered = [PATTERNS[n] for n in sorted(set(wanted), key=lambda n: (n != "api_key", n))]

    def redact(text: str) -> str:
        for fn in ordered:
            text = fn(text)
        return text

    return redact


def main_path_entry() -> str | None:
    """The folder Python puts first on ``sys.path`` for the program it starts — the script's
    folder (symbolic links resolved), or the current directory for ``-m``, ``-c`` and the
    interactive prompt; ``None`` under ``-P`` (safe path). Python adds it only after ``site`` has
    run the ``.pth`` files, so spanreel's start-up hook must look there itself."""
    if sys.flags.safe_path:
        return None
    argv0 = sys.argv[0] if getattr(sys, "argv", None) else ""
    if argv0 in ("", "-c", "-m"):
        return os.getcwd()
    if os.path.isdir(argv0) or zipfile.is_zipfile(argv0):
        return argv0  # a folder or zip archive with a __main__.py
    return os.path.dirname(os.path.realpath(argv0))


def _import_hook_module(module_name: str) -> Any:
    """Import ``module_name``; when it is not found, look in :func:`main_path_entry` too (at
    interpreter start-up a hook module beside the app is not on ``sys.path`` yet)."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        top = module_name.partition(".")[0]
        folder = main_path_entry()
        if exc.name != top or folder is None or folder in sys.path:
            raise
    sys.path.insert(0, folder)
    try:
        return importlib.import_module(module_name)
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)


def load_hook(spec: str) -> Redactor:
    """Import ``module:function`` (``SPANREEL_REDACT_HOOK``). Raises ``ValueError`` when the
    spec is malformed, names nothing (``AttributeError``), or the object is not callable, or when
    importing the module raised anything other than ``ImportError``; ``ImportError`` when the
    module is missing."""
    module_name, sep, attr = spec.strip().partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{REDACT_HOOK_ENV} must be 'module:function', got {spec!r}")
    try:
        obj: Any = _import_hook_module(module_name)
    except ImportError as exc:
        raise ImportError(f"{REDACT_HOOK_ENV}: cannot import {module_name}: {exc}", name=exc.name) from exc
    except Exception as exc:  # the hook module's own code failed while importing
        raise ValueError(f"{REDACT_HOOK_ENV}: importing {module_name} failed: {exc!r}") from exc
    for name in attr.split("."):
        try:
            obj = getattr(obj, name)
        except AttributeError:
            raise ValueError(f"{REDACT_HOOK_ENV}: {module_name} has no {attr}") from None
    if not callable(obj):
        raise ValueError(f"{REDACT_HOOK_ENV}: {spec} is not callable")
    fn: Redactor = obj
    return fn


#: What a string becomes when the user's redaction function fails on it (raises, or returns
#: something other than a string): the text cannot be shown to be clean, so none of it is kept.
REDACTION_FAILED = "[REDACTED:redaction function failed]"
_failed_redactors: set[str] = set()


def guarded(fn: Redactor, name: str) -> Redactor:
    """``fn`` made safe to run on captured text: when it raises or returns a non-string, the text
    is replaced by :data:`REDACTION_FAILED` (fail closed: nothing unredacted is recorded, and the
    call is still recorded) and a warning names ``name`` once."""

    def redact(text: str) -> str:
        try:
            out = fn(text)
        except Exception as exc:
            problem = f"raised {type(exc).__name__}: {exc}"
        else:
            if isinstance(out, str):
                return out
            problem = f"returned {type(out).__name__}, not str"
        if name not in _failed_redactors:
            _failed_redactors.add(name)
            logging.getLogger("spanreel.instrumentation").warning(
                "spanreel: the redaction function %s %s; the text it was given is recorded as %s",
                name, problem, REDACTION_FAILED,
            )  # fmt: skip
        return REDACTION_FAILED

    return redact


def chain(*redactors: Redactor | None) -> Redactor | None:
    """One redactor applying each given one in order (``None`` entries skipped)."""
    present = [r for r in redactors if r is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]

    def redact(text: str) -> str:
        for fn in present:
            text = fn(text)
        return text

    return redact


def blob_size(b64_len: int, tail: str) -> int:
    """Decoded size in bytes of ``b64_len`` base64 characters whose last ones are ``tail``."""
    return b64_len * 3 // 4 - (len(tail) - len(tail.rstrip("=")))


@dataclass(frozen=True, slots=True)
class ContentPolicy:
    """How captured content is shaped: ``max_bytes`` per attribute (0 = no cap), whether inline
    blobs are kept, and the redactor (``None`` = none)."""

    max_bytes: int = DEFAULT_MAX_BYTES
    keep_blobs: bool = False
    redactor: Redactor | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ContentPolicy:
        """The policy the environment asks for (see the module docstring). Raises
        ``ValueError`` for a malformed setting, ``ImportError`` for a missing hook module."""
        env = os.environ if environ is None else environ
        raw = env.get(MAX_BYTES_ENV, "").strip()
        try:
            max_bytes = int(raw) if raw else DEFAULT_MAX_BYTES
        except ValueError:
            raise ValueError(f"{MAX_BYTES_ENV} must be a whole number of bytes, got {raw!r}") from None
        if max_bytes < 0:
            raise ValueError(f"{MAX_BYTES_ENV} must be ≥ 0, got {max_bytes}")
        hook = env.get(REDACT_HOOK_ENV, "").strip()
        user = guarded(load_hook(hook), f"{REDACT_HOOK_ENV}={hook}") if hook else None
        redactor = chain(builtin_redactor(env.get(REDACT_ENV, "")), user)
        keep = env_flag(BLOBS_ENV, env)
        return cls(max_bytes=max_bytes, keep_blobs=keep, redactor=redactor)

    def needs_scrub(self, document: str | bytes) -> bool:
        """Whether the JSON text ``document`` must be walked by :meth:`scrub` (``False`` means
        :meth:`scrub` would return it unchanged). O(size), in C: with no redactor, only a text
        holding a data URL or a long enough run of base64 characters can hold a blob."""
        if self.redactor is not None:
            return True
        if self.keep_blobs:
            return False
        if isinstance(document, bytes):
            if b"base64," in document or b"BASE64," in document:
                return True
            return len(document) >= BLOB_MIN_CHARS and _BLOB_RUN_BYTES.search(document) is not None
        if "base64," in document or "BASE64," in document:
            return True
        return len(document) >= BLOB_MIN_CHARS and _BLOB_RUN.search(document) is not None

    def scrub_text(self, text: str, media_type: str | None = None) -> str:
        """One string: blob placeholder (unless kept: any ``data:…;base64,`` URL, or a run of at
        least :data:`BLOB_MIN_CHARS` base64 characters, described with ``media_type`` when the
        JSON object holding it names one), then the redactor."""
        if not self.keep_blobs and (len(text) >= BLOB_MIN_CHARS or text[:5].lower() == "data:"):
            placeholder = _blob_placeholder(text, media_type)
            if placeholder is not None:
                return placeholder
        if self.redactor is not None:
            out = self.redactor(text)
            return text if out == text else out  # the same object when unchanged: not "modified"
        return text

    def scrub(self, value: Any) -> Any:
        """``value`` (parsed JSON) with :meth:`scrub_text` applied to every string value, and the
        redactor to every integer of :data:`REDACT_MIN_DIGITS` digits or more (a card number sent
        as a JSON number in tool arguments): one it changes becomes the redacted string.
        Copy-on-write: the very same object comes back when nothing changed."""
        if isinstance(value, str):
            return self.scrub_text(value)
        if type(value) is int:  # not bool
            if self.redactor is None or -_REDACT_MIN_INT < value < _REDACT_MIN_INT:
                return value
            text = str(value)
            out_text = self.redactor(text)
            return value if out_text == text else out_text
        if isinstance(value, dict):
            # Inlined rather than _common.map_dict: this runs on every captured message part and
            # a closure per dict cost ~40% here (measured with timeit on 10 messages).
            out: dict[str, Any] | None = None
            media_type = _media_type(value)
            for key, item in value.items():
                new = self.scrub_text(item, media_type) if isinstance(item, str) else self.scrub(item)
                if new is not item:
                    if out is None:
                        out = dict(value)
                    out[key] = new
            return value if out is None else out
        if isinstance(value, list):
            return map_list(value, self.scrub)
        return value

    def cap(self, text: str) -> str | None:
        """``text`` cut to :attr:`max_bytes` UTF-8 bytes plus the truncation marker, or ``None``
        when it fits (or there is no cap)."""
        limit = self.max_bytes
        if not limit or len(text) * 4 <= limit:
            return None
        data = text.encode("utf-8", errors="surrogatepass")
        if len(data) <= limit:
            return None
        kept = data[:limit].decode("utf-8", errors="ignore")
        return kept + TRUNCATION_MARKER.format(total=len(data))


#: Keys naming a base64 field's media type beside it (Anthropic ``source``, Gemini ``inlineData``).
#: What a request's content quoted in a provider's error text becomes when content is not captured.
CONTENT_OMITTED = "[spanreel: content omitted]"
#: Request members that are settings, not content: their values stay in error text.
_NOT_CONTENT_KEYS = frozenset(
    {"model", "role", "type", "object", "tool_choice", "service_tier", "reasoning_effort"}
)
#: Shorter strings are not masked (a word of the prompt would mask that word everywhere).
_MIN_CONTENT_CHARS = 8


def mask_request_content(text: str, request_body: bytes) -> str:
    """``text`` (a provider's error message) with every string of the JSON ``request_body`` of at
    least 8 characters — the prompt, tool arguments, system instructions, not ``model`` or
    ``role`` — replaced by :data:`CONTENT_OMITTED`, as is or escaped the way JSON and Python
    reprs quote it (a validation error such as vLLM's or LiteLLM's quotes the offending input).
    Used when content capture is off. ``text`` unchanged when the body is not JSON; never raises
    on its input."""
    try:
        body = loads(request_body)
    except ValueError:
        return text
    found: set[str] = set()
    _content_strings(body, found)
    forms = {form for value in found for form in (value, dumps(value)[1:-1], repr(value)[1:-1])}
    for form in sorted(forms, key=len, reverse=True):
        if len(form) >= _MIN_CONTENT_CHARS and form in text:
            text = text.replace(form, CONTENT_OMITTED)
    return text


def _content_strings(value: Any, found: set[str]) -> None:
    if isinstance(value, str):
        if len(value) >= _MIN_CONTENT_CHARS:
            found.add(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in _NOT_CONTENT_KEYS:
                _content_strings(item, found)
    elif isinstance(value, list):
        for item in value:
            _content_strings(item, found)


_MEDIA_TYPE_KEYS = ("media_type", "mimeType", "mime_type")


def _media_type(obj: dict[str, Any]) -> str | None:
    for key in _MEDIA_TYPE_KEYS:
        value = obj.get(key)
        if isinstance(value, str) and value and len(value) < 100:
            return value
    return None


def _blob_placeholder(text: str, media_type: str | None = None) -> str | None:
    head = text[:200]
    if head[:5].lower() == "data:":
        m = _DATA_URL.match(head)
        if m is None:
            return None
        payload_len = len(text) - m.end()
        what = f"{m.group(1)} base64" if m.group(1) else "base64"
        return (
            "data:"
            + (m.group(1) or "")
            + ";base64,"
            + BLOB_PLACEHOLDER.format(what=what, size=blob_size(payload_len, text[-2:]))
        )
    if len(text) < BLOB_MIN_CHARS or " " in head or _BASE64.fullmatch(text) is None:
        return None
    what = f"{media_type} base64" if media_type else "base64"
    return BLOB_PLACEHOLDER.format(what=what, size=blob_size(len(text), text[-2:]))
