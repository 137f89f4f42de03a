"""Pure request/response → GenAI attribute mapping, SSE decoding, URL sanitising, capture setting."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import pytest
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT

from spanreel._attributes import SPANREEL_REQUEST_BODY, SPANREEL_REQUEST_METHOD, SPANREEL_REQUEST_URL
from spanreel.instrumentation import (
    ChatStreamAccumulator,
    SSEDecoder,
    content_capture_enabled,
    extract_output_text,
    input_messages,
    provider_for_host,
    response_attributes,
    sanitize_url,
)
from spanreel.instrumentation._gemini import generate_request
from spanreel.instrumentation._http import make_decoder, mask_credentials, request_credentials
from spanreel.instrumentation._openai import (
    error_type_from_body,
    is_chat_completions,
    parse_chat_body,
    request_attributes,
)
from spanreel.instrumentation._openai_responses import responses_request

TOOL_CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
]


def _request(body: dict[str, Any], capture: bool = True) -> Any:
    raw = json.dumps(body)
    return request_attributes(
        body,
        method="POST",
        url="https://api.openai.com/v1/chat/completions",
        host="api.openai.com",
        port=443,
        provider="openai",
        raw_body=raw,
        capture_content=capture,
    )


def test_request_attributes_full() -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": TOOL_CONVERSATION,
        "temperature": 0,
        "top_p": 0.9,
        "max_completion_tokens": 100,
        "max_tokens": 5,
        "stop": "END",
        "frequency_penalty": 0.5,
        "presence_penalty": -0.5,
        "seed": 42,
        "n": 2,
        "stream": True,
        "tools": [
            {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
        ],
    }
    req = _request(body)
    a = req.attributes
    assert req.span_name == "chat gpt-4o-mini" and req.stream is True
    assert a[ga.GEN_AI_OPERATION_NAME] == "chat"
    assert a[ga.GEN_AI_PROVIDER_NAME] == "openai"
    assert a[ga.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert a[ga.GEN_AI_REQUEST_TEMPERATURE] == 0.0 and isinstance(a[ga.GEN_AI_REQUEST_TEMPERATURE], float)
    assert a[ga.GEN_AI_REQUEST_TOP_P] == 0.9
    assert a[ga.GEN_AI_REQUEST_MAX_TOKENS] == 100  # max_completion_tokens wins
    assert a[ga.GEN_AI_REQUEST_STOP_SEQUENCES] == ["END"]
    assert a[ga.GEN_AI_REQUEST_FREQUENCY_PENALTY] == 0.5
    assert a[ga.GEN_AI_REQUEST_PRESENCE_PENALTY] == -0.5
    assert a[ga.GEN_AI_REQUEST_SEED] == 42
    assert a[ga.GEN_AI_REQUEST_CHOICE_COUNT] == 2
    assert a[ga.GEN_AI_REQUEST_STREAM] is True
    assert a[SERVER_ADDRESS] == "api.openai.com" and a[SERVER_PORT] == 443
    assert a[SPANREEL_REQUEST_METHOD] == "POST"
    assert a[SPANREEL_REQUEST_URL] == "https://api.openai.com/v1/chat/completions"
    assert a[SPANREEL_REQUEST_BODY] == json.dumps(body)
    assert json.loads(str(a[ga.GEN_AI_TOOL_DEFINITIONS])) == [
        {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    ]
    assert json.loads(str(a[ga.GEN_AI_INPUT_MESSAGES])) == [
        {"role": "system", "parts": [{"type": "text", "content": "You are terse."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
            ],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "18C"}]},
    ]


def test_request_attributes_skip_wrong_types_and_n_1() -> None:
    a = _request(
        {"model": "m", "messages": [], "temperature": "hot", "seed": True, "n": 1, "stop": [1]}
    ).attributes
    for key in (ga.GEN_AI_REQUEST_TEMPERATURE, ga.GEN_AI_REQUEST_SEED, ga.GEN_AI_REQUEST_CHOICE_COUNT):
        assert key not in a
    assert ga.GEN_AI_REQUEST_STOP_SEQUENCES not in a
    assert a[ga.GEN_AI_REQUEST_STREAM] is False


def test_request_without_model_is_named_by_operation() -> None:
    assert _request({"messages": []}).span_name == "chat"


def test_content_capture_off_drops_content_and_body() -> None:
    a = _request(
        {"model": "m", "messages": TOOL_CONVERSATION, "tools": [{"type": "function"}]}, capture=False
    )
    for key in (ga.GEN_AI_INPUT_MESSAGES, ga.GEN_AI_TOOL_DEFINITIONS, SPANREEL_REQUEST_BODY):
        assert key not in a.attributes
    assert a.attributes[ga.GEN_AI_REQUEST_MODEL] == "m"


def test_input_messages_multimodal_parts() -> None:
    msgs = input_messages(
        [
            {
                "role": "user",
                "name": "ann",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "https://x/img.png"}},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            }
        ]
    )
    assert msgs == [
        {
            "role": "user",
            "name": "ann",
            "parts": [
                {"type": "text", "content": "look"},
                {"type": "uri", "modality": "image", "uri": "https://x/img.png"},
                {"type": "blob", "modality": "image", "mime_type": "image/png", "content": "AAAA"},
            ],
        }
    ]


def test_file_parts_follow_the_semconv_part_shapes() -> None:
    """An inline file (``file_data``, a data URL) is a ``blob`` part (it was a ``file`` part
    without the ``file_id`` semconv requires there); an uploaded one a ``file`` part with its id;
    Gemini's ``fileData`` a ``uri`` part with the ``modality`` semconv requires."""
    content = [
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}},
        {"type": "file", "file": {"file_id": "file-123"}},
    ]
    (message,) = input_messages([{"role": "user", "content": content}])
    assert message["parts"] == [
        {
            "type": "blob", "modality": "document", "mime_type": "application/pdf", "content": "JVBERi0=",
            "filename": "a.pdf",
        },
        {"type": "file", "modality": "document", "file_id": "file-123"},
    ]  # fmt: skip
    # The Responses API's input_file: the same shapes (inline data was a file part without
    # file_id, the data URL prefix and no mime type).
    files = [
        {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="},
        {"type": "input_file", "file_id": "file-123"},
        {"type": "input_file", "file_url": "https://x/a.pdf"},
    ]
    request = responses_request({"model": "gpt-5", "input": [{"role": "user", "content": files}]}, None, True)
    (message,) = request.content[ga.GEN_AI_INPUT_MESSAGES]
    assert message["parts"] == [
        {
            "type": "blob", "modality": "document", "mime_type": "application/pdf", "content": "JVBERi0=",
            "filename": "a.pdf",
        },
        {"type": "file", "modality": "document", "file_id": "file-123"},
        {"type": "uri", "modality": "document", "uri": "https://x/a.pdf"},
    ]  # fmt: skip
    video = {"fileData": {"mimeType": "video/mp4", "fileUri": "gs://bucket/clip.mp4"}}
    parts = generate_request({"contents": [{"role": "user", "parts": [video]}]}, "gemini-2.5-flash", True)
    (message,) = parts.content[ga.GEN_AI_INPUT_MESSAGES]
    assert message["parts"] == [
        {"type": "uri", "modality": "video", "mime_type": "video/mp4", "uri": "gs://bucket/clip.mp4"}
    ]


def test_response_attributes_non_streaming_with_tool_call() -> None:
    body = {
        "id": "chatcmpl-1",
        "model": "gpt-4o-mini-2024",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
                    ],
                },
            }
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 3,
            "total_tokens": 13,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 1},
        },
    }
    a = response_attributes(body, capture_content=True)
    assert a[ga.GEN_AI_RESPONSE_ID] == "chatcmpl-1"
    assert a[ga.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini-2024"
    assert a[ga.GEN_AI_RESPONSE_FINISH_REASONS] == ["tool_calls"]
    assert a[ga.GEN_AI_USAGE_INPUT_TOKENS] == 10 and a[ga.GEN_AI_USAGE_OUTPUT_TOKENS] == 3
    assert a[ga.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 4
    assert a[ga.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 1
    assert json.loads(str(a[ga.GEN_AI_OUTPUT_MESSAGES])) == [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "c1", "name": "f", "arguments": {"x": 1}}],
            "finish_reason": "tool_calls",
        }
    ]
    assert ga.GEN_AI_OUTPUT_MESSAGES not in response_attributes(body, capture_content=False)


