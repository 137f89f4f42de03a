"""Security and operations, end to end against `spanreel collector` subprocesses: bearer-token auth
on OTLP (gRPC + HTTP) and the query API, TLS on both receivers (a self-signed certificate made in
the test), SQL escape attempts on the query API, `/healthz` and the counters, `--check-config`."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import secrets
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from click.testing import CliRunner
from conftest import CollectorProcess, clean_env, start_collector
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanreel.cli import main
from spanreel.collector import QueryError, run_query
from spanreel.collector._client import CLIENT_CERT_ENV, CLIENT_KEY_ENV, OWNER_KEY_HEADER, TOKEN_ENV
from spanreel.collector._security import pinned_client_context

TOKEN = "s3cr3t-token-for-tests"
EXPORT_PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def write_pem(
    folder: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    """``name.crt`` and ``name.key`` (PKCS#8, unencrypted) in ``folder``."""
    cert_file, key_file = folder / f"{name}.crt", folder / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return write_pem(folder, "server", cert, key)


SECURE_CONFIG = f"""
extensions:
  bearertokenauth:
    token: {TOKEN}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
        auth: {{authenticator: bearertokenauth}}
        tls: {{cert_file: server.crt, key_file: server.key}}
      http:
        endpoint: 127.0.0.1:0
        auth: {{authenticator: bearertokenauth}}
        tls: {{cert_file: server.crt, key_file: server.key}}
exporters:
  duckdb:
    auth: {{authenticator: bearertokenauth}}
service:
  extensions: [bearertokenauth]
  pipelines:
    traces: {{receivers: [otlp], exporters: [duckdb]}}
"""


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CollectorProcess, Path]]:
    tmp = tmp_path_factory.mktemp("secure")
    cert_file, _ = _self_signed(tmp)
    (tmp / "secure.yaml").write_text(SECURE_CONFIG)
    # The receivers' endpoints come from the config (TLS + auth); the conftest helper's
    # --grpc-endpoint/--http-endpoint 127.0.0.1:0 only override the addresses.
    with start_collector(tmp / "spans.duckdb", "--config", str(tmp / "secure.yaml")) as running:
        yield running, cert_file


