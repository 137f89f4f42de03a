"""Privacy: credentials never exported (canary), content capture switch, redaction (built-in
patterns and a user hook) applied before anything leaves the process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from conftest import instrument_in_memory
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from test_instr_faults import Canned

import spanreel
from spanreel._attributes import SPANREEL_REQUEST_BODY, SPANREEL_REQUEST_BODY_MODIFIED, SPANREEL_REQUEST_URL
from spanreel.fakellm import FakeLLMServer
from spanreel.instrumentation import Instrumentor
from spanreel.instrumentation._capture import content_capture_enabled
from spanreel.instrumentation._content import ContentPolicy, builtin_redactor
from spanreel.instrumentation._http import redact_url

CANARY = "sk-CANARY-7f3e9a1c5b2d4e6f8a0b"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


@pytest.fixture
def uninstrument_after() -> Iterator[None]:
    yield
    Instrumentor().uninstrument()


def _exported_text(span: Any) -> str:
    """What a span carries besides its ids and timestamps: name, status, attributes, events and
    their attributes, as one string to search for leaked content."""
    parts = [span.name, str(span.status.description), json.dumps(dict(span.attributes or {}), default=str)]
    for event in span.events:
        parts += [event.name, json.dumps(dict(event.attributes or {}), default=str)]
    return "\n".join(parts)


def test_canary_key_never_exported(server: FakeLLMServer, uninstrument_after: None) -> None:
    tp, exporter = instrument_in_memory(capture_content=True)
    port = server.port
    openai.OpenAI(base_url=server.base_url, api_key=CANARY, max_retries=0).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    anthropic.Anthropic(
        base_url=f"http://127.0.0.1:{port}",
        api_key=CANARY,
        max_retries=0,
        open_telemetry={"tracer_provider": tp},
    ).messages.create(model="claude-haiku-4-5", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    openai.AzureOpenAI(
        azure_endpoint=f"http://127.0.0.1:{port}", api_key=CANARY, api_version="2024-10-21", max_retries=0
    ).chat.completions.create(model="dep", messages=[{"role": "user", "content": "hi"}])
    openai.AzureOpenAI(  # through Azure API Management, its key in the query string
        azure_endpoint=f"http://127.0.0.1:{port}",
        api_key="unused",
        api_version="2024-10-21",
        default_query={"subscription-key": CANARY},
        max_retries=0,
    ).chat.completions.create(model="dep", messages=[{"role": "user", "content": "hi"}])
    gemini = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    r = httpx.post(
        f"http://127.0.0.1:{port}/v1beta/models/gemini-2.0-flash:generateContent?key={CANARY}", json=gemini
    )
    assert r.status_code == 200
    for query in (f"alt=json;key={CANARY}", f"key%3D{CANARY}"):  # spellings some servers accept
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1beta/models/gemini-2.0-flash:generateContent?{query}", json=gemini
        )
        assert r.status_code == 200
    r = httpx.post(  # an error response too
        f"http://127.0.0.1:{port}/v1/chat/completions?api-key={CANARY}",
        json={"model": "fake-error-401", "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-api-key": CANARY, "api-key": CANARY},
    )
    assert r.status_code == 401
    sent = [req for req in server.requests if CANARY in json.dumps(req.headers) or CANARY in req.path]
    assert sent  # the servers did get the key...
    spans = exporter.get_finished_spans()
    assert (
        len([s for s in spans if s.instrumentation_scope and s.instrumentation_scope.name == "spanreel"]) == 7
    )
    wire = encode_spans(spans).SerializeToString()  # ...but no exported byte carries it
    assert CANARY.encode() not in wire
    assert CANARY not in "".join(s.to_json() for s in spans)
    tp.shutdown()


def test_credentials_in_the_request_body_are_masked(server: FakeLLMServer, uninstrument_after: None) -> None:
    """A remote MCP server's token (OpenAI Responses ``tools[].authorization`` and ``headers``,
    Anthropic's ``mcp_servers[].authorization_token``) and Azure "On Your Data"'s search key travel
    in the JSON body: they were recorded as is in ``spanreel.request.body`` and
    ``gen_ai.tool.definitions``, by default. What is not a credential stays (a thinking block's
    ``signature``, a tool's JSON Schema naming a ``password`` parameter)."""
    tp, exporter = instrument_in_memory(capture_content=True)
    port = server.port
    mcp = {"type": "mcp", "server_label": "docs", "server_url": "https://mcp.example/sse",
           "authorization": CANARY + "-mcp", "headers": {"X-Api-Key": CANARY + "-hdr", "X-Source": "app"},
           "require_approval": "never"}  # fmt: skip
    schema = {"type": "object", "properties": {"password": {"type": "string"}}}
    password_tool = {"type": "function", "name": "login", "parameters": schema}
    openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0).responses.create(
        model="gpt-4o-mini",
        input="hi",
        tools=[mcp, password_tool],  # type: ignore[list-item]
    )
    anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key="k", max_retries=0).messages.create(
        model="claude-haiku-4-5",
        max_tokens=20,
        messages=[
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": [{"type": "thinking", "thinking": "t", "signature": "SIG-kept"}],
            },
            {"role": "user", "content": "again"},
        ],
        extra_body={
            "mcp_servers": [
                {
                    "type": "url",
                    "url": "https://mcp.example",
                    "name": "m",
                    "authorization_token": CANARY + "-ant",
                }
            ]
        },
    )
    openai.AzureOpenAI(
        azure_endpoint=f"http://127.0.0.1:{port}", api_key="k", api_version="2024-10-21", max_retries=0
    ).chat.completions.create(
        model="dep",
        messages=[{"role": "user", "content": "hi"}],
        extra_body={
            "data_sources": [
                {
                    "type": "azure_search",
                    "parameters": {
                        "endpoint": "https://search.example",
                        "index_name": "docs",
                        "authentication": {"type": "api_key", "key": CANARY + "-az"},
                    },
                }
            ]
        },
    )
    spans = [s for s in exporter.get_finished_spans() if s.instrumentation_scope.name == "spanreel"]  # type: ignore[union-attr]
    assert len(spans) == 3
    assert CANARY.encode() not in encode_spans(spans).SerializeToString()
    bodies = [json.loads(str((s.attributes or {})[SPANREEL_REQUEST_BODY])) for s in spans]
    assert all((s.attributes or {}).get(SPANREEL_REQUEST_BODY_MODIFIED) is True for s in spans)
    assert bodies[0]["tools"][0]["authorization"] == "[REDACTED:credential]"
    assert bodies[0]["tools"][0]["headers"] == {"X-Api-Key": "[REDACTED:credential]", "X-Source": "app"}
    assert bodies[0]["tools"][1] == password_tool
    assert bodies[1]["messages"][1]["content"][0]["signature"] == "SIG-kept"
    assert bodies[2]["data_sources"][0]["parameters"]["authentication"]["type"] == "api_key"
    tp.shutdown()


