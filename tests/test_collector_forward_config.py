"""``otlp`` / ``otlphttp`` forwarding exporters in otel-config.yaml (OpenTelemetry Collector keys)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from spanreel._config import ConfigError, resolve_db_path
from spanreel.cli import main
from spanreel.collector._config import load_collector_config, parse_duration
from spanreel.collector._forward_config import ForwarderConfig, RetrySettings, parse_forwarder


def _parse(component_id: str, section: dict[str, Any], base_dir: Path | None = None) -> ForwarderConfig:
    return parse_forwarder(component_id, section, parse_duration=parse_duration, base_dir=base_dir)


def test_otlp_defaults_follow_the_otel_collector() -> None:
    cfg = _parse("otlp", {"endpoint": "collector.example:4317"})
    assert (cfg.protocol, cfg.target, cfg.compression, cfg.timeout_s) == (
        "grpc",
        "collector.example:4317",
        "gzip",
        5.0,
    )
    assert not cfg.plaintext  # TLS unless told otherwise
    assert cfg.retry == RetrySettings(True, 5.0, 30.0, 300.0, 1.5, 0.5)
    assert (cfg.queue.enabled, cfg.queue.queue_size, cfg.queue.num_consumers, cfg.queue.sizer) == (
        True,
        1000,
        10,
        "requests",
    )


def test_otlphttp_full_section() -> None:
    cfg = _parse(
        "otlphttp/upstream",
        {
            "endpoint": "https://otel.example.com:4318/",
            "headers": {"X-Api-Key": "k1", "x-retries": "3"},
            "compression": "none",
            "encoding": "json",
            "timeout": "1500ms",
            "retry_on_failure": {
                "enabled": True,
                "initial_interval": "100ms",
                "max_interval": "2s",
                "max_elapsed_time": 0,
                "multiplier": 2,
            },
            "sending_queue": {"queue_size": 64, "num_consumers": 2, "sizer": "bytes"},
        },
    )
    assert (cfg.name, cfg.protocol, cfg.target) == (
        "otlphttp/upstream",
        "http",
        "https://otel.example.com:4318/v1/traces",
    )
    assert cfg.headers == (("X-Api-Key", "k1"), ("x-retries", "3"))
    assert (cfg.compression, cfg.encoding, cfg.timeout_s) == ("none", "json", 1.5)
    assert (cfg.retry.initial_interval_s, cfg.retry.max_interval_s, cfg.retry.max_elapsed_time_s) == (
        0.1,
        2.0,
        0.0,
    )
    assert cfg.retry.multiplier == 2.0
    assert (cfg.queue.queue_size, cfg.queue.num_consumers, cfg.queue.sizer) == (64, 2, "bytes")
    assert "k1" not in repr(cfg)  # header values (credentials) stay out of logs


def test_traces_endpoint_is_used_as_is_and_http_scheme_is_plaintext() -> None:
    cfg = _parse("otlphttp", {"traces_endpoint": "http://127.0.0.1:9/custom/path", "endpoint": "http://x:1"})
    assert cfg.target == "http://127.0.0.1:9/custom/path" and cfg.plaintext


@pytest.mark.parametrize(
    ("endpoint", "tls", "target", "plaintext"),
    [
        ("127.0.0.1:4317", {"insecure": True}, "127.0.0.1:4317", True),
        ("http://127.0.0.1:4317", {}, "127.0.0.1:4317", True),
        ("https://otel.example.com", {"insecure": True}, "otel.example.com:443", False),
        ("[::1]:4317", {"insecure": True}, "[::1]:4317", True),
        # gRPC naming syntax, as the Collector: passed on as written, TLS unless tls.insecure
        ("dns:///otel-gateway-headless:4317", {}, "dns:///otel-gateway-headless:4317", False),
        ("dns:///otel-gateway-headless:4317", {"insecure": True}, "dns:///otel-gateway-headless:4317", True),
        ("dns://10.0.0.53:53/gateway:4317", {"insecure": True}, "dns://10.0.0.53:53/gateway:4317", True),
        ("dns:gateway:4317", {}, "dns:gateway:4317", False),
        ("ipv4:10.0.0.1:4317,10.0.0.2:4317", {}, "ipv4:10.0.0.1:4317,10.0.0.2:4317", False),
        ("ipv6:[::1]:4317", {"insecure": True}, "ipv6:[::1]:4317", True),
        ("unix:///run/otel.sock", {"insecure": True}, "unix:///run/otel.sock", True),
        ("unix:otel.sock", {}, "unix:otel.sock", False),
        ("unix-abstract:otel", {"insecure": True}, "unix-abstract:otel", True),
    ],
)
def test_grpc_endpoint_forms(endpoint: str, tls: dict[str, Any], target: str, plaintext: bool) -> None:
    cfg = _parse("otlp", {"endpoint": endpoint, "tls": tls})
    assert (cfg.target, cfg.plaintext) == (target, plaintext)
    assert cfg.headers == ()


def test_grpc_metadata_keys_are_lower_cased() -> None:
    assert _parse("otlp", {"endpoint": "h:1", "headers": {"X-Tenant": "a"}}).headers == (("x-tenant", "a"),)


def test_insecure_skip_verify_is_moot_for_plaintext_grpc() -> None:
    for section in ({"endpoint": "h:1", "tls": {"insecure": True}}, {"endpoint": "http://h:1", "tls": {}}):
        section["tls"]["insecure_skip_verify"] = True  # type: ignore[index]
        assert _parse("otlp", section).plaintext


def test_tls_files_resolve_against_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    cfg = _parse("otlp", {"endpoint": "h:1", "tls": {"ca_file": "ca.pem"}}, base_dir=tmp_path)
    assert cfg.tls.ca_file == tmp_path / "ca.pem"


@pytest.mark.parametrize(
    ("component_id", "section", "message"),
    [
        ("otlp", {}, r"exporters\.otlp\.endpoint is required"),
        ("otlphttp", {"endpoint": "collector:4318"}, r"exporters\.otlphttp\.endpoint: expected an http"),
        ("otlp", {"endpoint": "nohost"}, r"exporters\.otlp\.endpoint: expected host:port"),
        *(
            ("otlp", {"endpoint": bad}, r"exporters\.otlp\.endpoint: expected host:port, .*dns:")
            for bad in (
                "dns:///gateway",  # no port: gRPC's default 443 is not OTLP's
                "dns://8.8.8.8",  # no name after the DNS server
                "dns:4317",  # a host named dns? gRPC reads the dns scheme
                "ipv4:300.0.0.1:4317",
                "ipv4:[::1]:4317",
                "ipv6:::1",
                "unix:",
                "unix://run/otel.sock",  # an authority, not an absolute path
                "xds:///gateway",
            )
        ),
        ("otlp", {"endpoint": "h:1", "encoding": "json"}, r"exporters\.otlp\.encoding: unknown key"),
        ("otlp", {"endpoint": "h:1", "compression": "zstd"}, r"compression must be gzip or none, got 'zstd'"),
        ("otlp", {"endpoint": "h:1", "timeout": "soon"}, r"exporters\.otlp\.timeout must be a duration"),
        ("otlp", {"endpoint": "h:1", "headers": {"bad name": "v"}}, r"invalid header name"),
        ("otlp", {"endpoint": "h:1", "headers": {"k": "a\nb"}}, r"one line"),
        # passed --check-config, then the start-up (otlphttp) or every export (otlp) failed
        ("otlphttp", {"endpoint": "https://h:1", "headers": {"x-api-key": "clé"}}, r"printable ASCII"),
        ("otlp", {"endpoint": "h:1", "headers": {"x-api-key": "clé-ü"}}, r"printable ASCII"),
        (
            "otlphttp",
            {"endpoint": "https://h:1", "headers": {"x(key)": "v"}},
            r"invalid header name 'x\(key\)'",
        ),
        ("otlp", {"endpoint": "h:1", "headers": {"grpc-timeout": "1S"}}, r"invalid gRPC metadata key"),
        ("otlp", {"endpoint": "h:1", "headers": {"x-id-bin": "AAEC"}}, r"binary metadata"),
        ("otlp", {"endpoint": "h:1", "tls": {"ca_file": "missing.pem"}}, r"tls\.ca_file: no such file"),
        (
            "otlp",
            {"endpoint": "h:1", "tls": {"insecure_skip_verify": True}},
            r"tls\.insecure_skip_verify is not supported for otlp \(gRPC\)",
        ),
        (
            "otlp",
            {"endpoint": "https://h:1", "tls": {"insecure": True, "insecure_skip_verify": True}},
            r"tls\.insecure_skip_verify is not supported",
        ),
        (
            "otlp",
            {"endpoint": "h:1", "retry_on_failure": {"jitter": 1}},
            r"retry_on_failure\.jitter: unknown key",
        ),
        (
            "otlp",
            {"endpoint": "h:1", "retry_on_failure": {"initial_interval": "10s", "max_interval": "1s"}},
            r"initial_interval ≤ max_interval",
        ),
        (
            "otlp",
            {"endpoint": "h:1", "sending_queue": {"queue_size": 0}},
            r"queue_size must be an integer ≥ 1",
        ),
        ("otlp", {"endpoint": "h:1", "sending_queue": {"sizer": "spans"}}, r"sizer must be one of"),
        ("otlp", {"endpoint": "h:1", "sending_queue": {"enabled": "yes"}}, r"enabled must be true or false"),
    ],
)
def test_errors_name_the_key(
    component_id: str, section: dict[str, Any], message: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=message):
        _parse(component_id, section, base_dir=tmp_path)


_CONFIG = """
receivers:
  otlp:
    protocols:
      grpc: {endpoint: 127.0.0.1:0}
