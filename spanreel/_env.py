"""On/off environment variables, read the same way everywhere (kept small: the instrumentation
imports it at application start-up)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

__all__ = ["FLAG_FALSE", "FLAG_TRUE", "env_flag", "warn_setting"]

#: Spellings of an on/off environment variable (compared lower-cased, spaces stripped).
FLAG_TRUE: tuple[str, ...] = ("1", "true", "yes", "on")
FLAG_FALSE: tuple[str, ...] = ("", "0", "false", "no", "off")


def env_flag(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether the on/off environment variable ``name`` is on (:data:`FLAG_TRUE`); unset or
    :data:`FLAG_FALSE` is off. Any other value is off too, with a warning saying so
    (:func:`warn_setting`): a misspelt setting must not be ignored silently, nor stop the app."""
    raw = (os.environ if environ is None else environ).get(name, "")
    value = raw.strip().lower()
    if value in FLAG_TRUE:
        return True
    if value not in FLAG_FALSE:
        warn_setting(
            f"spanreel: {name}={raw!r} is neither on nor off ({'/'.join(FLAG_TRUE)} or "
            f"{'/'.join(f for f in FLAG_FALSE if f)}); taken as off"
        )
    return False


def warn_setting(message: str) -> None:
    """Report a setting spanreel could not take as given: a warning on the ``spanreel`` logger,
    which without logging configured is the message alone on stderr (not a ``warnings`` entry
    pointing at spanreel's own source line). Each message once per process."""
    if message not in _reported:
        _reported.add(message)
        logging.getLogger("spanreel").warning("%s", message)


_reported: set[str] = set()
