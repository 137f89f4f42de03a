"""Shared configuration: where the DuckDB file lives and how ``otel-config.yaml`` is read.

Every command resolves the database the same way (first match wins):

1. ``--db PATH`` on the command line,
2. the ``SPANREEL_DB`` environment variable,
3. ``exporters.duckdb.path`` in the collector config (``--config``, else ``./otel-config.yaml``
   when that file exists),
4. the default ``$XDG_DATA_HOME/spanreel/spanreel.duckdb`` (``~/.local/share/spanreel/spanreel.duckdb``).

The config file uses the OpenTelemetry Collector's structure and its ``${env:VAR}`` /
``${env:VAR:-default}`` substitution (https://opentelemetry.io/docs/collector/configuration/).
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CONFIG_NAME = "otel-config.yaml"
_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """The collector configuration is missing, unreadable or invalid; the message says where."""


def check_keys(section: Mapping[str, Any], allowed: Collection[str], key: str) -> None:
    """Raise :class:`ConfigError` naming the first key of ``section`` (the mapping at config path
    ``key``) that is not in ``allowed``: a misspelt setting (``authentication:`` for ``auth:``)
    must fail loudly, as in the OpenTelemetry Collector, not be ignored."""
    for name in section:
        if name not in allowed:
            raise ConfigError(f"{key}.{name}: unknown key (supported: {', '.join(sorted(allowed))})")


def default_db_path() -> Path:
    """The documented default DuckDB path: ``$XDG_DATA_HOME/spanreel/spanreel.duckdb``."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "spanreel" / "spanreel.duckdb"


def expand_env(text: str) -> str:
    """Replace ``${env:VAR}`` and ``${env:VAR:-default}`` in ``text``.

    An unset variable without a default expands to the empty string, as in the OTel Collector.
    """

    def repl(match: re.Match[str]) -> str:
        value = os.environ.get(match.group(1))
        if value is None or (value == "" and match.group(2) is not None):
            return match.group(2) or ""
        return value

    return _ENV_REF.sub(repl, text)


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a collector config file (YAML) with ``${env:…}`` substitution.

    Returns the parsed mapping (an empty file gives ``{}``).
    Raises :class:`ConfigError` when the file cannot be read, is not YAML, or is not a mapping.
    """
    p = Path(path)
    try:
        raw = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(expand_env(raw))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping (receivers, exporters, service…)")
    return data


def find_config(explicit: str | os.PathLike[str] | None) -> Path | None:
    """The config file to use: ``explicit`` (must exist), else ``./otel-config.yaml`` if present.

    Raises :class:`ConfigError` when ``explicit`` names a file that does not exist.
    """
    if explicit is not None:
        p = Path(explicit)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        return p
    p = Path.cwd() / DEFAULT_CONFIG_NAME
    return p if p.is_file() else None


def db_path_from_config(config: dict[str, Any], base_dir: Path | None = None) -> Path | None:
    """``exporters.duckdb.path`` from a loaded config, ``~`` expanded; relative paths are
    taken relative to ``base_dir`` (the config file's folder). ``None`` when not set."""
    exporters = config.get("exporters") or {}
    if not isinstance(exporters, dict):
        return None
    for name, section in exporters.items():
        if str(name).split("/")[0] == "duckdb" and isinstance(section, dict) and section.get("path"):
            p = Path(os.path.expanduser(str(section["path"])))
            if not p.is_absolute() and base_dir is not None:
                p = base_dir / p
            return p
    return None


def resolve_db_path(cli_db: str | os.PathLike[str] | None = None, config_path: str | None = None) -> Path:
    """Resolve the DuckDB path by the documented precedence (see module docstring).

    Raises :class:`ConfigError` if an explicit ``config_path`` cannot be read.
    """
    if cli_db:
        return Path(os.path.expanduser(str(cli_db)))
    env = os.environ.get("SPANREEL_DB")
    if env:
        return Path(os.path.expanduser(env))
    cfg_file = find_config(config_path)
    if cfg_file is not None:
        from_cfg = db_path_from_config(load_config(cfg_file), cfg_file.parent)
        if from_cfg is not None:
            return from_cfg
    return default_db_path()