def test_content_capture_env_no_content(
    server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch, uninstrument_after: None
) -> None:
    for value in ("NO_CONTENT", "false"):
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", value)
        tp, exporter = instrument_in_memory()
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0).responses.create(
            model="gpt-4o-mini", input="secret prompt", instructions="secret instructions"
        )
        (span,) = exporter.get_finished_spans()[-1:]
        a = span.attributes or {}
        assert a[ga.GEN_AI_USAGE_OUTPUT_TOKENS] > 0  # type: ignore[operator]
        assert "secret" not in json.dumps(dict(a))
        Instrumentor().uninstrument()
        tp.shutdown()


def test_builtin_patterns_and_user_hook(
    server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch, uninstrument_after: None
) -> None:
    monkeypatch.setenv("SPANREEL_REDACT", "email,phone,card,api_key")
    tp, exporter = instrument_in_memory(capture_content=True, redact=lambda s: s.replace("Paris", "[CITY]"))
    text = (
        "Mail ada@example.org or call +44 20 7946 0958 from Paris; card 4111 1111 1111 1111, "
        "order 1234 5678 9012 3456, key sk-proj-abcdefghijklmnop1234."
    )
    r = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
    )
    (span,) = [s for s in exporter.get_finished_spans() if s.instrumentation_scope.name == "spanreel"]  # type: ignore[union-attr]
    a = span.attributes or {}
    for key in (ga.GEN_AI_INPUT_MESSAGES, SPANREEL_REQUEST_BODY):
        value = str(a[key])
        for secret in ("ada@example.org", "7946 0958", "4111 1111", "sk-proj-", "Paris"):
            assert secret not in value, (key, secret)
        for marker in (
            "[REDACTED:email]",
            "[REDACTED:phone]",
            "[REDACTED:card]",
            "[REDACTED:api_key]",
            "[CITY]",
        ):
            assert marker in value, (key, marker)
        assert "1234 5678 9012 3456" in value  # fails the Luhn check: not a card
    assert a[SPANREEL_REQUEST_BODY_MODIFIED] is True
    assert json.loads(str(a[SPANREEL_REQUEST_BODY]))["model"] == "gpt-4o-mini"  # still valid JSON
    assert server.requests[-1].json["messages"][0]["content"] == text  # the app's request is untouched
    assert r.choices[0].message.content  # the output is redacted too (by the hook: no city in it)
    assert "Paris" not in str(a[ga.GEN_AI_OUTPUT_MESSAGES])
    tp.shutdown()


