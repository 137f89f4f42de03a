"""The ``spanreel`` pytest plugin (entry point ``pytest11``), run with pytester on test files that use
the real ``openai`` SDK against a conversation recorded through it (see test_replay_serve_support)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_replay_serve_support import SESSION_ID, Recording, recorded_conversation, stream_text

from spanreel.cli import main
from spanreel.replay._pytest_plugin import NetworkBlockedError, NetworkGuard

pytest_plugins = ["pytester"]

#: Inner pytest runs: no cache files; hypothesis (seconds per session) and asyncio plugins unused here.
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:asyncio")


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    return recorded_conversation(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def exported(recording: Recording, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session as an OTLP JSON file, plus the SDK calls and their answers beside it."""
    folder = tmp_path_factory.mktemp("fixtures")
    out = folder / "conversation.json"
    res = CliRunner().invoke(
        main,
        [
            "export",
            "--session",
            SESSION_ID,
            "--db",
            str(recording.db),
            "--format",
            "otlp-json",
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    calls = [
        {
            "kwargs": c.kwargs,
            "text": stream_text(c.response)
            if c.kwargs.get("stream")
            else (c.response["choices"][0]["message"]["content"] if c.response else None),
        }
        for c in recording.calls
    ]
    (folder / "calls.json").write_text(json.dumps(calls))
    return out


def _install_fixture(pytester: pytest.Pytester, exported: Path) -> None:
    target = pytester.path / "tests" / "fixtures"
    target.mkdir(parents=True)
    (target / "debate.json").write_bytes(exported.read_bytes())
    (target / "calls.json").write_bytes((exported.parent / "calls.json").read_bytes())


APP_TESTS = """
import json, os, socket
from pathlib import Path
import openai, pytest

CALLS = json.loads((Path(__file__).parent / "fixtures" / "calls.json").read_text())

@pytest.mark.spanreel_recording("tests/fixtures/debate.json")
def test_the_app_gets_recorded_answers(spanreel_recorded):
    assert os.environ["OPENAI_BASE_URL"] == spanreel_recorded
    client = openai.OpenAI(max_retries=0)   # configured from the environment only
    first = CALLS[0]
    answer = client.chat.completions.create(**first["kwargs"])
    assert answer.choices[0].message.content == first["text"]

@pytest.mark.spanreel_recording("fixtures/debate.json")   # relative to this file's folder
def test_streams_with_the_marker_alone():
    streamed = CALLS[1]
    chunks = openai.OpenAI(max_retries=0).chat.completions.create(**streamed["kwargs"])
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == streamed["text"]

@pytest.mark.spanreel_recording("tests/fixtures/debate.json")
def test_each_test_starts_from_the_first_recorded_answer(spanreel_server):
    first = CALLS[0]
    openai.OpenAI(max_retries=0).chat.completions.create(**first["kwargs"])
    assert [s.exchange.index for s in spanreel_server.served] == [1]

@pytest.mark.spanreel_recording("tests/fixtures/debate.json")
def test_an_unrecorded_request_is_a_404():
    with pytest.raises(openai.NotFoundError, match="closest recorded request: #1"):
        openai.OpenAI(max_retries=0).chat.completions.create(
            model="gpt-4o-mini", temperature=0.2, messages=[{"role": "user", "content": "Tabs or spaces?"}]
        )

def test_unmarked_tests_are_left_alone():
    assert os.environ.get("OPENAI_API_KEY") != "sk-spanreel-recorded"
    assert socket.socket.connect.__name__ == "connect"
"""


def test_marked_tests_talk_to_the_recording(pytester: pytest.Pytester, exported: Path) -> None:
    _install_fixture(pytester, exported)
    pytester.makepyfile(**{"tests/test_app": APP_TESTS})
    result = pytester.runpytest(*QUIET, "-W", "default")
    result.assert_outcomes(passed=5)
    # the unmatched request is reported even though the app handled the error
    result.stdout.fnmatch_lines(["*spanreel: no recorded match for POST /v1/chat/completions*similarity*"])


NETWORK_TESTS = """
import socket
import openai, pytest
from spanreel.replay._pytest_plugin import NetworkBlockedError

def _causes(exc):
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__

@pytest.mark.spanreel_recording("debate.json")
def test_provider_calls_are_blocked(spanreel_server):
    client = openai.OpenAI(base_url="http://203.0.113.7/v1", max_retries=0)
    # the SDK lets the error through (or wraps it in APIConnectionError, depending on its version)
    with pytest.raises((NetworkBlockedError, openai.APIConnectionError)) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert any(isinstance(e, NetworkBlockedError) for e in _causes(caught.value))
    with pytest.raises(NetworkBlockedError, match="198.51.100.1:443"):
        socket.create_connection(("198.51.100.1", 443), timeout=1)
    with pytest.raises(NetworkBlockedError, match="api.openai.com:443"):  # before any DNS query
        socket.create_connection(("api.openai.com", 443), timeout=1)
    # loopback stays open: the recorded-response server itself
    socket.create_connection(("127.0.0.1", spanreel_server.port), timeout=5).close()

@pytest.mark.spanreel_recording("debate.json")
@pytest.mark.spanreel_allow_network
def test_opt_out_marker():
    assert socket.socket.connect.__name__ == "connect"
"""


def test_network_is_blocked_unless_allowed(pytester: pytest.Pytester, exported: Path) -> None:
    pytester.path.joinpath("debate.json").write_bytes(exported.read_bytes())
    pytester.makepyfile(test_network=NETWORK_TESTS)
    result = pytester.runpytest(*QUIET, "-W", "default")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*spanreel: blocked network connections: 203.0.113.7:80, 198.51.100.1:443, api.openai.com:443*"]
    )
    assert socket.socket.connect.__name__ == "connect"  # restored after the run
    assert socket.getaddrinfo.__name__ == "getaddrinfo"
    # the command-line option allows it for every test
    pytester.makepyfile(
        test_option="""
import socket, pytest
@pytest.mark.spanreel_recording("debate.json")
def test_allowed():
    assert socket.socket.connect.__name__ == "connect"
"""
    )
    result = pytester.runpytest(*QUIET, "--spanreel-allow-network", "test_option.py")
    result.assert_outcomes(passed=1)


def test_installed_plugin_with_a_trace_in_a_database(pytester: pytest.Pytester, recording: Recording) -> None:
    """In a fresh pytest process: the entry point registers the plugin; trace_id + db source."""
    judge = recording.calls[6]
    pytester.makepyfile(
        test_db=f"""
import openai, pytest

@pytest.mark.spanreel_recording(trace_id={recording.trace_ids[1][:12]!r}, db={str(recording.db)!r})
def test_judge(spanreel_recorded):
    client = openai.OpenAI(base_url=spanreel_recorded, max_retries=0)
    answer = client.chat.completions.create(**{judge.kwargs!r})
    assert answer.choices[0].message.content == {judge.response["choices"][0]["message"]["content"]!r}
"""
    )
    result = pytester.runpytest_subprocess(*QUIET)
    result.assert_outcomes(passed=1)


def test_usage_errors_are_clear(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_bad="""
import pytest

def test_fixture_without_marker(spanreel_recorded):
    pass

@pytest.mark.spanreel_recording("missing.json")
def test_missing_file():
    pass

@pytest.mark.spanreel_recording("a.json", session="s")
def test_two_sources():
    pass
"""
    )
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines(
        [
            "*the spanreel fixtures need @pytest.mark.spanreel_recording(...)*",
            "*recording file 'missing.json' not found*",
            "*needs exactly one of a file, trace_id= or session=*",
        ],
        consecutive=False,
    )


def test_network_guard_rules() -> None:
    allowed = NetworkGuard.is_allowed
    assert allowed(socket.AF_INET, ("127.0.0.1", 80)) and allowed(socket.AF_INET, ("127.8.9.1", 80))
    assert allowed(socket.AF_INET6, ("::1", 80, 0, 0)) and allowed(
        socket.AF_INET6, ("::ffff:127.0.0.1", 80, 0, 0)
    )
    assert allowed(socket.AF_INET, ("localhost", 80)) and allowed(socket.AF_UNIX, "/tmp/sock")
    assert not allowed(socket.AF_INET, ("10.0.0.1", 80)) and not allowed(
        socket.AF_INET6, ("2001:db8::1", 443, 0, 0)
    )
    assert not allowed(socket.AF_INET, ("169.254.169.254", 80)) and not allowed(
        socket.AF_INET, ("example.com", 80)
    )
    with NetworkGuard() as guard:
        with pytest.raises(NetworkBlockedError), socket.socket() as sock:
            sock.connect_ex(("192.0.2.1", 80))
        with pytest.raises(NetworkBlockedError):
            socket.getaddrinfo("api.anthropic.com", 443)
        assert socket.getaddrinfo("localhost", 80) and socket.getaddrinfo("127.0.0.1", None)
    assert guard.blocked == ["192.0.2.1:80", "api.anthropic.com:443"]
    assert socket.socket.connect_ex.__name__ == "connect_ex" and socket.getaddrinfo.__name__ == "getaddrinfo"


EARLY_CLIENT_TESTS = """
import openai, pytest
from spanreel.replay._pytest_plugin import NetworkBlockedError

client = openai.OpenAI(api_key="sk-real-key-of-the-developer", max_retries=0)  # at import time


@pytest.fixture(scope="module")
def module_client():
    return openai.OpenAI(api_key="sk-real-key-of-the-developer", max_retries=0)


def _blocked(exc):
    while exc is not None and not isinstance(exc, NetworkBlockedError):
        exc = exc.__cause__ or exc.__context__
    return exc


@pytest.mark.spanreel_recording("debate.json")
@pytest.mark.parametrize("which", ["import-time", "module-fixture"])
def test_a_client_created_before_the_test(which, module_client):
    made_early = client if which == "import-time" else module_client
    with pytest.raises(Exception) as caught:
        made_early.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    message = str(_blocked(caught.value))
    assert "api.openai.com:443" in message
    assert "client created before the test started" in message
    assert "pass base_url=spanreel_recorded" in message
    assert "spanreel_allow_network" not in message  # that would send the real key to the real API


@pytest.mark.spanreel_recording("debate.json")
def test_another_host_may_be_allowed():
    import socket
    with pytest.raises(NetworkBlockedError, match="Allow it with @pytest.mark.spanreel_allow_network"):
        socket.create_connection(("198.51.100.1", 443), timeout=1)
"""


def test_a_client_created_before_the_test_is_named_as_the_cause(
    pytester: pytest.Pytester, exported: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Such a client kept the real base URL and key: the error says so, and does not suggest
    allowing the network."""
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    pytester.path.joinpath("debate.json").write_bytes(exported.read_bytes())
    pytester.makepyfile(test_early=EARLY_CLIENT_TESTS)
    result = pytester.runpytest(*QUIET, "-W", "default")
    result.assert_outcomes(passed=3)
