"""``spanreel collector --check-config`` and the start-up config loading refuse configs that used
to pass and then failed or misbehaved at run time; each error names the file, the key, what is
wrong and what is expected (one line, no traceback)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import clean_env

from spanreel._config import ConfigError
from spanreel.cli import main
from spanreel.collector import load_collector_config

_CONFIG = """\
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "GRPC"}
      http: {endpoint: "HTTP"}
exporters:
  duckdb:
    path: spans.duckdb
    query_endpoint: "QUERY"
EXTRA
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [duckdb]}
"""


def _config(
    grpc: str = "127.0.0.1:0", http: str = "127.0.0.1:0", query: str = "127.0.0.1:0", extra: str = ""
) -> str:
    return (
        _CONFIG.replace("GRPC", grpc).replace("HTTP", http).replace("QUERY", query).replace("EXTRA\n", extra)
    )


@pytest.fixture(autouse=True)
def _no_db_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPANREEL_DB", raising=False)


def _check(path: Path) -> tuple[int, str]:
    """``spanreel collector --check-config --config path``: (exit code, output)."""
    result = CliRunner().invoke(main, ["collector", "--check-config", "--config", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def _refused(tmp_path: Path, text: str, message: str) -> str:
    """Assert that the loader and ``--check-config`` both refuse ``text`` with ``message`` (a
    regex); return the CLI's output."""
    path = tmp_path / "otel-config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_collector_config(path)
    code, output = _check(path)
    assert code == 1, output
    assert output.startswith(f"Error: configuration error in {path}: "), output
    assert "Traceback" not in output
    assert len(output.strip().splitlines()) == 1, output
    assert re.search(message, output), output
    return output


# -- the file is named ------------------------------------------------------------------------------


def test_check_config_and_start_up_name_the_file(tmp_path: Path) -> None:
    """The error said ``configuration error: <key>…`` without the file (with ``--config`` in a
    service definition, or ``./otel-config.yaml`` found implicitly, the user had to guess)."""
    _refused(tmp_path, _config() + "bogus: 1\n", r"bogus: unknown top-level key")
    # the collector itself (not --check-config): the same one line, exit code 1, no traceback
    run = subprocess.run(
        [sys.executable, "-m", "spanreel", "collector", "--config", str(tmp_path / "otel-config.yaml")],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert run.stderr == (
        f"Error: configuration error in {tmp_path / 'otel-config.yaml'}: bogus: unknown top-level key "
        "(supported: receivers, processors, exporters, extensions, service)\n"
    )


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "otel-config.yaml"
    path.write_text(text)
    return path


# -- 1. listeners on one port, hosts spelled differently ----------------------------------------


@pytest.mark.parametrize(
    ("grpc", "http", "query", "port"),
    [
        ("localhost:4317", "127.0.0.1:4317", "127.0.0.1:0", 4317),
        ("127.0.0.1:4317", "0.0.0.0:4317", "127.0.0.1:0", 4317),
        ("[::]:4317", "127.0.0.1:4317", "127.0.0.1:0", 4317),
        ("[::1]:4317", "localhost:4317", "127.0.0.1:0", 4317),
        ("127.0.0.1:4317", "127.0.0.1:4318", "localhost:4318", 4318),
        (":4317", "127.0.0.1:4318", "localhost:4317", 4317),
        ("[0:0::1]:4317", "[::1]:4317", "127.0.0.1:0", 4317),
        ("LOCALHOST:4317", "localhost:4317", "127.0.0.1:0", 4317),
    ],
)
def test_listeners_on_one_port_clash_whatever_the_spelling_of_the_host(
    grpc: str, http: str, query: str, port: int, tmp_path: Path
) -> None:
    """Only identical host strings (or 0.0.0.0 / ::) were a clash: ``localhost:4317`` next to
    ``127.0.0.1:4317`` passed ``--check-config``, then the second listener could not bind."""
    _refused(tmp_path, _config(grpc, http, query), rf"both listen on port {port}")


@pytest.mark.parametrize(
    ("grpc", "http"),
    [
        ("127.0.0.1:4317", "127.0.0.2:4317"),  # two loopback addresses
        ("127.0.0.1:4317", "127.0.0.1:4318"),
        ("0.0.0.0:0", "0.0.0.0:0"),  # port 0: a free port each
        ("localhost:0", "127.0.0.1:0"),
    ],
)
def test_distinct_listeners_pass(grpc: str, http: str, tmp_path: Path) -> None:
    cfg = load_collector_config(_write(tmp_path, _config(grpc, http)))
    assert (cfg.grpc_endpoint, cfg.http_endpoint) == (grpc, http)


def test_a_clash_with_a_command_line_flag_names_the_flag(tmp_path: Path) -> None:
    path = _write(tmp_path, _config("127.0.0.1:4317", "127.0.0.1:4318"))
    with pytest.raises(ConfigError, match=r"--http-endpoint \(localhost:4317\) and receivers\.otlp"):
        load_collector_config(path, http_endpoint="localhost:4317")


# -- 2. unknown keys in components no pipeline lists --------------------------------------------


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("  duckdb/spare: {bogus: 1}\n", r"exporters\.duckdb/spare\.bogus"),
        ("  duckdb/spare: {auth: {authenticatr: x}}\n", r"exporters\.duckdb/spare\.auth\.authenticatr"),
        ("  otlphttp/old: {endpoint: 'http://h:4318', bogus: 1}\n", r"exporters\.otlphttp/old\.bogus"),
        (
            "  otlp/old: {endpoint: 'h:4317', sending_queue: {storage: file_storage}}\n",
            r"exporters\.otlp/old\.sending_queue\.storage",
        ),
        ("  otlp/old: {endpoint: 'h:4317', tls: {insecure: true, ca: x}}\n", r"exporters\.otlp/old\.tls\.ca"),
        (
            "  otlp/old: {retry_on_failure: {enabled: true, max_elapsed: 1s}}\n",
            r"exporters\.otlp/old\.retry_on_failure\.max_elapsed",
        ),
    ],
)
def test_unknown_keys_in_unused_exporters_are_reported(extra: str, key: str, tmp_path: Path) -> None:
    """An exporter no pipeline lists was not looked into: a misspelt key passed until the day it
    was added to a pipeline (the OpenTelemetry Collector refuses it in any defined component)."""
    output = _refused(tmp_path, _config(extra=extra), rf"{key}: unknown key \(supported: ")
    assert "is in no pipeline, but every defined component is checked" in output