def test_a_card_number_sent_as_a_json_number_is_redacted(
    server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch, uninstrument_after: None
) -> None:
    """A tool's input holds its arguments as a JSON object: a card number there is a JSON
    number, not a string, and went out unredacted. Integers of 12 digits or more pass through
    the redactor now; shorter ones (quantities, years) stay numbers."""
    monkeypatch.setenv("SPANREEL_REDACT", "card")
    tp, exporter = instrument_in_memory(capture_content=True)
    tool_input = {"card": 4111111111111111, "order": 123456789012, "quantity": 3}
    client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{server.port}", api_key="k", max_retries=0)
    client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=50,
        messages=[
            {"role": "user", "content": "Pay the order"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "pay", "input": tool_input}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "paid"}]},
        ],
    )
    (span,) = [s for s in exporter.get_finished_spans() if s.instrumentation_scope.name == "spanreel"]  # type: ignore[union-attr]
    a = span.attributes or {}
    for key in (ga.GEN_AI_INPUT_MESSAGES, SPANREEL_REQUEST_BODY):
        value = str(a[key])
        assert "4111111111111111" not in value and "[REDACTED:card]" in value, key
        assert "123456789012" in value and '"quantity":3' in value, key  # not Luhn-valid; short
    assert server.requests[-1].json["messages"][1]["content"][0]["input"] == tool_input  # untouched
    tp.shutdown()


@pytest.mark.parametrize("hook", ["raises", "returns None", "returns an equal copy"])
def test_a_redaction_function_that_fails_records_nothing_unredacted(
    server: FakeLLMServer, uninstrument_after: None, hook: str
) -> None:
    """A user redaction function that raised (or returned a non-string) lost the GenAI span and
    left Gemini's ``?key=`` in the HTTP span's URL (the credential clean-up was thrown away with
    the failed redaction). Now the call is recorded, what the function failed on is recorded as
    a marker, and the key never appears. A function that returns an equal new string changes
    nothing (the body was flagged modified, so no call could be replayed verbatim)."""

    def redact(text: str) -> Any:
        if hook == "raises":
            raise RuntimeError("bug in the hook")
        return None if hook == "returns None" else "".join(text)

    tp, exporter = instrument_in_memory(capture_content=True, redact=redact)
    key = "AIzaCANARY0123456789abcdefghijklmnopq"
    base = server.base_url.removesuffix("/v1")
    response = httpx.post(
        f"{base}/v1beta/models/gemini-2.0-flash:generateContent?key={key}",
        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
    )
    assert response.status_code == 200
    spans = exporter.get_finished_spans()
    (genai,) = [s for s in spans if s.instrumentation_scope and s.instrumentation_scope.name == "spanreel"]
    assert key.encode() not in encode_spans(spans).SerializeToString()
    a = genai.attributes or {}
    if hook == "returns an equal copy":
        assert SPANREEL_REQUEST_BODY_MODIFIED not in a and '"hi"' in str(a[SPANREEL_REQUEST_BODY])
    else:
        assert "[REDACTED:redaction function failed]" in str(a[ga.GEN_AI_INPUT_MESSAGES])
        assert '"hi"' not in str(a[SPANREEL_REQUEST_BODY])
    tp.shutdown()


