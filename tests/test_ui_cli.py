"""``spanreel ui``: with a collector already serving the database it prints (and opens) the viewer
URL; without one it starts a collector and serves until SIGTERM. With a bearer token on the query
API, the static page loads without it, the data needs it, and the URL carries it in its fragment."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from conftest import clean_env, start_collector

from spanreel.cli import main
from spanreel.collector._client import discovery_path

TOKEN = "ui-test-token/with+chars"
CONFIG = """
extensions:
  bearertokenauth:
    token: ${env:UI_TEST_TOKEN}
receivers:
  otlp:
    protocols:
      http: {endpoint: "127.0.0.1:0"}
exporters:
  duckdb:
    query_endpoint: "127.0.0.1:0"
    auth: {authenticator: bearertokenauth}
service:
  extensions: [bearertokenauth]
  pipelines:
    traces: {receivers: [otlp], exporters: [duckdb]}
"""


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "otel-config.yaml"
    path.write_text(CONFIG)
    return path


def _client() -> httpx.Client:
    return httpx.Client(timeout=30, trust_env=False)


def test_prints_and_opens_the_url_of_the_running_collector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url, *a, **k: opened.append(url) or True)
    with start_collector(tmp_path / "spans.duckdb") as running:
        url = running.info["query_url"] + "/ui/"
        monkeypatch.setenv("DISPLAY", ":0")
        res = CliRunner().invoke(main, ["ui", "--db", str(running.db)], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        assert res.stdout == url + "\n" and opened == [url]

        # headless (no display, no $BROWSER): only the URL, and no browser is started
        monkeypatch.delenv("DISPLAY")
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
        monkeypatch.delenv("BROWSER", raising=False)
        res = CliRunner().invoke(main, ["ui", "--db", str(running.db)], catch_exceptions=False)
        assert res.exit_code == 0 and res.stdout == url + "\n" and len(opened) == 1
        assert "no browser available" in res.stderr
        with _client() as client:
            assert client.get(url).status_code == 200


def test_token_travels_in_the_fragment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UI_TEST_TOKEN", TOKEN)
    config = _config(tmp_path)
    db = tmp_path / "spans.duckdb"
    proc = subprocess.Popen(
        [sys.executable, "-m", "spanreel", "ui", "--config", str(config), "--db", str(db), "--no-browser"],
        cwd=tmp_path, env=clean_env(UI_TEST_TOKEN=TOKEN), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()  # printed once the collector serves the page
        assert url, proc.stderr.read() if proc.stderr else ""
        base, fragment = url.split("#", 1)
        assert base.startswith("http://127.0.0.1:") and base.endswith("/ui/")
        assert fragment == "token=ui-test-token%2Fwith%2Bchars"
        api = base.removesuffix("/ui/")
        with _client() as client:
            assert client.get(base).status_code == 200  # the page itself needs no token
            assert client.get(base + "app.js").status_code == 200
            assert client.get(api + "/api/ui/traces").status_code == 401
            authorized = {"Authorization": f"Bearer {TOKEN}"}
            answer = client.get(api + "/api/ui/traces", headers=authorized)
            assert answer.status_code == 200 and answer.json()["traces"] == []
            # with a token the Host check is off (the API may listen beyond loopback)
            other_host = {**authorized, "Host": "collector.internal"}
            assert client.get(api + "/api/ui/traces", headers=other_host).status_code == 200

        # a second `spanreel ui` finds this collector; the token comes from SPANREEL_TOKEN
        env = {"SPANREEL_TOKEN": TOKEN}
        res = CliRunner().invoke(
            main, ["ui", "--db", str(db), "--no-browser"], env=env, catch_exceptions=False
        )
        assert res.exit_code == 0 and res.stdout.strip() == url
        res = CliRunner().invoke(
            main, ["ui", "--db", str(db), "--no-browser"], env={"SPANREEL_TOKEN": ""}, catch_exceptions=False
        )
        assert res.stdout.strip() == base and "requires a token; set SPANREEL_TOKEN" in res.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "started one" in err and "collector stopped" in err
    assert not discovery_path(db).exists()


def test_start_failure_is_one_clear_line(tmp_path: Path) -> None:
    with start_collector(tmp_path / "other.duckdb") as other:
        busy = other.info["http_endpoint"]  # another collector's OTLP/HTTP port
        config = tmp_path / "busy.yaml"
        config.write_text(
            f"receivers:\n  otlp:\n    protocols:\n      http: {{endpoint: '{busy}'}}\n"
            "exporters:\n  duckdb: {query_endpoint: '127.0.0.1:0'}\n"
            "service:\n  pipelines:\n    traces: {receivers: [otlp], exporters: [duckdb]}\n"
        )
        res = CliRunner().invoke(
            main, ["ui", "--db", str(tmp_path / "spans.duckdb"), "--config", str(config), "--no-browser"]
        )
    assert res.exit_code == 1, res.output
    assert f"cannot listen for OTLP/HTTP on {busy}" in res.output
    assert "starting one failed" in res.output and "Traceback" not in res.output