exporters:
  duckdb: {path: spans.duckdb}
  otlp/tempo:
    endpoint: ${env:TEMPO_ENDPOINT:-127.0.0.1:4317}
    tls: {insecure: true}
  otlphttp:
    endpoint: http://127.0.0.1:4318
    headers: {authorization: "Bearer ${env:UPSTREAM_TOKEN}"}
  otlphttp/unused:
    endpoint: not validated because the pipeline does not use it
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [duckdb, otlp/tempo, otlphttp]
"""


def test_pipeline_with_duckdb_and_forwarders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPANREEL_DB", raising=False)
    monkeypatch.setenv("UPSTREAM_TOKEN", "t0k")
    path = tmp_path / "otel-config.yaml"
    path.write_text(_CONFIG)
    cfg = load_collector_config(path)
    assert cfg.db_path == tmp_path / "spans.duckdb"
    assert [(f.name, f.protocol, f.target) for f in cfg.forwarders] == [
        ("otlp/tempo", "grpc", "127.0.0.1:4317"),
        ("otlphttp", "http", "http://127.0.0.1:4318/v1/traces"),
    ]
    assert cfg.forwarders[1].headers == (("authorization", "Bearer t0k"),)


def test_every_traces_pipeline_is_read_and_the_pipeline_names_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second ``traces/<name>`` pipeline was ignored (its forwarder never used, an undefined id
    in it never reported), and the database was the first duckdb exporter defined, not the one
    the pipeline lists (the collector, ``sql`` and ``prune`` all opened the wrong file)."""
    monkeypatch.delenv("SPANREEL_DB", raising=False)
    text = """
receivers:
  otlp: {protocols: {http: {endpoint: 127.0.0.1:0}}}
exporters:
  duckdb/old: {path: old.duckdb}
  duckdb/new: {path: new.duckdb}
  otlphttp/upstream: {endpoint: http://127.0.0.1:4318}
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [duckdb/new]}
    traces/forward: {receivers: [otlp], exporters: [otlphttp/upstream]}
"""
    path = tmp_path / "otel-config.yaml"
    path.write_text(text)
    cfg = load_collector_config(path)
    assert cfg.db_path == tmp_path / "new.duckdb"
    assert resolve_db_path(None, str(path)) == tmp_path / "new.duckdb"  # what sql / prune open
    assert [f.name for f in cfg.forwarders] == ["otlphttp/upstream"]
    path.write_text(text.replace("[otlphttp/upstream]}", "[otlphttp/upstream, nosuch]}"))
    with pytest.raises(
        ConfigError, match=r"service\.pipelines\.traces/forward\.exporters refers to 'nosuch'"
    ):
        load_collector_config(path)
    path.write_text(text.replace("[otlphttp/upstream]}", "[duckdb/old]}"))
    with pytest.raises(ConfigError, match="one duckdb exporter"):
        load_collector_config(path)