@pytest.mark.parametrize(
    ("names", "text", "expected"),
    [
        ("email", "write to a.b+c@mail.co.uk now", "write to [REDACTED:email] now"),
        ("card", "pay 5555-5555-5555-4444 or 1234-5678", "pay [REDACTED:card] or 1234-5678"),
        ("phone", "ring (555) 123-4567 today", "ring [REDACTED:phone] today"),
        ("phone", "or +14155552671, order 4155552671", "or [REDACTED:phone], order 4155552671"),
        # international and national formats (were missed), ordinary numbers (were redacted)
        ("phone", "+33 1 23 45 67 89 / +81 3-1234-5678 / +7 495 123-45-67 / 07700 900123 / 1-800-555-0199",
         " / ".join(["[REDACTED:phone]"] * 5)),
        ("phone", "12 500 000 EUR, 12.500.000 pesos, 123 456 789 people, 2019-2020-2021, 1234 5678 9012",
         "12 500 000 EUR, 12.500.000 pesos, 123 456 789 people, 2019-2020-2021, 1234 5678 9012"),
        ("phone", "on 06.05.2024 10.30, id 0123 4567 8901, 012.345.678,90, 0001-0002-0003, 00001 00002",
         "on 06.05.2024 10.30, id 0123 4567 8901, 012.345.678,90, 0001-0002-0003, 00001 00002"),
        ("phone", "+49 30 12345678 or +44 (0)20 7946 0958", "[REDACTED:phone] or [REDACTED:phone]"),
        ("api_key", "github_pat_11ABCDEFG0123456789_abcdefghij and authorization: bearer abcdefghijklmnop12",
         "[REDACTED:api_key] and authorization: [REDACTED:api_key]"),
        ("api_key", "gsk_abcdefghijklmnopqrstuvwx xai-ABCDEFGHIJKLMNOPQRSTUVWX hf_abcdefghijklmnopqrstuvwx",
         "[REDACTED:api_key] [REDACTED:api_key] [REDACTED:api_key]"),
        ("api_key", "stripe sk_live_abcdefghijklmnop1234", "stripe [REDACTED:api_key]"),
        ("api_key", "use Bearer abcdefghijklmnopqrstuvwxyz and AKIAABCDEFGHIJKLMNOP",
         "use [REDACTED:api_key] and [REDACTED:api_key]"),
        ("all", "x@y.io sk-ant-api03-abcdefghijklmnopqrstu", "[REDACTED:email] [REDACTED:api_key]"),
    ],
)  # fmt: skip
def test_builtin_redactor(names: str, text: str, expected: str) -> None:
    redact = builtin_redactor(names)
    assert redact is not None and redact(text) == expected


def test_policy_from_env_errors_and_hook() -> None:
    with pytest.raises(ValueError, match="unknown pattern"):
        ContentPolicy.from_env({"SPANREEL_REDACT": "email,ssn"})
    with pytest.raises(ValueError, match="whole number"):
        ContentPolicy.from_env({"SPANREEL_CAPTURE_MAX_BYTES": "1MB"})
    with pytest.raises(ValueError, match="module:function"):
        ContentPolicy.from_env({"SPANREEL_REDACT_HOOK": "nocolon"})
    policy = ContentPolicy.from_env(
        {"SPANREEL_REDACT_HOOK": "string:capwords", "SPANREEL_CAPTURE_MAX_BYTES": "0"}
    )
    assert policy.redactor is not None and policy.redactor("hello world") == "Hello World"
    assert policy.max_bytes == 0 and policy.cap("x" * 10_000_000) is None
    assert ContentPolicy().scrub({"a": ["short"]}) == {"a": ["short"]}


