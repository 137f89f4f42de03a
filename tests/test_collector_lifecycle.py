"""The collector's life cycle as an operator sees it, with real ``spanreel collector`` subprocesses:

- start-up I/O errors (database folder impossible, database locked, port taken) are one clear
  line and exit code 1, never a traceback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import clean_env, start_collector


def _collector(db: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run ``spanreel collector --db DB`` (every listener on a free loopback port unless ``args``
    override it) to completion; for start-up failures."""
    endpoints = dict.fromkeys(("--grpc-endpoint", "--http-endpoint", "--query-endpoint"), "127.0.0.1:0")
    for flag in args[::2]:
        endpoints.pop(flag, None)
    argv = [sys.executable, "-m", "spanreel", "collector", "--db", str(db), *args]
    for flag, value in endpoints.items():
        argv += [flag, value]
    return subprocess.run(
        argv, env=clean_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )


def _assert_clean_failure(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(error_lines) == 1, result.stderr
    for text in expected:
        assert text in error_lines[0], result.stderr


def test_database_folder_blocked_by_a_file(tmp_path: Path) -> None:
    (tmp_path / "notadir").write_text("")
    result = _collector(tmp_path / "notadir" / "sub" / "spans.duckdb")
    _assert_clean_failure(result, "cannot create the database", "Not a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_database_folder_not_writable(tmp_path: Path) -> None:
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        result = _collector(folder / "sub" / "spans.duckdb")
    finally:
        folder.chmod(0o700)
    _assert_clean_failure(result, "cannot create the database", "Permission denied")


def test_database_locked_by_another_collector(tmp_path: Path) -> None:
    db = tmp_path / "spans.duckdb"
    with start_collector(db):
        result = _collector(db)
    _assert_clean_failure(result, "in use by another process", str(db))


@pytest.mark.parametrize("flag", ["--http-endpoint", "--grpc-endpoint", "--query-endpoint"])
def test_port_already_in_use(tmp_path: Path, flag: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        endpoint = f"127.0.0.1:{taken.getsockname()[1]}"
        result = _collector(tmp_path / "spans.duckdb", flag, endpoint)
    _assert_clean_failure(result, "cannot listen", endpoint)
