"""AWS Signature Version 4 for replayed Amazon Bedrock requests, computed by botocore.

Bedrock authenticates each request by its signature, not a key header
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv4.html; service name
``bedrock``). The signing itself is botocore's ``SigV4Auth``: botocore is installed with
``AnthropicBedrock``/boto3, and replay only needs it for Bedrock calls.

Credentials, like every replay credential, come from the environment, never from the trace:
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (``AWS_SESSION_TOKEN`` when set) in the given
environment, else botocore's own chain (shared config and credentials files, SSO, instance
role). The region is the recorded host's (``bedrock-runtime.{region}.amazonaws.com``), else
``AWS_REGION`` / ``AWS_DEFAULT_REGION``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from spanreel.instrumentation._http import _optional_module

__all__ = ["SigningError", "sign_bedrock_request"]

#: Bedrock runtime endpoints, FIPS included: ``bedrock-runtime[-fips].{region}.amazonaws.com``.
_BEDROCK_HOST = re.compile(r"^bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")


class SigningError(RuntimeError):
    """The request cannot be signed: botocore missing, no credentials or no region. The message
    says what to install or set."""


def bedrock_region(url: str, environ: Mapping[str, str]) -> str:
    """The AWS region to sign ``url`` for: the Bedrock host's, else ``AWS_REGION`` /
    ``AWS_DEFAULT_REGION`` from ``environ``. Raises :class:`SigningError` when neither gives one."""
    match = _BEDROCK_HOST.match(urlsplit(url).hostname or "")
    region = match.group(1) if match else environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise SigningError(
            f"cannot tell the AWS region of {url!r} (not a bedrock-runtime.REGION.amazonaws.com host): "
            "set AWS_REGION"
        )
    return region


def _credentials(environ: Mapping[str, str]) -> Any:
    credentials_module = _optional_module("botocore.credentials")
    session_module = _optional_module("botocore.session")
    if credentials_module is None or session_module is None:
        raise SigningError(
            "replaying an Amazon Bedrock call needs botocore to sign it (AWS SigV4): pip install botocore"
        )
    key_id, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if key_id and secret:
        return credentials_module.Credentials(key_id, secret, environ.get("AWS_SESSION_TOKEN") or None)
    found = session_module.Session().get_credentials()
    if found is None:
        raise SigningError(
            "no AWS credentials to sign the Amazon Bedrock request: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), or AWS_PROFILE"
        )
    return found


def sign_bedrock_request(
    method: str, url: str, body: bytes, headers: Mapping[str, str], environ: Mapping[str, str]
) -> dict[str, str]:
    """``headers`` plus the SigV4 ones (``Authorization``, ``X-Amz-Date``, and
    ``X-Amz-Security-Token`` for temporary credentials) for sending ``body`` to ``url``. Sign each
    attempt afresh: a signature is valid for 5 minutes. The request must then be sent with exactly
    these headers and body. Raises :class:`SigningError` (see the module docstring)."""
    region = bedrock_region(url, environ)
    credentials = _credentials(environ)
    auth = _optional_module("botocore.auth")
    awsrequest = _optional_module("botocore.awsrequest")
    request = awsrequest.AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    auth.SigV4Auth(credentials, "bedrock", region).add_auth(request)
    return dict(request.headers.items())