def test_response_attributes_multiple_choices_and_text() -> None:
    body = {
        "id": "x",
        "choices": [
            {"index": 1, "finish_reason": "length", "message": {"role": "assistant", "content": "B"}},
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "A"}},
        ],
    }
    a = response_attributes(body, capture_content=True)
    assert a[ga.GEN_AI_RESPONSE_FINISH_REASONS] == ["stop", "length"]
    assert extract_output_text(str(a[ga.GEN_AI_OUTPUT_MESSAGES])) == "A\n\nB"
    assert response_attributes("nonsense", capture_content=True) == {}


def _chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> str:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return json.dumps({"id": "chatcmpl-s", "model": "m-1", "choices": choices, **extra})


def test_stream_accumulator_text_and_usage_in_final_chunk() -> None:
    acc = ChatStreamAccumulator()
    assert acc.add(_chunk({"role": "assistant", "content": ""}))
    assert acc.add(_chunk({"content": "Hello "}))
    assert acc.add(_chunk({"content": "world"}))
    assert acc.add(_chunk({}, "stop"))
    assert acc.add(_chunk(None, usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}))
    assert not acc.add("[DONE]") and acc.done
    a = acc.attributes(capture_content=True)
    assert a[ga.GEN_AI_RESPONSE_ID] == "chatcmpl-s" and a[ga.GEN_AI_RESPONSE_MODEL] == "m-1"
    assert a[ga.GEN_AI_RESPONSE_FINISH_REASONS] == ["stop"]
    assert a[ga.GEN_AI_USAGE_INPUT_TOKENS] == 5 and a[ga.GEN_AI_USAGE_OUTPUT_TOKENS] == 2
    assert json.loads(str(a[ga.GEN_AI_OUTPUT_MESSAGES])) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Hello world"}], "finish_reason": "stop"}
    ]