def test_a_hook_that_cannot_be_loaded_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A misspelt function name (``AttributeError``) or a hook module failing at import raised out
    of ``instrument()``: under opentelemetry-instrument that stops every instrumentor after
    spanreel. Now both are reported on stderr in one line and nothing is instrumented (a hook that
    cannot run must not let content out unredacted)."""
    (tmp_path / "broken_hooks.py").write_text("raise RuntimeError('no config file')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cases = [
        ("string:no_such_function", "has no no_such_function"),
        ("broken_hooks:redact", "importing broken"),
    ]
    for spec, reason in cases:
        with pytest.raises(ValueError, match=reason):
            ContentPolicy.from_env({"SPANREEL_REDACT_HOOK": spec})
        monkeypatch.setenv("SPANREEL_REDACT_HOOK", spec)
        Instrumentor().instrument(tracer_provider=TracerProvider())  # does not raise
        err = capsys.readouterr().err
        assert err.startswith("spanreel: not instrumenting: SPANREEL_REDACT_HOOK") and reason in err
        Instrumentor().uninstrument()


def test_cap_cuts_at_character_boundary() -> None:
    policy = ContentPolicy(max_bytes=10)
    assert policy.cap("ééééé") is None  # exactly 10 bytes
    cut = policy.cap("éééééé")  # 12 bytes
    assert cut == "ééééé…[spanreel: truncated, 12 bytes]"
    assert ContentPolicy(max_bytes=5).cap("ééé") == "éé…[spanreel: truncated, 6 bytes]"


def test_blobs_small_data_urls_and_media_types_beside_the_data() -> None:
    policy = ContentPolicy()
    small = "data:image/png;base64," + "iVBORw0KGgo" + "A" * 799 + "=="  # 812 base64 characters
    assert policy.needs_scrub(json.dumps({"url": small}))
    assert policy.scrub({"url": small}) == {
        "url": "data:image/png;base64,[spanreel: image/png base64 omitted, 607 bytes]"
    }
    # Anthropic (source.media_type) and Gemini (inlineData.mimeType) keep the data beside its type.
    data = "A" * 2000
    anthropic_block = {"type": "base64", "media_type": "image/jpeg", "data": data}
    gemini_part = {"inlineData": {"mimeType": "audio/wav", "data": data}}
    assert policy.scrub(anthropic_block)["data"] == "[spanreel: image/jpeg base64 omitted, 1500 bytes]"
    assert (
        policy.scrub(gemini_part)["inlineData"]["data"] == "[spanreel: audio/wav base64 omitted, 1500 bytes]"
    )
    # Short base64-looking words stay (ids, hashes), and kept blobs are kept.
    assert policy.scrub({"id": "QUJDREVGR0g="}) == {"id": "QUJDREVGR0g="}
    assert ContentPolicy(keep_blobs=True).scrub({"url": small}) == {"url": small}
    # The scheme and ";base64" in any case (RFC 3986, RFC 2397): were kept whole.
    for spelling in ("data:image/png;BASE64,", "DATA:image/png;BASE64,"):
        upper = spelling + "iVBORw0KGgo" + "A" * 799 + "=="
        assert policy.needs_scrub(json.dumps({"url": upper}))
        assert policy.scrub({"url": upper})["url"].endswith("[spanreel: image/png base64 omitted, 607 bytes]")
        long = spelling + "A" * 2000
        assert "AAAA" not in policy.scrub({"url": long})["url"]


@pytest.mark.parametrize("capture", [False, True])
def test_content_off_masks_the_prompt_a_provider_error_quotes(
    uninstrument_after: None, capture: bool
) -> None:
    """With content capture off, a validation error quoting the request (vLLM's and LiteLLM's
    pydantic errors carry the offending ``input``, as a Python repr) put the prompt on the span
    as its status text. Its strings are masked now; the model name stays. With capture on, the
    text is kept (the prompt is on the span anyway)."""
    prompt = 'My diagnosis is "stage 2",\nwhat now?'
    detail = [{"type": "missing", "loc": ["body", "messages", 0], "msg": "Field required",
               "input": {"role": "user", "content": prompt}}]  # fmt: skip
    error = {"object": "error", "message": f"{detail!r} for model gpt-4o-mini", "type": "BadRequestError"}
    canned = Canned()
    try:
        tp, exporter = instrument_in_memory(capture_content=capture)
        canned.set([json.dumps(error).encode()], status=400)
        client = openai.OpenAI(base_url=canned.base_url, api_key="k", max_retries=0)
        with pytest.raises(openai.BadRequestError) as raised:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}]
            )
        assert "stage 2" in str(raised.value)  # the app's exception is untouched
        (span,) = [s for s in exporter.get_finished_spans() if s.instrumentation_scope.name == "spanreel"]  # type: ignore[union-attr]
        description = str(span.status.description)
        assert "for model gpt-4o-mini" in description and "Field required" in description
        assert (span.attributes or {})["error.type"] == "BadRequestError"  # vLLM's error shape
        exported = " ".join(_exported_text(s) for s in exporter.get_finished_spans())
        if capture:
            assert repr(prompt)[1:-1] in description
        else:
            assert "stage 2" not in exported and "diagnosis" not in exported
            assert "[spanreel: content omitted]" in description
        tp.shutdown()
    finally:
        canned.httpd.shutdown()
        canned.httpd.server_close()


def test_redaction_covers_the_encoded_url_and_the_error_text(uninstrument_after: None) -> None:
    """With redaction on, what the URL's query encodes (``jane%40example.com``), in the recorded URL
    and the HTTP span's, and the provider's error text quoting the request are redacted too; they
    used to be exported as they came."""
    canned = Canned()
    try:
        tp, exporter = instrument_in_memory(capture_content=True, redact=builtin_redactor("email,phone"))
        error = {"error": {"message": "Invalid value 'jane@example.com'", "type": "invalid_request_error"}}
        canned.set([json.dumps(error).encode()], status=400)
        client = openai.OpenAI(base_url=canned.base_url, api_key="k", max_retries=0)
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "mail jane@example.com"}],
                extra_query={"user": "jane@example.com", "tel": "+1 415 555 2671", "page": "2"},
            )
        assert canned.paths[-1].endswith("?user=jane%40example.com&tel=%2B1+415+555+2671&page=2")
        (span,) = [s for s in exporter.get_finished_spans() if s.instrumentation_scope.name == "spanreel"]  # type: ignore[union-attr]
        url = str((span.attributes or {})[SPANREEL_REQUEST_URL])
        assert url == (
            canned.base_url
            + "/chat/completions?user=%5BREDACTED%3Aemail%5D&tel=%5BREDACTED%3Aphone%5D&page=2"
        )
        assert span.status.description == "Invalid value '[REDACTED:email]'"
        spans = exporter.get_finished_spans()
        assert len(spans) == 2  # and the HTTP child span's URL is redacted the same way
        exported = [_exported_text(s) for s in spans]  # ids and timestamps may contain "555"
        assert all("jane" not in text and "555" not in text for text in exported)
        tp.shutdown()
    finally:
        canned.httpd.shutdown()
        canned.httpd.server_close()


def test_redact_url_keeps_what_it_does_not_change() -> None:
    def email(text: str) -> str:
        return text.replace("a@b.c", "[X]")

    url = "https://h/v1/chat/completions?api-version=2024-10-21&q=a%20b"
    assert redact_url(url, email) is url
    assert redact_url("https://h/users/a%40b.c/x?k=v%2Fw", email) == "https://h/users/%5BX%5D/x?k=v%2Fw"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("SPANREEL_CAPTURE_BLOBS", "keep"), ("SPANREEL_METRICS", "enabled")],
)
def test_misspelt_switches_warn_and_stay_off(
    variable: str, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An on/off setting that is neither (``keep``, ``enabled``) warns and is off; it was silently
    off. A content-capture value that is none of the known ones (``none``, ``disabled``, a typo)
    warns and turns capture off: a privacy setting fails closed (it kept capture on)."""
    from spanreel.instrumentation._setup import metrics_enabled

    caplog.set_level("WARNING", logger="spanreel")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("spanreel._env._reported", set())  # each message is reported once per process
        _misspelt(variable, value, caplog, metrics_enabled)