def test_check_config_shows_where_spans_are_forwarded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--check-config`` prints each forwarding exporter (it left them out), never a header's
    value; the help names the exporters."""
    monkeypatch.delenv("SPANREEL_DB", raising=False)
    monkeypatch.setenv("UPSTREAM_TOKEN", "t0k")
    path = tmp_path / "otel-config.yaml"
    path.write_text(_CONFIG)
    result = CliRunner().invoke(main, ["collector", "--check-config", "--config", str(path)])
    assert result.exit_code == 0, result.output
    forward = [line.strip() for line in result.output.splitlines() if line.strip().startswith("forward ")]
    assert len(forward) == 2
    assert forward[0].startswith("forward         otlp/tempo: OTLP/gRPC 127.0.0.1:4317")
    assert "otlphttp: OTLP/HTTP proto http://127.0.0.1:4318/v1/traces (plaintext" in forward[1]
    assert "headers authorization" in forward[1] and "t0k" not in result.output
    help_text = CliRunner().invoke(main, ["collector", "--help"]).output
    assert "exporters.otlphttp" in help_text
    # The example endpoint matches the default protocol (http/protobuf → 4318; 4317 needs grpc).
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318" in help_text
    assert "4317 OTEL_EXPORTER_OTLP_PROTOCOL=grpc" in help_text


def test_default_config_forwards_nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_collector_config(None, db=tmp_path / "x.duckdb").forwarders == ()
    result = CliRunner().invoke(main, ["collector", "--check-config", "--db", str(tmp_path / "x.duckdb")])
    assert "forward         nowhere" in result.output


def test_shipped_config_example_parses(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The commented forwarding example in the repository's otel-config.yaml is valid once uncommented."""
    shipped = (Path(__file__).parent.parent / "otel-config.yaml").read_text()
    # YAML lines of the example are commented as "#key" / "#  key"; prose comments as "# Text".
    lines = [re.sub(r"^(\s*)#(?! \S)", r"\1", line) for line in shipped.splitlines()]
    assert sum(a != b for a, b in zip(lines, shipped.splitlines(), strict=True)) >= 5
    uncommented = "\n".join(lines).replace("[duckdb]", "[duckdb, otlphttp/upstream]")
    monkeypatch.delenv("SPANREEL_DB", raising=False)
    monkeypatch.setenv("UPSTREAM_API_KEY", "k")
    path = tmp_path / "otel-config.yaml"
    path.write_text(uncommented)
    cfg = load_collector_config(path, db=tmp_path / "x.duckdb")
    assert [f.name for f in cfg.forwarders] == ["otlphttp/upstream"]


def test_shipped_config_uses_the_default_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The shipped otel-config.yaml named ~/.local/share/… itself, so from the clone's root every
    command ignored $XDG_DATA_HOME, unlike everywhere else ("built-in defaults equal to the
    shipped otel-config.yaml")."""
    from spanreel._config import resolve_db_path

    monkeypatch.delenv("SPANREEL_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    shipped = Path(__file__).parent.parent / "otel-config.yaml"
    expected = tmp_path / "data" / "spanreel" / "spanreel.duckdb"
    assert resolve_db_path(config_path=str(shipped)) == expected
    assert load_collector_config(shipped).db_path == expected