def test_stream_accumulator_tool_calls_assembled() -> None:
    acc = ChatStreamAccumulator()
    acc.add(
        _chunk(
            {
                "role": "assistant",
                "tool_calls": [
                    {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}},
                    {
                        "index": 1,
                        "id": "c2",
                        "type": "function",
                        "function": {"name": "g", "arguments": "{}"},
                    },
                ],
            }
        )
    )
    acc.add(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a": '}}]}))
    acc.add(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}))
    acc.add(_chunk({}, "tool_calls"))
    out = json.loads(str(acc.attributes(capture_content=True)[ga.GEN_AI_OUTPUT_MESSAGES]))
    assert out[0]["parts"] == [
        {"type": "tool_call", "id": "c1", "name": "f", "arguments": {"a": 1}},
        {"type": "tool_call", "id": "c2", "name": "g", "arguments": {}},
    ]
    assert out[0]["finish_reason"] == "tool_calls"
    assert acc.attributes(capture_content=True)[ga.GEN_AI_RESPONSE_FINISH_REASONS] == ["tool_calls"]


def test_stream_accumulator_error_event_and_garbage() -> None:
    acc = ChatStreamAccumulator()
    assert not acc.add("not json")
    assert acc.add(json.dumps({"error": {"message": "overloaded", "type": "server_error", "code": None}}))
    assert acc.error_type == "server_error" and acc.error_message == "overloaded"


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_sse_decoder_any_chunking(size: int) -> None:
    payload = (
        b": keep-alive\r\n\r\n"
        b'data: {"a": 1}\r\n\r\n'
        b"event: message\ndata: line1\ndata:line2\n\n"
        b"id: 3\ndata: [DONE]\n\n"
        b"data: unterminated"
    )
    dec = SSEDecoder()
    events = []
    for i in range(0, len(payload), size):
        events += dec.feed(payload[i : i + size])
    assert [(e.event, e.data) for e in events] == [
        ("message", '{"a": 1}'),
        ("message", "line1\nline2"),
        ("message", "[DONE]"),
    ]
    assert dec.flush() == []


