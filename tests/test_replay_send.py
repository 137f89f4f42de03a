"""Credentials for replayed requests: each provider's own variable, never another provider's key;
Amazon Bedrock requests signed with AWS SigV4."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from spanreel.instrumentation._http import _HOST_PROVIDERS, _SUFFIX_PROVIDERS
from spanreel.replay._safety import RetryPolicy
from spanreel.replay._send import CREDENTIALS, auth_headers, send_request
from spanreel.replay._sigv4 import bedrock_region

ENV = {
    "OPENAI_API_KEY": "sk-openai",
    "ANTHROPIC_API_KEY": "sk-ant",
    "GROQ_API_KEY": "gsk-groq",
    "GOOGLE_OAUTH_ACCESS_TOKEN": "ya29.token",
}


@pytest.mark.parametrize(
    ("provider", "expected"),
    [
        ("openai", {"Authorization": "Bearer sk-openai"}),
        (None, {"Authorization": "Bearer sk-openai"}),  # a peer span without a provider
        ("my-local-server", {"Authorization": "Bearer sk-openai"}),  # OpenAI-compatible, unknown
        ("anthropic", {"x-api-key": "sk-ant", "anthropic-version": "2023-06-01"}),
        ("groq", {"Authorization": "Bearer gsk-groq"}),
        ("gcp.vertex_ai", {"Authorization": "Bearer ya29.token"}),
        ("together_ai", {}),  # its variable is unset: no credential at all, not OpenAI's key
        ("azure.ai.openai", {}),
        ("aws.bedrock", {}),  # signed instead (below), and never sent another provider's key
    ],
)
def test_each_provider_gets_its_own_credential(provider: str | None, expected: dict[str, str]) -> None:
    assert auth_headers(provider, ENV) == expected


def test_every_provider_known_by_host_has_its_own_credential() -> None:
    """A call recorded at a known provider's host is replayed to that host: OPENAI_API_KEY (the
    fallback for unknown providers) must never be sent there, so each such provider has an entry."""
    providers = set(_HOST_PROVIDERS.values()) | {provider for _, provider in _SUFFIX_PROVIDERS}
    assert providers - set(CREDENTIALS) == set()


class _Recorder:
    """A loopback HTTP server that records each POST's headers and body and answers ``{}``."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                recorder.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    r = _Recorder()
    yield r
    r.httpd.shutdown()
    r.httpd.server_close()


def _expected_signature(
    url: str, headers: dict[str, str], body: bytes, credentials: Credentials, region: str
) -> str:
    """The ``Authorization`` header AWS would compute for what the server received (SigV4, by
    botocore), over the headers the request says it signed."""
    signed = re.search(r"SignedHeaders=([^,]+)", headers["authorization"])
    assert signed is not None
    names = signed.group(1).split(";")
    request = AWSRequest(method="POST", url=url, data=body, headers={n: headers[n] for n in names})
    request.context["timestamp"] = headers["x-amz-date"]
    auth = SigV4Auth(credentials, "bedrock", region)
    canonical = auth.canonical_request(request)
    signature = auth.signature(auth.string_to_sign(request, canonical), request)
    scope = f"{credentials.access_key}/{headers['x-amz-date'][:8]}/{region}/bedrock/aws4_request"
    return f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders={signed.group(1)}, Signature={signature}"


@pytest.mark.parametrize("session_token", [None, "FwoGZXIvYXdzEXAMPLE"])
def test_bedrock_requests_are_signed_sigv4(recorder: _Recorder, session_token: str | None) -> None:
    """A replayed Amazon Bedrock call is signed with AWS SigV4 from the environment's credentials
    (it used to be sent unsigned, and AWS refused it); the signature is valid for exactly the
    headers and body the server received; temporary credentials send their session token."""
    env = {
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI",
        "AWS_REGION": "us-west-2",
    }
    if session_token:
        env["AWS_SESSION_TOKEN"] = session_token
    url = recorder.url + "/model/anthropic.claude-sonnet-4-20250514-v1:0/invoke"
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 9, "messages": []}).encode()
    with httpx2.Client() as client:
        outcome = send_request(
            client,
            "POST",
            url,
            body,
            provider="aws.bedrock",
            environ=env,
            retry=RetryPolicy(0),
            check=lambda url, allowed: None,
        )
    assert outcome.error is None and outcome.http_status == 200
    [(headers, received)] = recorder.requests
    assert received == body
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI", session_token)
    assert headers["authorization"] == _expected_signature(url, headers, body, credentials, "us-west-2")
    assert "host" in headers["authorization"] and "x-amz-date" in headers["authorization"]
    assert headers.get("x-amz-security-token") == session_token
    assert "wJalrXUtnFEMI" not in json.dumps(headers)  # the secret itself never travels


def test_bedrock_region_comes_from_the_recorded_host() -> None:
    assert (
        bedrock_region("https://bedrock-runtime.eu-central-1.amazonaws.com/model/m/invoke", {})
        == "eu-central-1"
    )
    assert (
        bedrock_region("https://bedrock-runtime-fips.us-east-1.amazonaws.com/model/m/invoke", {})
        == "us-east-1"
    )
    assert (
        bedrock_region("http://127.0.0.1:9/model/m/invoke", {"AWS_DEFAULT_REGION": "ap-south-1"})
        == "ap-south-1"
    )


def test_bedrock_without_credentials_or_region_is_not_sent(
    recorder: _Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without AWS credentials (environment, config files, metadata) or a region, nothing is sent
    and the outcome says what to set."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    url = recorder.url + "/model/m/invoke"
    with httpx2.Client() as client:
        no_credentials = send_request(
            client,
            "POST",
            url,
            b"{}",
            provider="aws.bedrock",
            environ={"AWS_REGION": "us-east-1"},
            retry=RetryPolicy(0),
            check=lambda url, allowed: None,
        )
        no_region = send_request(
            client,
            "POST",
            url,
            b"{}",
            provider="aws.bedrock",
            environ={"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s"},
            retry=RetryPolicy(0),
            check=lambda url, allowed: None,
        )
    assert no_credentials.error is not None and "AWS_ACCESS_KEY_ID" in no_credentials.error
    assert no_region.error is not None and "AWS_REGION" in no_region.error
    assert no_credentials.http_status is None and recorder.requests == []
