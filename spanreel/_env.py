"""On/off environment variables, read the same way everywhere (kept small: the instrumentation
imports it at application start-up)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping

__all__ = ["FLAG_FALSE", "FLAG_TRUE", "env_flag"]

#: Spellings of an on/off environment variable (compared lower-cased, spaces stripped).
FLAG_TRUE: tuple[str, ...] = ("1", "true", "yes", "on")
FLAG_FALSE: tuple[str, ...] = ("", "0", "false", "no", "off")


def env_flag(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether the on/off environment variable ``name`` is on (:data:`FLAG_TRUE`); unset or
    :data:`FLAG_FALSE` is off. Any other value is off too, with a ``RuntimeWarning`` saying so
    (on stderr by default): a misspelt setting must not be ignored silently, nor stop the app."""
    raw = (os.environ if environ is None else environ).get(name, "")
    value = raw.strip().lower()
    if value in FLAG_TRUE:
        return True
    if value not in FLAG_FALSE:
        warnings.warn(
            f"spanreel: {name}={raw!r} is neither on nor off ({'/'.join(FLAG_TRUE)} or "
            f"{'/'.join(f for f in FLAG_FALSE if f)}); taken as off",
            RuntimeWarning,
            stacklevel=2,
        )
    return False