def _misspelt(variable: str, value: str, caplog: pytest.LogCaptureFixture, metrics_enabled: Any) -> None:
    environ = {variable: value}
    if variable == "SPANREEL_METRICS":
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(variable, value)
            assert metrics_enabled() is False
    else:
        assert ContentPolicy.from_env(environ).keep_blobs is False
    assert f"{variable}='{value}' is neither on nor off" in caplog.text
    assert ContentPolicy.from_env({"SPANREEL_CAPTURE_BLOBS": "YES"}).keep_blobs is True
    for unknown in ("none", "disabled", "SPAN_ONLYY"):
        caplog.clear()
        assert content_capture_enabled(unknown) is False
        assert f"={unknown!r}" in caplog.text and "content capture is off" in caplog.text


def test_a_key_the_provider_quotes_in_its_error_is_masked(uninstrument_after: None) -> None:
    """OpenAI answers a bad key with "Incorrect API key provided: sk-…": the message went into
    the span status as is (redaction is off by default, and knows only some key shapes). The
    request's own credentials (headers, query) are masked out of error text now."""
    canned = Canned()
    try:
        key = "sk-canary-" + "7" * 30
        body = {"error": {"message": f"Incorrect API key provided: {key}.", "type": "invalid_request_error",
                          "code": "invalid_api_key"}}  # fmt: skip
        canned.set([json.dumps(body).encode()], status=401)
        tp, exporter = instrument_in_memory(capture_content=True)
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=canned.base_url, api_key=key, max_retries=0).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        spans = exporter.get_finished_spans()
        assert key.encode() not in encode_spans(spans).SerializeToString()
        (genai,) = [
            s for s in spans if s.instrumentation_scope and s.instrumentation_scope.name == "spanreel"
        ]
        assert genai.status.description == "Incorrect API key provided: [REDACTED:credential]."
        # The session span around the call records the SDK's error, which quotes the key too;
        # and a key read with a trailing newline is refused by the transport (h11), whose error
        # quotes the header: in the HTTP child span's status and exception event.
        exporter.clear()
        with pytest.raises(openai.AuthenticationError), spanreel.session("support"):
            openai.OpenAI(base_url=canned.base_url, api_key=key, max_retries=0).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        # The same error out of a task group (asyncio.TaskGroup, anyio) reaches the session as an
        # ExceptionGroup, whose traceback quotes its members.
        failed: list[Exception] = []
        try:
            openai.OpenAI(base_url=canned.base_url, api_key=key, max_retries=0).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        except openai.AuthenticationError as exc:
            failed.append(exc)
        with pytest.raises(ExceptionGroup), spanreel.session("support"):  # raised as a task group does
            raise ExceptionGroup("unhandled errors in a TaskGroup", failed)
        with pytest.raises(openai.APIConnectionError):
            openai.OpenAI(
                base_url=canned.base_url, api_key=key + "\n", max_retries=0
            ).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        spans = exporter.get_finished_spans()
        by_name = {s.name: s for s in spans}
        assert set(by_name) == {"support", "chat gpt-4o-mini", "POST"} and len(spans) == 8
        sessions = [s for s in spans if s.name == "support"]
        assert "[REDACTED:credential]" in str(sessions[0].status.description)
        http_errors = [s for s in spans if s.name == "POST" and s.events]
        assert http_errors and "[REDACTED:credential]" in str(http_errors[0].status.description)
        assert key.encode() not in encode_spans(spans).SerializeToString()
        assert key not in "".join(s.to_json() for s in spans)
        tp.shutdown()
    finally:
        canned.httpd.shutdown()
        canned.httpd.server_close()


