"""Make SDK calls under one peer GenAI instrumentation, in a process of their own.

``python peer_client.py SPEC_JSON`` — run by :func:`conftest.run_peer_clients`, because the peers
(OpenInference, OpenLLMetry, MLflow tracing) patch the ``openai`` / ``anthropic`` SDKs globally and
must not run inside the pytest process. ``SPEC_JSON`` is ``{"peer", "calls", "session"}``:

- ``peer``: ``openinference``, ``openllmetry`` (both exporting with an SDK tracer provider over
  OTLP/HTTP, configured by the ``OTEL_*`` variables), ``anthropic-sdk`` (the ``anthropic`` SDK's
  own call span on that provider, content recorded; no other instrumentation) or ``mlflow``
  (openai and anthropic autolog; MLflow exports over OTLP itself);
- ``calls``: ``[[api, kwargs], …]`` made in order against the fake LLM server (``FAKE_LLM_URL``):
  ``chat`` / ``parse`` (``response_format: "Answer"`` is a pydantic model) / ``completions`` /
  ``embeddings`` / ``responses`` / ``images`` / ``moderations`` on an ``openai.OpenAI`` client,
  ``messages`` on an ``anthropic.Anthropic`` client; streams are read to the end;
- ``session``: an OpenInference ``using_session`` id around the calls (or ``null``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import anthropic
import openai
import pydantic


class Answer(pydantic.BaseModel):
    text: str


def _methods(anthropic_options: Any = None) -> dict[str, Callable[..., Any]]:
    url = os.environ["FAKE_LLM_URL"]
    client = openai.OpenAI(base_url=url, api_key="test-key")
    options = {} if anthropic_options is None else {"open_telemetry": anthropic_options}
    claude = anthropic.Anthropic(base_url=url.removesuffix("/v1"), api_key="test-key", **options)
    return {
        "chat": client.chat.completions.create,
        "parse": client.chat.completions.parse,
        "completions": client.completions.create,
        "embeddings": client.embeddings.create,
        "responses": client.responses.create,
        "images": client.images.generate,
        "moderations": client.moderations.create,
        "messages": claude.messages.create,
    }


def main(spec: dict[str, Any]) -> None:
    peer = spec["peer"]
    anthropic_options = None
    if peer == "mlflow":
        import mlflow
        from mlflow.tracing.provider import provider

        mlflow.openai.autolog()
        mlflow.anthropic.autolog()

        def finish() -> None:
            provider.get().force_flush()  # MLflow's provider is set up on first use
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        tracer_provider = TracerProvider(resource=Resource.create())  # OTEL_SERVICE_NAME
        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        if peer == "anthropic-sdk":
            anthropic_options = {"tracer_provider": tracer_provider, "traces": {"content_mode": "content"}}
        else:
            if peer == "openinference":
                from openinference.instrumentation.openai import OpenAIInstrumentor
            else:
                from opentelemetry.instrumentation.openai import OpenAIInstrumentor  # type: ignore[no-redef]
            OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
        finish = tracer_provider.shutdown
    methods = _methods(anthropic_options)
    session: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if spec.get("session"):
        from openinference.instrumentation import using_session

        session = using_session(spec["session"])
    with session:
        for api, kwargs in spec["calls"]:
            if kwargs.get("response_format") == "Answer":
                kwargs = {**kwargs, "response_format": Answer}
            try:
                result = methods[api](**kwargs)
            except (openai.APIError, anthropic.APIError, pydantic.ValidationError) as exc:
                print(f"{api} call failed: {exc!r}")  # recorded as a failed call
                continue
            if kwargs.get("stream"):
                for _ in result:
                    pass
    finish()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