def test_sse_decoder_utf8_split_across_chunks() -> None:
    data = "data: héllo ✓\n\n".encode()
    dec = SSEDecoder()
    events = [e for b in (data[:8], data[8:9], data[9:]) for e in dec.feed(b)]
    assert events[0].data == "héllo ✓"


def test_chat_detection_and_body_parsing() -> None:
    assert is_chat_completions("POST", "/v1/chat/completions")
    assert is_chat_completions("POST", "/openai/deployments/x/chat/completions/")
    assert not is_chat_completions("GET", "/v1/chat/completions")
    assert not is_chat_completions("POST", "/v1/completions")
    assert parse_chat_body(b'{"messages": []}') == {"messages": []}
    assert parse_chat_body(b'{"prompt": "x"}') is None
    assert parse_chat_body(b"[1]") is None
    assert parse_chat_body(b"{bad") is None
    assert parse_chat_body(b"") is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.openai.com/v1/chat/completions", "https://api.openai.com/v1/chat/completions"),
        ("https://h/v1beta/openai/chat/completions?key=SECRET", "https://h/v1beta/openai/chat/completions"),
        ("https://h/p?api-version=2024&api-key=SECRET", "https://h/p?api-version=2024"),
        ("https://h/p?API_KEY=S&Token=S&sig=S&x=1", "https://h/p?x=1"),
        ("https://user:SECRET@h:8443/p", "https://h:8443/p"),
        # spellings some servers read as credentials too
        ("https://h/p?key%3DSECRET&alt=sse", "https://h/p?alt=sse"),
        ("https://h/p?alt=sse;key=SECRET", "https://h/p?alt=sse"),
        ("https://h/p?key=SECRET;alt=sse&x=1", "https://h/p?alt=sse&x=1"),
        ("https://h/p?%6Bey=SECRET&x=1", "https://h/p?x=1"),
        ("https://h/p?key", "https://h/p"),
        # the other parameters keep their spelling and separators
        ("https://h/p?q=a+b%2Fc;x=1&key=S", "https://h/p?q=a+b%2Fc;x=1"),
        ("https://h/p?monkey=1&keys=2", "https://h/p?monkey=1&keys=2"),
        # camelCase and other common names
        ("https://h/p?accessToken=S&clientSecret=S&subscriptionKey=S&x=1", "https://h/p?x=1"),
        ("https://h/p?auth_token=S&private_token=S&jwt=S&x=1", "https://h/p?x=1"),
    ],
)
def test_sanitize_url(url: str, expected: str) -> None:
    assert sanitize_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://h/p?key=SECRET%2Bkey%2F0",
        "https://h/p?alt=sse;key=SECRET%2Bkey%2F0",
        "https://h/p?key%3DSECRET%2Bkey%2F0",
    ],
)
def test_request_credentials_reads_every_query_spelling(url: str) -> None:
    """Error text may quote the key decoded or as spelled in the URL: both are masked."""
    found = request_credentials(None, url)
    assert "SECRET+key/0" in found
    text = f"refused SECRET+key/0 at {url}"
    masked = mask_credentials(text, found)
    assert "SECRET" not in masked, masked


def test_provider_for_host() -> None:
    assert provider_for_host("api.openai.com") == "openai"
    assert provider_for_host("API.GROQ.COM") == "groq"
    assert provider_for_host("myres.openai.azure.com") == "azure.ai.openai"
    assert provider_for_host("myres.cognitiveservices.azure.com") == "azure.ai.openai"
    assert provider_for_host("generativelanguage.googleapis.com") == "gcp.gemini"
    assert provider_for_host("127.0.0.1") == "openai"


