"""Credentials for replayed requests: each provider's own variable, never another provider's key."""

from __future__ import annotations

import pytest

from spanreel.instrumentation._http import _HOST_PROVIDERS, _SUFFIX_PROVIDERS
from spanreel.replay._send import CREDENTIALS, auth_headers

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
        ("aws.bedrock", {}),  # AWS signs requests: replay cannot, and sends no other key
    ],
)
def test_each_provider_gets_its_own_credential(provider: str | None, expected: dict[str, str]) -> None:
    assert auth_headers(provider, ENV) == expected


def test_every_provider_known_by_host_has_its_own_credential() -> None:
    """A call recorded at a known provider's host is replayed to that host: OPENAI_API_KEY (the
    fallback for unknown providers) must never be sent there, so each such provider has an entry."""
    providers = set(_HOST_PROVIDERS.values()) | {provider for _, provider in _SUFFIX_PROVIDERS}
    assert providers - set(CREDENTIALS) == set()
