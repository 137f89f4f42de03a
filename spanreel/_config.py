"""Shared configuration: where the DuckDB file lives and how ``otel-config.yaml`` is read.

Every command resolves the database the same way (first match wins):

1. ``--db PATH`` on the command line,
2. the ``SPANREEL_DB`` environment variable,
3. ``exporters.duckdb.path`` in the collector config (``--config``, else ``./otel-config.yaml``
   when that file exists),
4. the default ``$XDG_DATA_HOME/spanreel/spanreel.duckdb`` (``~/.local/share/spanreel/spanreel.duckdb``).

The config file uses the OpenTelemetry Collector's structure and its ``${env:VAR}`` /
``${env:VAR:-default}`` substitution (https://opentelemetry.io/docs/collector/configuration/),
applied as the Collector does: to values after the YAML is parsed, so a variable's text is taken
as it is (never as YAML), typed settings read a whole-value reference as a YAML scalar, and a
``:-default`` applies only when the variable is unset (set to the empty string, it gives ``""``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CONFIG_NAME = "otel-config.yaml"
#: ``$$`` or a ``${[scheme:]body}`` reference (``(?!-)``: in ``${VAR:-default}`` ``VAR`` is no scheme).
_ENV_REF = re.compile(r"\$\$|\$\{(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*):(?!-))?(?P<body>[^}]*)\}")
_ENV_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


class ConfigError(Exception):
    """The collector configuration is missing, unreadable or invalid; the message says where."""


def check_keys(section: Mapping[str, Any], allowed: Collection[str], key: str) -> None:
    """Raise :class:`ConfigError` naming the first key of ``section`` (the mapping at config path
    ``key``) that is not in ``allowed``: a misspelt setting (``authentication:`` for ``auth:``)
    must fail loudly, as in the OpenTelemetry Collector, not be ignored."""
    for name in section:
        if name not in allowed:
            raise ConfigError(f"{key}.{name}: unknown key (supported: {', '.join(sorted(allowed))})")


def config_file(value: Any, key: str, base_dir: Path | None) -> Path:
    """The existing file a config value ``key`` names: ``~`` expanded, a relative path taken from
    ``base_dir`` (the config file's folder). Raises :class:`ConfigError` naming ``key`` when the
    value is not a path or no such file exists."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key} must be a file path, got {value!r}")
    path = Path(value).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file():
        raise ConfigError(f"{key}: no such file {str(path)!r}")
    return path