def test_error_type_from_body() -> None:
    assert error_type_from_body({"error": {"code": "rate_limit_exceeded", "type": "requests"}}) == (
        "rate_limit_exceeded",
        None,
    )
    assert error_type_from_body(
        {"error": {"code": None, "type": "invalid_request_error", "message": "m"}}
    ) == (
        "invalid_request_error",
        "m",
    )
    assert (
        error_type_from_body({"type": "error", "error": {"type": "overloaded_error"}})[0]
        == "overloaded_error"
    )
    # FastAPI servers (LiteLLM, custom proxies) and older vLLM: the message was lost ("HTTP 422")
    assert error_type_from_body({"detail": "x"}) == (None, "x")
    assert error_type_from_body({"detail": [{"msg": "Field required", "loc": ["body"]}]}) == (
        None,
        '[{"msg":"Field required","loc":["body"]}]',
    )
    vllm = {"object": "error", "message": "too long", "type": "BadRequestError", "param": None, "code": 400}
    assert error_type_from_body(vllm) == ("BadRequestError", "too long")
    assert error_type_from_body({"object": "list", "data": []}) == (None, None)


def test_decoders() -> None:
    text = b'{"hello": "world"}' * 50
    gz = gzip.compress(text)
    dec = make_decoder("gzip")
    assert dec is not None
    assert b"".join(dec(gz[i : i + 10]) for i in range(0, len(gz), 10)) == text
    for raw in (zlib.compress(text), zlib.compress(text)[2:-4]):  # zlib-wrapped and raw deflate
        d = make_decoder("deflate")
        assert d is not None and d(raw) == text
    identity = make_decoder("")
    assert identity is not None and identity(b"x") == b"x"
    assert make_decoder("compress") is None and make_decoder("snappy, gzip") is None  # unknown: unparsed


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, True),
        ("", True),
        ("true", True),
        ("SPAN_ONLY", True),
        ("span_and_event", True),
        ("false", False),
        ("NO_CONTENT", False),
        ("EVENT_ONLY", False),
    ],
)
def test_content_capture_values(value: str | None, expected: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    if value is None:
        assert content_capture_enabled() is expected
    else:
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", value)
        assert content_capture_enabled() is expected
        assert content_capture_enabled(value) is expected
    # an unknown value keeps capture on, with a warning (tests/test_instr_privacy.py)


def test_extract_output_text_robust() -> None:
    assert extract_output_text(None) == ""
    assert extract_output_text("{bad") == ""
    assert extract_output_text('[{"role": "assistant", "parts": [{"type": "tool_call"}]}]') == ""


def test_media_parts_keep_the_semconv_part_schema() -> None:
    """Two valid request shapes gave parts the message schema refuses: an Anthropic document
    made of its own content blocks (``source.type: "content"``) became a blob whose ``content``
    was a list; a Gemini ``fileData`` without ``mimeType`` had ``modality: null``."""
    from spanreel.instrumentation import _anthropic, _gemini

    document = {
        "type": "document",
        "source": {"type": "content", "content": [{"type": "text", "text": "p1"}]},
    }
    (message,) = _anthropic.input_messages(
        [{"role": "user", "content": [document, {"type": "text", "text": "Sum"}]}]
    )
    assert message["parts"] == [{"type": "text", "content": "p1"}, {"type": "text", "content": "Sum"}]
    files = [{"fileData": {"fileUri": "gs://b/report.pdf"}}, {"fileData": {"fileUri": "https://h/files/abc"}}]
    (message,) = _gemini.input_messages([{"role": "user", "parts": files}])
    assert message["parts"] == [
        {
            "type": "uri",
            "modality": "application",
            "mime_type": "application/pdf",
            "uri": "gs://b/report.pdf",
        },
        {"type": "uri", "modality": "unknown", "uri": "https://h/files/abc"},
    ]
