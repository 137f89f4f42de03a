"""Imported by ``spanreel-autoinstrument.pth`` at interpreter start-up when ``SPANREEL_ENABLED`` is
truthy. Telemetry never breaks the app: any failure here is reported on stderr and ignored."""

from __future__ import annotations

import sys

try:
    from spanreel.instrumentation._setup import autostart

    autostart()
except Exception as exc:  # pragma: no cover - defensive: must never stop the interpreter
    print(f"spanreel: auto-instrumentation disabled: {exc!r}", file=sys.stderr)