def _spans(service: str) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("sec").start_as_current_span("root"):
        pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def test_tls_and_bearer_token_on_both_receivers(
    secure: tuple[CollectorProcess, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    running, cert_file = secure
    info = running.info
    credentials = grpc.ssl_channel_credentials(root_certificates=cert_file.read_bytes())
    good = GrpcExporter(
        endpoint=f"https://{info['grpc_endpoint']}",
        credentials=credentials,
        headers={"authorization": f"Bearer {TOKEN}"},
    )
    assert good.export(_spans("tls-grpc")) == SpanExportResult.SUCCESS
    good.shutdown()
    http_url = f"https://{info['http_endpoint']}/v1/traces"
    # requests lets REQUESTS_CA_BUNDLE override the session's CA file (psf/requests#3829).
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    http_good = HttpExporter(
        endpoint=http_url, certificate_file=str(cert_file), headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert http_good.export(_spans("tls-http")) == SpanExportResult.SUCCESS
    http_good.shutdown()

    # Wrong or missing tokens: UNAUTHENTICATED / 401, nothing stored.
    with grpc.secure_channel(info["grpc_endpoint"], credentials) as channel:
        export = channel.unary_unary(EXPORT_PATH)
        for metadata in ((), (("authorization", f"Bearer {TOKEN}x"),), (("authorization", TOKEN),)):
            with pytest.raises(grpc.RpcError) as refused:
                export(b"", metadata=metadata, timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    context = ssl.create_default_context(cafile=str(cert_file))
    with httpx.Client(verify=context) as client:
        for headers in ({}, {"Authorization": "Bearer nope"}):
            r = client.post(http_url, content=b"", headers={"Content-Type": "application/json", **headers})
            assert r.status_code == 401 and r.json()["code"] == 16  # google.rpc.Code.UNAUTHENTICATED
            assert r.headers["www-authenticate"].startswith("Bearer")
    # Plaintext is refused by a TLS receiver.
    with pytest.raises(httpx.HTTPError):
        httpx.post(f"http://{info['http_endpoint']}/v1/traces", content=b"", timeout=5)

    # Query API: /healthz is open, everything else wants the token; the client sends SPANREEL_TOKEN.
    url = info["query_url"]
    assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
    assert httpx.get(f"{url}/api/health").status_code == 401
    assert httpx.post(f"{url}/api/query", json={"sql": "SELECT 1"}).status_code == 401
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(QueryError, match=TOKEN_ENV):
        run_query("SELECT 1", running.db)
    monkeypatch.setenv(TOKEN_ENV, "wrong")
    with pytest.raises(QueryError, match="refused the bearer token"):
        run_query("SELECT 1", running.db)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    rows = run_query("SELECT service_name, count(*) FROM spans GROUP BY 1 ORDER BY 1", running.db).rows
    assert rows == [["tls-grpc", 1], ["tls-http", 1]]
    health = httpx.get(f"{url}/api/health", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert health["unauthenticated_requests"] >= 8
    # The CLI query client sends it too.
    command = ["sql", "SELECT count(*) AS n FROM spans", "--db", str(running.db), "--json"]
    proc = subprocess.run(
        [sys.executable, "-m", "spanreel", *command],
        env=clean_env(**{TOKEN_ENV: TOKEN}), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert '"n"' in proc.stdout and "2" in proc.stdout


def test_bearer_scheme_is_case_insensitive(secure: tuple[CollectorProcess, Path]) -> None:
    """The auth-scheme is case-insensitive (RFC 9110 §11.1): ``bearer <token>`` is the same
    credential as ``Bearer <token>`` on both receivers and the query API; the token is not."""
    running, cert_file = secure
    info = running.info
    accepted = (f"bearer {TOKEN}", f"BEARER {TOKEN}", f"Bearer  {TOKEN}")
    refused = (f"bearer {TOKEN.upper()}", f"Basic {TOKEN}", f"bearer{TOKEN}", f"{TOKEN} Bearer")
    credentials = grpc.ssl_channel_credentials(root_certificates=cert_file.read_bytes())
    with grpc.secure_channel(info["grpc_endpoint"], credentials) as channel:
        export = channel.unary_unary(EXPORT_PATH)
        for value in accepted:
            export(b"", metadata=(("authorization", value),), timeout=10)
        for value in refused:
            with pytest.raises(grpc.RpcError) as error:
                export(b"", metadata=(("authorization", value),), timeout=10)
            assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED, value
    http_url = f"https://{info['http_endpoint']}/v1/traces"
    query_url = f"{info['query_url']}/api/query"
    with httpx.Client(verify=ssl.create_default_context(cafile=str(cert_file))) as client:
        for value, status in [*((v, 200) for v in accepted), *((v, 401) for v in refused)]:
            headers = {"Content-Type": "application/json", "Authorization": value}
            assert client.post(http_url, content=b"{}", headers=headers).status_code == status, value
            query = httpx.post(query_url, json={"sql": "SELECT 1"}, headers={"Authorization": value})
            assert query.status_code == status, value


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_csv_auto('/etc/hostname')",
        "SELECT * FROM read_json('/etc/hostname')",
        "SELECT * FROM read_parquet('/tmp/x.parquet')",
        "SELECT * FROM read_blob('/etc/passwd')",
        "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM 'https://example.com/data.csv'",
        "SELECT * FROM read_csv('https://example.com/data.csv')",
        "SELECT * FROM '/etc/passwd'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "COPY (SELECT 1) TO '/tmp/spanreel-escape.csv'",
        "EXPORT DATABASE '/tmp/spanreel-escape'",
        "ATTACH '/tmp/spanreel-escape.duckdb' AS x",
        "ATTACH ':memory:' AS x",
        "PRAGMA enable_external_access",
        "SET enable_external_access = true",
        "SET GLOBAL enable_external_access = true",
        "RESET enable_external_access",
        "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
        "CALL pragma_version(); DELETE FROM spans",
        "WITH x AS (SELECT 1) DELETE FROM spans",
        "DROP TABLE spans",
        "CHECKPOINT",
        "VACUUM",
        "DETACH memory",
        "SELECT * FROM duckdb_secrets()",
        # table functions changing the database's settings inside a SELECT: the first aborted
        # the collector process (SIGABRT); enable_logging(level='trace') kept logs forever
        "SELECT * FROM enable_logging(storage='file', storage_path='/tmp/spanreel-escape-log')",
        "SELECT * FROM enable_logging(level='trace')",
        "SELECT * FROM enable_profiling()",
    ],
)
def test_query_api_escape_attempts(collector_sql: CollectorProcess, sql: str) -> None:
    url = collector_sql.info["query_url"]
    r = httpx.post(f"{url}/api/query", json={"sql": sql})
    if r.status_code == 200:
        # Only harmless metadata may pass (duckdb_secrets() lists nothing: no secrets exist).
        assert sql.startswith("SELECT * FROM duckdb_secrets"), (sql, r.json())
        assert r.json()["rows"] == []
    else:
        assert r.status_code == 400 and r.json()["error"], sql
    assert not Path("/tmp/spanreel-escape.csv").exists()
    assert not Path("/tmp/spanreel-escape.duckdb").exists()
    assert collector_sql.proc.poll() is None  # still running
    # The spans are untouched and external access stays off.
    check = httpx.post(
        f"{url}/api/query",
        json={"sql": "SELECT current_setting('enable_external_access'), (SELECT count(*) FROM spans)"},
    )
    assert check.json()["rows"] == [[False, 0]]


def test_pivot_runs_with_its_columns_spelled_out(collector_sql: CollectorProcess) -> None:
    """The module docs listed PIVOT as allowed, yet a PIVOT without an IN list (DuckDB runs it as
    several statements, one creating a type) was refused with no way forward: it says how now."""
    url = collector_sql.info["query_url"]
    sql = "PIVOT (SELECT * FROM (VALUES ('a', 1), ('b', 2)) v(k, n)) ON k {} USING sum(n)"
    spelled = httpx.post(f"{url}/api/query", json={"sql": sql.format("IN ('a', 'b')")})
    assert spelled.status_code == 200 and spelled.json()["rows"] == [[1, 2]]
    dynamic = httpx.post(f"{url}/api/query", json={"sql": sql.format("")})
    assert dynamic.status_code == 400 and "ON col IN ('a', 'b')" in dynamic.json()["error"]


@pytest.fixture(scope="module")
def collector_sql(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    with start_collector(tmp_path_factory.mktemp("escape") / "spans.duckdb") as running:
        yield running


def _client_certificate(
    folder: Path, ca_cert: Path, ca_key: Path, name: str = "client", common_name: str = "app"
) -> tuple[Path, Path]:
    """A certificate (and key) for ``common_name``, signed by the CA in ``ca_cert`` / ``ca_key``,
    written as ``name.crt`` / ``name.key``."""
    issuer = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    signing_key = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(signing_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return write_pem(folder, name, cert, key)


def test_client_certificates_on_both_receivers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``tls.client_ca_file`` (mutual TLS, as in the OpenTelemetry Collector; it was refused as an
    unsupported setting): the stock exporters with a client certificate signed by that CA are
    served, without one they are refused; ``min_version: "1.3"`` is enforced on HTTP."""
    cert_file, key_file = _self_signed(tmp_path)  # the server's certificate is also the client CA
    client_cert, client_key = _client_certificate(tmp_path, cert_file, key_file)
    tls = "{cert_file: server.crt, key_file: server.key, client_ca_file: server.crt"
    (tmp_path / "mtls.yaml").write_text(
        "receivers:\n  otlp:\n    protocols:\n"
        f"      grpc: {{endpoint: 127.0.0.1:0, tls: {tls}}}}}\n"
        f"      http: {{endpoint: 127.0.0.1:0, tls: {tls}, min_version: '1.3'}}}}\n"
        "exporters:\n  duckdb: {}\n"
        "service:\n  pipelines:\n    traces: {receivers: [otlp], exporters: [duckdb]}\n"
    )
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with start_collector(tmp_path / "spans.duckdb", "--config", str(tmp_path / "mtls.yaml")) as running:
        info = running.info
        root = cert_file.read_bytes()
        grpc_url, http_url = f"https://{info['grpc_endpoint']}", f"https://{info['http_endpoint']}/v1/traces"
        with_cert = GrpcExporter(
            endpoint=grpc_url,
            credentials=grpc.ssl_channel_credentials(root, client_key.read_bytes(), client_cert.read_bytes()),
        )
        assert with_cert.export(_spans("mtls-grpc")) == SpanExportResult.SUCCESS
        with_cert.shutdown()
        without = GrpcExporter(endpoint=grpc_url, credentials=grpc.ssl_channel_credentials(root), timeout=5)
        assert without.export(_spans("no-cert-grpc")) == SpanExportResult.FAILURE
        without.shutdown()
        http_with = HttpExporter(
            endpoint=http_url,
            certificate_file=str(cert_file),
            client_certificate_file=str(client_cert),
            client_key_file=str(client_key),
        )
        assert http_with.export(_spans("mtls-http")) == SpanExportResult.SUCCESS
        with pytest.raises(httpx.HTTPError):
            httpx.post(
                http_url, content=b"", verify=ssl.create_default_context(cafile=str(cert_file)), timeout=5
            )
        tls12 = ssl.create_default_context(cafile=str(cert_file))
        tls12.load_cert_chain(client_cert, client_key)
        tls12.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(httpx.HTTPError):  # below min_version
            httpx.post(http_url, content=b"", verify=tls12, timeout=5)
        stored = run_query("SELECT service_name FROM spans ORDER BY 1", running.db).rows
        assert stored == [["mtls-grpc"], ["mtls-http"]]


def test_query_api_refuses_what_a_web_page_could_send(collector_sql: CollectorProcess) -> None:
    """Without query auth, a web page the user visits must not read or prune the traces: a
    ``text/plain`` POST (sent cross-site without a CORS preflight) is refused with 415 and a
    foreign ``Host`` (DNS rebinding) with 403. Both used to answer 200, and a prune deleted
    everything."""
    url = collector_sql.info["query_url"]
    store = httpx.post(f"{url}/api/query", json={"sql": "SELECT count(*) FROM spans"})
    assert store.status_code == 200  # the CLI's way (application/json, loopback Host) still works
    prune = b'{"older_than": 0}'
    plain = httpx.post(f"{url}/api/prune", content=prune, headers={"content-type": "text/plain"})
    assert plain.status_code == 415 and "application/json" in plain.json()["error"]
    rebound = httpx.post(f"{url}/api/query", json={"sql": "SELECT 1"}, headers={"host": "evil.example"})
    assert rebound.status_code == 403 and "loopback" in rebound.json()["error"]
    form = httpx.post(f"{url}/api/query", data={"sql": "SELECT 1"})  # an HTML form's encoding
    assert form.status_code == 415
    assert httpx.get(f"{url}/api/health", headers={"host": "evil.example:80"}).status_code == 403
    assert (
        httpx.get(f"{url}/healthz", headers={"host": "evil.example"}).status_code == 200
    )  # liveness stays open


def _post_span(running: CollectorProcess, ended_days_ago: int) -> None:
    """One span (its own trace) that ended ``ended_days_ago`` days ago, over OTLP/HTTP JSON."""
    end = time.time_ns() - ended_days_ago * 86_400 * 10**9
    span = {"traceId": secrets.token_hex(16), "spanId": secrets.token_hex(8), "name": "old",
            "startTimeUnixNano": str(end - 10**9), "endTimeUnixNano": str(end)}  # fmt: skip
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    assert httpx.post(running.http_url, json=body).status_code == 200


def test_prune_without_a_token_wants_the_owner_key(collector_process: CollectorProcess) -> None:
    """Without query auth, ``POST /api/prune`` deleted every trace for any local user or process
    that found the port in the (world-readable) discovery file. It now wants this run's
    ``owner_key``, which only the discovery file holds (0600) and ``spanreel prune`` sends; and it
    refuses a bare number (``0`` deleted everything) with the message ``ttl`` gives."""
    running = collector_process
    _post_span(running, ended_days_ago=3)
    url = f"{running.info['query_url']}/api/prune"
    assert stat.S_IMODE(running.discovery.stat().st_mode) == 0o600
    key = running.info["owner_key"]
    assert len(key) >= 40 and key not in running.stderr()
    for headers in ({}, {OWNER_KEY_HEADER: "guess"}, {OWNER_KEY_HEADER: key[:-1]}, {"X-Other": key}):
        refused = httpx.post(url, json={"older_than": "1d"}, headers=headers)
        assert refused.status_code == 403, refused.text
        assert "only the user running the collector may prune" in refused.json()["error"]
    for bare in (0, 30, 2.5):
        refused = httpx.post(url, json={"older_than": bare}, headers={OWNER_KEY_HEADER: key})
        assert refused.status_code == 400 and refused.json()["error"] == (
            f"older_than: expected a duration with a unit like 30d or 720h, got the bare number {bare!r} "
            "(retention deletes data: say which unit is meant)"
        )
    assert run_query("SELECT count(*) FROM spans", running.db).rows == [[1]]
    dry = httpx.post(url, json={"older_than": "1d", "dry_run": True}, headers={OWNER_KEY_HEADER: key})
    assert (dry.status_code, dry.json()["traces"]) == (200, 1)
    proc = subprocess.run(
        [sys.executable, "-m", "spanreel", "prune", "--older-than", "1d", "--db", str(running.db), "--json"],
        env=clean_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["traces"] == 1
    assert run_query("SELECT count(*) FROM spans", running.db).rows == [[0]]


def test_prune_with_a_token(secure: tuple[CollectorProcess, Path]) -> None:
    """With query auth the bearer token is what admits a prune, from the API and from ``spanreel
    prune`` (which sends SPANREEL_TOKEN), without the owner key; a bare number is refused there too."""
    running, _ = secure
    url = f"{running.info['query_url']}/api/prune"
    body = {"older_than": "3650d", "dry_run": True}
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.post(url, json=body).status_code == 401
    admitted = httpx.post(url, json=body, headers=bearer)
    assert admitted.status_code == 200 and admitted.json()["dry_run"] is True
    bare = httpx.post(url, json={"older_than": 0}, headers=bearer)
    assert bare.status_code == 400 and "got the bare number 0" in bare.json()["error"]
    command = [sys.executable, "-m", "spanreel", "prune", "--older-than", "3650d", "--db", str(running.db)]
    proc = subprocess.run(
        command, env=clean_env(**{TOKEN_ENV: TOKEN}), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and proc.stdout.startswith("deleted 0 traces"), proc.stderr
    proc = subprocess.run(command, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert (
        proc.returncode == 1 and f"requires a bearer token on its query API: set {TOKEN_ENV}" in proc.stderr
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_collector_keeps_its_files_private(tmp_path: Path) -> None:
    """The database, DuckDB's WAL and the discovery file were 0644 and the data folder 0755:
    another local user copied a running collector's WAL and read the prompts in it, token or not.
    Folders the collector creates are 0700 and its files 0600 (a 0077 umask: DuckDB deletes the
    WAL at each checkpoint and creates it again itself); an existing database keeps its mode, with
    a warning."""
    before = _mode(tmp_path)
    db = tmp_path / "data" / "spanreel" / "spans.duckdb"
    wal = db.with_name(db.name + ".wal")
    with start_collector(db, stderr_path=tmp_path / "first.log") as running:
        _post_span(running, ended_days_ago=0)  # committed: the WAL holds it
        assert wal.exists()
        files = (db.parent.parent, db.parent, db, wal, running.discovery)
        assert {path.name: _mode(path) for path in files} == {
            "data": 0o700, "spanreel": 0o700, "spans.duckdb": 0o600, "spans.duckdb.wal": 0o600,
            "spans.duckdb.collector.json": 0o600,
        }  # fmt: skip
        assert "readable by other users" not in running.stderr()
    assert _mode(tmp_path) == before  # a folder that was there is left alone
    db.chmod(0o644)
    with start_collector(db, stderr_path=tmp_path / "second.log") as running:
        _post_span(running, ended_days_ago=0)
        assert (_mode(db), _mode(wal), _mode(running.discovery)) == (0o644, 0o600, 0o600)
        assert f"{db} is readable by other users (mode 0644)" in running.stderr()


def test_check_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _self_signed(tmp_path)
    good = SECURE_CONFIG.replace(TOKEN, "${env:SPANREEL_TEST_TOKEN}").replace(
        "    auth: {authenticator: bearertokenauth}\nservice",
        "    auth: {authenticator: bearertokenauth}\n    ttl: 30d\n    max_queue_bytes: 1048576\nservice",
    )
    path = tmp_path / "check.yaml"
    path.write_text(good)
    ok = subprocess.run(
        [sys.executable, "-m", "spanreel", "collector", "--check-config", "--config", str(path)],
        env=clean_env(SPANREEL_TEST_TOKEN=TOKEN), capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "configuration OK" in ok.stdout
    assert (
        "TLS 1.2+, bearer token" in ok.stdout and "retention       30d" in ok.stdout and "1 MiB" in ok.stdout
    )
    assert TOKEN not in ok.stdout  # secrets are never printed

    monkeypatch.setenv("SPANREEL_TEST_TOKEN", TOKEN)
    monkeypatch.delenv("SPANREEL_UNSET_VAR", raising=False)
    for broken, expected in (
        (
            good.replace("${env:SPANREEL_TEST_TOKEN}", "${env:SPANREEL_UNSET_VAR}"),
            "extensions.bearertokenauth.token",
        ),
        (good.replace("cert_file: server.crt", "cert_file: missing.crt"), "tls.cert_file"),
        (good.replace("key_file: server.key", "key_file: server.crt"), "cannot load"),
        (good.replace("extensions: [bearertokenauth]", "extensions: []"), "service.extensions"),
        (good.replace("ttl: 30d", "ttl: thirty days"), "exporters.duckdb.ttl"),
        (good.replace("max_queue_bytes: 1048576", "max_queue_bytes: -1"), "max_queue_bytes"),
        ("receivers: [", "not valid YAML"),
        # Misspelt settings fail instead of silently dropping auth, TLS or the database path.
        (
            good.replace(
                "auth: {authenticator: bearertokenauth}\n        tls", "authentication: x\n        tls", 1
            ),
            "receivers.otlp.protocols.grpc.authentication: unknown key",
        ),
        (good.replace("tls: {cert", "tsl: {cert", 1), "receivers.otlp.protocols.grpc.tsl: unknown key"),
        (good.replace("    ttl: 30d", "    pth: /tmp/x.duckdb"), "exporters.duckdb.pth: unknown key"),
        (
            good.replace("auth: {authenticator:", "auth: {authenticatr:", 1),
            "grpc.auth.authenticatr: unknown key",
        ),
        (good + "foo: 1\n", "foo: unknown top-level key"),
        (good.replace("  pipelines:", "  pipeline: {}\n  pipelines:"), "service.pipeline: unknown key"),
    ):
        path.write_text(broken)
        bad = CliRunner().invoke(main, ["collector", "--check-config", "--config", str(path)])
        assert bad.exit_code == 1, (expected, bad.output)
        assert expected in bad.output and "Traceback" not in bad.output, bad.output
        if "YAML" not in expected:  # YAML errors add the line with a caret under the problem
            assert len(bad.output.strip().splitlines()) == 1, bad.output


def _query_tls_config(folder: Path, tls: str) -> Path:
    """:data:`SECURE_CONFIG` (token auth, TLS receivers) with ``tls: {tls}`` on the query API."""
    path = folder / "query-tls.yaml"
    path.write_text(
        SECURE_CONFIG.replace(
            "    auth: {authenticator: bearertokenauth}\nservice",
            f"    auth: {{authenticator: bearertokenauth}}\n    tls: {tls}\nservice",
        )
    )
    return path


def test_query_api_over_tls_with_the_certificate_pinned_by_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``exporters.duckdb.tls`` (the receivers' keys; it was an unknown key, and the token and every
    query result crossed the network in plaintext): the query API speaks HTTPS, the discovery file
    says https and holds the certificate, and ``run_query`` / ``spanreel sql`` / ``spanreel ui``
    trust exactly that certificate, a CA-issued one for another name than the address they
    connect to included; a client that does not pin it, and plaintext, are refused."""
    ca_cert, ca_key = _self_signed(tmp_path)
    _client_certificate(tmp_path, ca_cert, ca_key, "query", "spanreel.example")  # not 127.0.0.1
    config = _query_tls_config(tmp_path, "{cert_file: query.crt, key_file: query.key}")
    checked = CliRunner().invoke(main, ["collector", "--check-config", "--config", str(config)])
    assert "query API       127.0.0.1:0 (TLS 1.2+, bearer token)" in checked.output, checked.output
    with start_collector(tmp_path / "spans.duckdb", "--config", str(config)) as running:
        url = running.info["query_url"]
        assert url.startswith("https://127.0.0.1:")
        assert running.info["query_tls_cert"] == (tmp_path / "query.crt").read_text()
        with pytest.raises(httpx.HTTPError):
            httpx.get(url.replace("https:", "http:") + "/healthz", timeout=5)
        with pytest.raises(httpx.HTTPError):  # the system's CAs do not vouch for it
            httpx.get(f"{url}/healthz", timeout=5)
        with pytest.raises(httpx.HTTPError):  # its CA does, but not for 127.0.0.1
            httpx.get(f"{url}/healthz", verify=ssl.create_default_context(cafile=str(ca_cert)), timeout=5)
        (tmp_path / "other").mkdir()
        other_cert, _ = _self_signed(tmp_path / "other")
        with pytest.raises(httpx.HTTPError):  # pinned to another certificate
            httpx.get(f"{url}/healthz", verify=pinned_client_context(other_cert.read_text()), timeout=5)

        monkeypatch.setenv(TOKEN_ENV, TOKEN)
        assert run_query("SELECT 42", running.db).rows == [[42]]
        proc = subprocess.run(
            [sys.executable, "-m", "spanreel", "sql", "SELECT 7 AS n", "--db", str(running.db), "--json"],
            env=clean_env(**{TOKEN_ENV: TOKEN}), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0 and "7" in proc.stdout, proc.stderr
        ui = CliRunner().invoke(main, ["ui", "--no-browser", "--db", str(running.db)])
        assert ui.exit_code == 0 and f"{url}/ui/#token=" in ui.output, ui.output


def test_query_api_with_client_certificates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``exporters.duckdb.tls.client_ca_file``: the CLI presents the certificate named by
    ``SPANREEL_CLIENT_CERT`` / ``SPANREEL_CLIENT_KEY``; without one the query API refuses it."""
    ca_cert, ca_key = _self_signed(tmp_path)
    client_cert, client_key = _client_certificate(tmp_path, ca_cert, ca_key)
    config = _query_tls_config(
        tmp_path, "{cert_file: server.crt, key_file: server.key, client_ca_file: server.crt}"
    )
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with start_collector(tmp_path / "spans.duckdb", "--config", str(config)) as running:
        monkeypatch.delenv(CLIENT_CERT_ENV, raising=False)
        with pytest.raises(QueryError):
            run_query("SELECT 1", running.db)
        monkeypatch.setenv(CLIENT_CERT_ENV, str(client_cert))
        monkeypatch.setenv(CLIENT_KEY_ENV, str(client_key))
        assert run_query("SELECT 1", running.db).rows == [[1]]


def test_a_query_api_beyond_loopback_without_tls_is_a_loud_warning(tmp_path: Path) -> None:
    """With ``auth`` the query API may listen beyond loopback; without ``tls`` its token and every
    query result then cross the network in plaintext, and ``--check-config`` said nothing. Now
    ``--check-config`` and the start-up log warn (a TLS-terminating proxy in front is legitimate,
    so it is not an error); with ``tls``, or on loopback, they do not."""
    _self_signed(tmp_path)
    path = tmp_path / "remote.yaml"
    auth = "    auth: {authenticator: bearertokenauth}\n"
    path.write_text(SECURE_CONFIG.replace(f"{auth}service", f"{auth}    query_endpoint: 0.0.0.0:0\nservice"))
    warning = "the query API listens on 0.0.0.0:0, beyond loopback, without TLS: its bearer token"

    def check(*flags: str) -> str:
        result = CliRunner().invoke(main, ["collector", "--check-config", "--config", str(path), *flags])
        assert result.exit_code == 0, result.output
        return result.output

    assert f"  WARNING         {warning}" in check()
    assert "WARNING" not in check("--query-endpoint", "127.0.0.1:0")
    with start_collector(
        tmp_path / "spans.duckdb", "--config", str(path), "--query-endpoint", "0.0.0.0:0"
    ) as running:
        assert running.info["query_url"].startswith("http://0.0.0.0:")
    assert f"WARNING: {warning}" in running.stderr()
    tls = "    tls: {cert_file: server.crt, key_file: server.key}\n"
    path.write_text(path.read_text().replace("0.0.0.0:0\n", f"0.0.0.0:0\n{tls}"))
    assert "WARNING" not in check()