def test_unknown_keys_in_unused_receivers_and_in_processors_are_reported(tmp_path: Path) -> None:
    spare = "  otlp/spare:\n    protocols:\n      grpc: {endpoint: 127.0.0.1:0, max_recv_msg_size: 4}\n"
    text = _config().replace("exporters:\n", spare + "exporters:\n", 1)
    output = _refused(
        tmp_path, text, r"receivers\.otlp/spare\.protocols\.grpc\.max_recv_msg_size: unknown key"
    )
    assert "receivers.otlp/spare is in no pipeline" in output
    text = _config().replace(
        '      http: {endpoint: "127.0.0.1:0"}\n',
        '      http: {endpoint: "127.0.0.1:0"}\n  otlp/spare: {protocols: {http: {tls: {certfile: a}}}}\n',
    )
    _refused(tmp_path, text, r"receivers\.otlp/spare\.protocols\.http\.tls\.certfile: unknown key")
    # the batch processor is accepted without effect, but its keys are the Collector's
    batch = "processors:\n  batch: {timeout: 1s, send_batch_size: 512}\nexporters:\n"
    ok = _config().replace("exporters:\n", batch, 1)
    load_collector_config(_write(tmp_path, ok))
    _refused(tmp_path, ok.replace("timeout:", "timeot:"), r"processors\.batch\.timeot: unknown key")


def test_values_of_unused_components_are_not_checked(tmp_path: Path) -> None:
    """Only the keys: an unused exporter's endpoint or TLS file may be left for later."""
    extra = (
        "  otlphttp/later: {endpoint: to be decided, tls: {ca_file: missing.pem}}\n"
        "  duckdb/later: {ttl: whenever}\n"
    )
    cfg = load_collector_config(_write(tmp_path, _config(extra=extra)))
    assert cfg.forwarders == ()


# -- 3. the database path --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "message"),
    [
        # became a file named "['a', 'b']"
        ("[a, b]", r"exporters\.duckdb\.path must be one file path .*got a list: \['a', 'b'\]"),
        ("{file: a}", r"exporters\.duckdb\.path must be one file path .*got a mapping: "),
        ("true", r"exporters\.duckdb\.path must be one file path .*got True"),
        ("data/", r"exporters\.duckdb\.path names a folder \('data/'\): expected the DuckDB file"),
        # an existing folder: DuckDB failed at start-up ("Is a directory")
        (
            "existing",
            r"exporters\.duckdb\.path: '.*existing' is a directory; expected the DuckDB file's path",
        ),
        # a file where a folder would be created: a traceback at start-up
        ("a_file/spans.duckdb", r"exporters\.duckdb\.path: '.*a_file' is a file, not a folder"),
    ],
)
def test_a_database_path_that_cannot_be_a_file_is_refused(path: str, message: str, tmp_path: Path) -> None:
    (tmp_path / "existing").mkdir()
    (tmp_path / "a_file").write_text("")
    _refused(tmp_path, _config().replace("path: spans.duckdb", f"path: {path}"), message)
    assert not (tmp_path / "['a', 'b']").exists()