def default_db_path() -> Path:
    """The documented default DuckDB path: ``$XDG_DATA_HOME/spanreel/spanreel.duckdb``."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "spanreel" / "spanreel.duckdb"


class EnvText(str):
    """A whole config value that was one ``${env:…}`` reference: the variable's exact text.

    Settings that take text use it as it is; settings that take a number, a boolean or a duration
    read it through :func:`scalar`, as the OpenTelemetry Collector types such a value.
    """

    __slots__ = ()


def scalar(value: Any) -> Any:
    """``value``, or for an :class:`EnvText` the YAML scalar its text spells (``int``, ``float``,
    ``bool``; ``None`` for empty text), else its text as a plain ``str``."""
    if not isinstance(value, EnvText):
        return value
    try:
        typed = yaml.safe_load(value)
    except yaml.YAMLError:
        return str(value)
    return typed if typed is None or isinstance(typed, bool | int | float) else str(value)


def expand_env(text: str, key: str = "config") -> str:
    """Replace the references in one config string: ``${env:VAR}``, ``${VAR}`` (the Collector's
    default scheme is ``env``), either with ``:-default``; ``$$`` is a literal ``$``.

    As in the OTel Collector (its ``envprovider`` looks the variable up with ``os.LookupEnv``), the
    default is used only when the variable is **unset**: one set to the empty string expands to
    the empty string (``RETENTION=`` with ``ttl: ${env:RETENTION:-30d}`` keeps everything, it does
    not delete after 30 days). An unset variable without a default expands to the empty string.
    Raises :class:`ConfigError` naming ``key`` for another provider (``${file:…}``) or a
    malformed reference.
    """

    def repl(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        scheme, body = match.group("scheme"), match.group("body")
        if scheme is not None and scheme != "env":
            raise ConfigError(f"{key}: config provider {scheme!r} is not supported, only env (${{env:VAR}})")
        ref = _ENV_BODY.fullmatch(body)
        if ref is None:
            raise ConfigError(f"{key}: {match.group(0)!r} is not a reference of the form ${{env:VAR}}")
        value = os.environ.get(ref.group(1))
        if value is None:  # unset: the default; set, even to "", the variable's text
            return ref.group(2) or ""
        return value

    return _ENV_REF.sub(repl, text)


def _expand_tree(node: Any, key: str) -> Any:
    """``node`` (parsed YAML) with the references in its string values replaced. Substitution
    follows parsing, so a variable's text is never read as YAML structure (a ``#`` or ``: `` in a
    token stays in the token); a value that is one whole reference becomes :class:`EnvText`."""
    if isinstance(node, dict):
        return {name: _expand_tree(value, f"{key}.{name}") for name, value in node.items()}
    if isinstance(node, list):
        return [_expand_tree(value, f"{key}[{i}]") for i, value in enumerate(node)]
    if not isinstance(node, str) or "$" not in node:
        return node
    text = expand_env(node, key)
    whole = _ENV_REF.fullmatch(node)
    return EnvText(text) if whole is not None and whole.group(0) != "$$" else text


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key written twice in one mapping (PyYAML keeps the last
    silently; the OpenTelemetry Collector rejects the file). Checked as each mapping is composed,
    before merge keys (``<<``) are flattened into it, so a merge and an override are not one."""

    # (types-PyYAML types ``anchor`` as a dict: PyYAML passes the anchor's name)
    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:  # type: ignore[override]
        node: yaml.MappingNode = super().compose_mapping_node(anchor)  # type: ignore[arg-type]
        seen: set[tuple[str, object]] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = (key_node.tag, self._key_value(key_node))  # "1" and 1 are two keys
                if key in seen:
                    raise yaml.composer.ComposerError(
                        "while composing a mapping",
                        node.start_mark,
                        f"found duplicate key {key_node.value!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return node

    def _key_value(self, node: yaml.ScalarNode) -> object:
        """A scalar key's value, so that spellings of one key (``~`` and ``null``, ``1`` and
        ``0x1``, ``true`` and ``True``) are one key; its text when it cannot be constructed."""
        construct = self.yaml_constructors.get(node.tag)
        try:
            value: object = construct(self, node) if construct is not None else node.value
            hash(value)
        except Exception:
            return node.value
        return value


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a collector config file (YAML), then substitute ``${env:…}`` references in its values
    (see :func:`expand_env`; keys are not substituted).

    Returns the parsed mapping (an empty file gives ``{}``).
    Raises :class:`ConfigError` when the file cannot be read, is not YAML (a key written twice in
    one mapping included), is not a mapping, or has a reference that cannot be substituted.
    """
    p = Path(path)
    try:
        raw = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror or exc}") from exc
    try:
        data = yaml.load(raw, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping (receivers, exporters, service…)")
    expanded: dict[str, Any] = {name: _expand_tree(value, str(name)) for name, value in data.items()}
    return expanded


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


def db_path_text(value: Any, key: str) -> str | None:
    """The text of a database path setting ``key`` (``exporters.duckdb.path``); ``None`` when it is
    empty or null. Raises :class:`ConfigError` naming ``key`` for anything but one path string (a
    list, a number, a boolean: ``path: [a, b]`` used to become a file named ``['a', 'b']``) and
    for a path ending in ``/`` (a folder, not the DuckDB file)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        kind = "a list: " if isinstance(value, list) else "a mapping: " if isinstance(value, dict) else ""
        raise ConfigError(
            f"{key} must be one file path (a string such as ./spans.duckdb), got {kind}{value!r}"
        )
    if value.rstrip().endswith(("/", os.sep)):
        raise ConfigError(
            f"{key} names a folder ({value!r}): expected the DuckDB file, "
            f"e.g. {value.rstrip()}spanreel.duckdb"
        )
    return value


def check_db_file(path: Path, source: str) -> None:
    """Raise :class:`ConfigError` naming ``source`` (the setting the path came from) when the
    DuckDB file ``path`` cannot be a file: it is an existing directory, or an existing file stands
    where one of its folders would be created (that failed at start-up with a traceback)."""
    if path.is_dir():
        raise ConfigError(
            f"{source}: {str(path)!r} is a directory; expected the DuckDB file's path, "
            f"e.g. {str(path / 'spanreel.duckdb')!r}"
        )
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(
                    f"{source}: {str(parent)!r} is a file, not a folder: the database {str(path)!r} "
                    "cannot be created there"
                )
            return


def db_path_from_config(config: dict[str, Any], base_dir: Path | None = None) -> Path | None:
    """The ``path`` of the config's duckdb exporter, ``~`` expanded; relative paths are taken
    relative to ``base_dir`` (the config file's folder). The exporter is the one a traces pipeline
    (``service.pipelines.traces`` or ``traces/<name>``) lists, else the first ``duckdb``/
    ``duckdb/<name>`` with a path. ``None`` when not set. Raises :class:`ConfigError` for a path
    that is not one string (see :func:`db_path_text`)."""
    exporters = config.get("exporters") or {}
    if not isinstance(exporters, dict):
        return None
    candidates = [name for name in exporters if str(name).split("/")[0] == "duckdb"]
    listed = [name for name in _pipeline_exporters(config) if name in candidates]
    for name in listed[:1] or candidates:
        section = exporters[name]
        if not isinstance(section, dict):
            continue
        text = db_path_text(section.get("path"), f"exporters.{name}.path")
        if text is not None:
            p = Path(os.path.expanduser(text))
            if not p.is_absolute() and base_dir is not None:
                p = base_dir / p
            return p
    return None


def _pipeline_exporters(config: dict[str, Any]) -> list[Any]:
    """The exporter ids the config's traces pipelines list, in order (unvalidated: ``[]`` for a
    malformed ``service``)."""
    service = config.get("service")
    pipelines = service.get("pipelines") if isinstance(service, dict) else None
    found: list[Any] = []
    for name, pipeline in pipelines.items() if isinstance(pipelines, dict) else ():
        ids = pipeline.get("exporters") if isinstance(pipeline, dict) else None
        if str(name).split("/")[0] == "traces" and isinstance(ids, list):
            found.extend(ids)
    return found


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