@pytest.mark.parametrize("spelling", ["\n{key}", "{key}\t", "sk-can\x00{key}", "{key}\r\n"])
def test_a_key_with_control_characters_is_masked_where_the_transport_quotes_it(
    spelling: str, uninstrument_after: None
) -> None:
    """h11 refuses a header value with a control character and quotes it as a bytes repr
    (``b'Bearer \\nsk-…'``): only a trailing newline used to be masked. A leading newline (a key
    file starting with a blank line) or a NUL inside left the key, or its part after the control
    character, in the GenAI, HTTP and session spans."""
    canned = Canned()
    try:
        key = "sk-canary-" + "5" * 30
        tp, exporter = instrument_in_memory(capture_content=True)
        with pytest.raises(openai.APIConnectionError), spanreel.session("s"):
            openai.OpenAI(
                base_url=canned.base_url, api_key=spelling.format(key=key), max_retries=0
            ).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        spans = exporter.get_finished_spans()
        assert {s.name for s in spans} == {"s", "chat gpt-4o-mini", "POST"}
        assert all("[REDACTED:credential]" in str(s.status.description) for s in spans if s.name != "s")
        wire = encode_spans(spans).SerializeToString()
        assert key[-20:].encode() not in wire
        tp.shutdown()
    finally:
        canned.httpd.shutdown()
        canned.httpd.server_close()


