"""Imported by ``spanreel-autoinstrument.pth`` at interpreter start-up when ``SPANREEL_ENABLED`` is
set to anything but an off value. Telemetry never breaks the app: any failure here is reported on
stderr and ignored; a value that is neither on nor off is reported and leaves spanreel off."""

from __future__ import annotations

import os
import sys

try:
    from spanreel._env import FLAG_FALSE, FLAG_TRUE

    _value = os.environ.get("SPANREEL_ENABLED", "")
    if _value.strip().lower() in FLAG_TRUE:
        from spanreel.instrumentation._setup import autostart

        autostart()
    else:
        print(
            f"spanreel: SPANREEL_ENABLED={_value!r} is neither on ({'/'.join(FLAG_TRUE)}) nor off "
            f"({'/'.join(f for f in FLAG_FALSE if f)}); spanreel stays off",
            file=sys.stderr,
        )
except Exception as exc:  # pragma: no cover - defensive: must never stop the interpreter
    print(f"spanreel: auto-instrumentation disabled: {exc!r}", file=sys.stderr)