def test_the_database_path_from_the_environment_or_flag_is_checked_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, _config())
    monkeypatch.setenv("SPANREEL_DB", str(tmp_path))
    with pytest.raises(ConfigError, match=r"^SPANREEL_DB: '.*' is a directory"):
        load_collector_config(path)
    with pytest.raises(ConfigError, match=r"^--db: '.*' is a directory"):
        load_collector_config(path, db=tmp_path)
    assert load_collector_config(path, db=tmp_path / "ok.duckdb").db_path == tmp_path / "ok.duckdb"
    # `spanreel sql` and the other commands read the same key: a list is an error there too
    monkeypatch.delenv("SPANREEL_DB")
    path.write_text(_config().replace("path: spans.duckdb", "path: [a, b]"))
    result = CliRunner().invoke(main, ["sql", "SELECT 1", "--config", str(path)])
    assert result.exit_code == 1 and "exporters.duckdb.path must be one file path" in result.output


# -- 4. the retention (ttl) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ttl", "message"),
    [
        # equalled 0, so it silently kept everything
        ("false", r"exporters\.duckdb\.ttl: expected a duration like 30d, got the boolean false \(YAML"),
        ("off", r"exporters\.duckdb\.ttl: expected a duration like 30d, got the boolean false"),
        ("true", r"exporters\.duckdb\.ttl: expected a duration like 30d, got the boolean true"),
        # 30 seconds here, 30 ns in the OpenTelemetry Collector: never the 30 days meant
        (
            "30",
            r"exporters\.duckdb\.ttl: expected a duration with a unit like 30d .*, got the bare number 30",
        ),
        ("[30d]", r"exporters\.duckdb\.ttl must be a duration such as 30d"),
        ("-1d", r"exporters\.duckdb\.ttl must be a duration such as 30d"),
    ],
)
def test_a_ttl_that_is_not_a_duration_is_refused(ttl: str, message: str, tmp_path: Path) -> None:
    _refused(tmp_path, _config(extra=f"    ttl: {ttl}\n"), message)


@pytest.mark.parametrize(
    ("ttl", "seconds"), [("0", None), ("0s", None), ("''", None), ("~", None), ("30d", 30 * 86400.0)]
)
def test_ttl_off_and_on(ttl: str, seconds: float | None, tmp_path: Path) -> None:
    assert load_collector_config(_write(tmp_path, _config(extra=f"    ttl: {ttl}\n"))).ttl_s == seconds


def test_a_ttl_from_the_environment_is_read_as_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, _config(extra="    ttl: ${env:SR_TTL}\n"))
    monkeypatch.setenv("SR_TTL", "false")
    with pytest.raises(ConfigError, match="got the boolean false"):
        load_collector_config(path)
    monkeypatch.setenv("SR_TTL", "")
    assert load_collector_config(path).ttl_s is None


