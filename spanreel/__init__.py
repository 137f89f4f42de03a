"""spanreel: record and replay LLM conversations with OpenTelemetry.

The shared core: version, configuration (:mod:`spanreel._config`), the CLI entry
(:mod:`spanreel.cli`) and :func:`session`, re-exported from :mod:`spanreel.instrumentation`.
Subpackages: :mod:`spanreel.instrumentation`, :mod:`spanreel.collector`, :mod:`spanreel.replay`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "session"]

if TYPE_CHECKING:
    from spanreel.instrumentation import session


def __getattr__(name: str) -> Any:
    # Lazy so that ``import spanreel`` (done by the start-up hook's checks and the CLI) stays cheap.
    if name == "session":
        from spanreel.instrumentation import session

        return session
    raise AttributeError(f"module 'spanreel' has no attribute {name!r}")