def test_a_url_password_quoted_in_an_error_is_masked_in_the_session_span(uninstrument_after: None) -> None:
    """httpx's ``raise_for_status()`` error quotes the URL with its user-info: the password went
    into the session span's status and exception event."""
    canned = Canned()
    try:
        password = "gatewayPASSWORD" + "3" * 12
        canned.set([b'{"error": {"message": "slow down"}}'], status=429)
        tp, exporter = instrument_in_memory(capture_content=True)
        url = canned.base_url.replace("http://", f"http://svc:{password}@") + "/chat/completions"
        with pytest.raises(httpx.HTTPStatusError), spanreel.session("s"):
            httpx.post(
                url, json={"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            ).raise_for_status()
        spans = exporter.get_finished_spans()
        (session,) = [s for s in spans if s.name == "s"]
        assert "[REDACTED:credential]" in str(session.status.description)
        assert password.encode() not in encode_spans(spans).SerializeToString()
        tp.shutdown()
    finally:
        canned.httpd.shutdown()
        canned.httpd.server_close()


def test_a_lone_surrogate_in_a_prompt_keeps_the_input_messages(
    server: FakeLLMServer, uninstrument_after: None
) -> None:
    """Half an emoji (``"\\ud83d"``, valid JSON) made ``gen_ai.input.messages`` a string that is
    not UTF-8: the OTLP encoder logged a traceback and exported the span without it."""
    tp, exporter = instrument_in_memory(capture_content=True)
    body = r'{"model": "m", "messages": [{"role": "user", "content": "cut emoji \ud83d here, é kept"}]}'
    r = httpx.post(
        server.base_url + "/chat/completions",
        content=body.encode(),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 500  # the fake server cannot read it either: the prompt is still recorded
    (span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("chat")]
    text = str((span.attributes or {})[ga.GEN_AI_INPUT_MESSAGES])
    text.encode("utf-8")  # valid UTF-8
    assert json.loads(text)[0]["parts"][0]["content"] == "cut emoji \ud83d here, é kept"
    (encoded,) = encode_spans([span]).resource_spans[0].scope_spans[0].spans
    assert ga.GEN_AI_INPUT_MESSAGES in {kv.key for kv in encoded.attributes}
    tp.shutdown()


def test_credential_headers_an_http_instrumentation_captures_are_masked(
    server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch, uninstrument_after: None
) -> None:
    """With the standard opt-in to record request headers (here every header), the HTTP child
    span recorded ``authorization`` and ``x-goog-api-key`` as sent."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST", ".*")
    tp, exporter = instrument_in_memory(capture_content=True)
    openai.OpenAI(base_url=server.base_url, api_key=CANARY, max_retries=0).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    gemini = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    r = httpx.post(
        f"http://127.0.0.1:{server.port}/v1beta/models/gemini-2.0-flash:generateContent",
        json=gemini,
        headers={"x-goog-api-key": CANARY, "Cookie": "session=" + CANARY},
    )
    assert r.status_code == 200
    http = [s for s in exporter.get_finished_spans() if s.name == "POST"]
    assert len(http) == 2
    headers = {
        k: v for s in http for k, v in (s.attributes or {}).items() if k.startswith("http.request.header.")
    }
    assert headers["http.request.header.authorization"] == ("[REDACTED:credential]",)
    assert headers["http.request.header.x_goog_api_key"] == ("[REDACTED:credential]",)
    assert headers["http.request.header.content_type"] == ("application/json",)  # the rest is kept
    assert CANARY.encode() not in encode_spans(exporter.get_finished_spans()).SerializeToString()
    tp.shutdown()


def test_the_session_span_redacts_the_error_text_it_records(
    monkeypatch: pytest.MonkeyPatch, uninstrument_after: None
) -> None:
    """With redaction on, the GenAI span's error text was redacted, the session span's (status,
    ``exception.message``, ``exception.stacktrace``) was not."""
    monkeypatch.setenv("SPANREEL_REDACT", "email")
    canned = Canned()
    try:
        body = {
            "error": {
                "message": "Account jane.doe@example.com has no access",
                "type": "invalid_request_error",
            }
        }
        canned.set([json.dumps(body).encode()], status=400)
        tp, exporter = instrument_in_memory(capture_content=True)
        with pytest.raises(openai.BadRequestError), spanreel.session("support"):
            openai.OpenAI(base_url=canned.base_url, api_key="k", max_retries=0).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        (session,) = [s for s in exporter.get_finished_spans() if s.name == "support"]
        assert "Account [REDACTED:email] has no access" in str(session.status.description)
        (event,) = session.events
        assert "[REDACTED:email]" in str((event.attributes or {})["exception.stacktrace"])
        assert b"jane.doe@example.com" not in encode_spans(exporter.get_finished_spans()).SerializeToString()
        tp.shutdown()
    finally:
        canned.httpd.shutdown()
        canned.httpd.server_close()