def test_an_env_default_applies_only_when_the_variable_is_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the OpenTelemetry Collector's envprovider (``os.LookupEnv``): ``${env:VAR:-default}``
    gives the default when VAR is unset, and VAR's empty text when it is set to "". The default
    used to apply to an empty VAR too, so blanking RETENTION to turn retention off still deleted
    traces after 30 days."""
    path = _write(tmp_path, _config(extra="    ttl: ${env:SR_RETENTION:-30d}\n"))
    monkeypatch.delenv("SR_RETENTION", raising=False)
    assert load_collector_config(path).ttl_s == 30 * 86400
    monkeypatch.setenv("SR_RETENTION", "")
    assert load_collector_config(path).ttl_s is None
    code, output = _check(path)
    assert code == 0 and "retention       keep everything" in output, output


# -- 5. metrics_log_interval -----------------------------------------------------------------------


@pytest.mark.parametrize("interval", ["1ns", "999ms", "0.5", "1us"])
def test_a_metrics_log_interval_under_a_second_is_refused(interval: str, tmp_path: Path) -> None:
    """``1ns`` logged the counters in a busy loop."""
    _refused(
        tmp_path,
        _config(extra=f"    metrics_log_interval: {interval}\n"),
        r"exporters\.duckdb\.metrics_log_interval must be 0s \(off\) or at least 1s, got",
    )


@pytest.mark.parametrize(("interval", "seconds"), [("0s", 0.0), ("0", 0.0), ("1s", 1.0), ("5m", 300.0)])
def test_metrics_log_interval_off_or_a_second_and_more(interval: str, seconds: float, tmp_path: Path) -> None:
    path = _write(tmp_path, _config(extra=f"    metrics_log_interval: {interval}\n"))
    assert load_collector_config(path).metrics_log_interval_s == seconds


# -- other values that passed the check and failed at run time ------------------------------------

_UP = "exporters: [duckdb, otlp/up]"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # every query failed with a traceback in its timer thread (OverflowError) and ran unbounded
        (
            _config(extra="    query_timeout: 1000000d\n"),
            r"exporters\.duckdb\.query_timeout must be at most 365d \(0s: no limit\)",
        ),
        (
            _config(extra="  otlp/up: {endpoint: 'h:4317', timeout: 400000d}\n").replace(
                "exporters: [duckdb]", _UP
            ),
            r"exporters\.otlp/up\.timeout must be at most 365d",
        ),
        (
            _config(
                extra="  otlp/up: {endpoint: 'h:4317', retry_on_failure: {max_interval: 999999d}}\n"
            ).replace("exporters: [duckdb]", _UP),
            r"exporters\.otlp/up\.retry_on_failure\.max_interval must be at most 365d",
        ),
        # the forwarder's target kept the digits as written: gRPC could not connect to it
        (
            _config(extra="  otlp/up: {endpoint: 'h:\u0664\u0663\u0661\u0667'}\n").replace(
                "exporters: [duckdb]", _UP
            ),
            r"exporters\.otlp/up\.endpoint: expected host:port",
        ),
        # a number token (YAML reads 0123 as 83) was reported as an empty token
        (
            "extensions:\n  bearertokenauth: {token: 0123}\n" + _config(),
            r"extensions\.bearertokenauth\.token must be a string, got int 83: quote it",
        ),
    ],
)
def test_other_values_that_failed_at_run_time(text: str, message: str, tmp_path: Path) -> None:
    _refused(tmp_path, text, message)


@pytest.mark.parametrize(
    "endpoint", ["127.0.0.1:4_317", "127.0.0.1:+4317", "127.0.0.1:\u0664\u0663\u0661\u0667", "[]:4317"]
)
def test_a_listen_port_is_ascii_digits(endpoint: str, tmp_path: Path) -> None:
    _refused(tmp_path, _config(grpc=endpoint), r"receivers\.otlp\.protocols\.grpc\.endpoint: ")


def test_a_year_long_timeout_is_still_accepted(tmp_path: Path) -> None:
    cfg = load_collector_config(_write(tmp_path, _config(extra="    query_timeout: 365d\n")))
    assert cfg.query_timeout_s == 365 * 86400


# -- forwarder header values that YAML types ------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "got"),
    [("0123", "the int 83"), ("1_000", "the int 1000"), ("1:30", "the int 90"), ("yes", "the bool True")],
)
def test_a_header_value_yaml_reads_as_a_number_is_refused(value: str, got: str, tmp_path: Path) -> None:
    """An unquoted ``x-scope-orgid: 0123`` passed the check and was sent upstream as ``83`` (YAML
    1.1: octal; ``1_000`` as ``1000``, ``1:30`` as ``90``): another tenant's id. Refused, naming the
    header and saying to quote it, at ``--check-config`` and when the collector starts; quoted, the
    text is sent as written."""
    forward = f"  otlphttp/up:\n    endpoint: http://127.0.0.1:9\n    headers: {{x-scope-orgid: {value}}}\n"
    text = _config(extra=forward).replace("exporters: [duckdb]", "exporters: [duckdb, otlphttp/up]")
    message = rf"exporters\.otlphttp/up\.headers\.x-scope-orgid must be a string, got {got}: quote the value"
    path = tmp_path / "otel-config.yaml"
    _refused(tmp_path, text, message)
    run = subprocess.run(
        [sys.executable, "-m", "spanreel", "collector", "--config", str(path)],
        env=clean_env(), capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 1 and re.search(message, run.stderr), run.stderr
    path.write_text(text.replace(f"x-scope-orgid: {value}", f'x-scope-orgid: "{value}"'))
    assert load_collector_config(path).forwarders[0].headers == (("x-scope-orgid", value),)
