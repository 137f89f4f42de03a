"""The trace viewer in a real headless browser: Debian's Chromium driven by Playwright's Python
package (never ``playwright install``: the system browser is launched by path).

Loads the traces list, opens a trace recorded in the test, checks the span tree and a chat message
(and that recorded HTML stays text), opens the session (from a trace and from the sessions list)
and the replay comparison, and saves screenshots under ``test-artifacts/``. Skipped only when
Chromium is absent locally; under CI (``CI=true``) its absence is a failure, since .ci/run
installs it.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CollectorProcess, start_collector
from test_ui_support import HOSTILE, SESSION, Dataset, HonestReplays, record_dataset, record_honest_replays

from spanreel.fakellm import FakeLLMServer

CHROMIUM = os.environ.get("SPANREEL_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

if not (os.path.exists(CHROMIUM) and shutil.which(CHROMIUM)):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{CHROMIUM} is missing under CI: .ci/run installs the chromium package", pytrace=False)
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is in the test extra")


@pytest.fixture(scope="module")
def data(collector: CollectorProcess) -> Dataset:
    with FakeLLMServer(port=0) as llm:
        return record_dataset(collector, llm)


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: sync_api.Browser) -> Iterator[sync_api.Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield page
    context.close()
    assert errors == [], f"the page reported errors: {errors}"


def shot(page: sync_api.Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"ui-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def test_list_then_trace_tree_and_chat(
    page: sync_api.Page, collector: CollectorProcess, data: Dataset
) -> None:
    expect = sync_api.expect
    page.goto(collector.info["query_url"] + "/ui/")
    rows = page.locator("table.traces-table tbody tr")
    expect(rows).to_have_count(9)
    expect(rows.first).to_contain_text("replay support chat")
    expect(rows.last).to_contain_text("support chat")
    expect(page.locator(f'tr[data-trace-id="{data.failing}"] .pill-error')).to_be_visible()
    shot(page, "traces")

    # filter by model through the form, then clear
    page.select_option("select[name=model]", "fake-judge")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("debate")
    page.get_by_role("link", name="Clear").click()
    expect(rows).to_have_count(9)

    # open the recorded trace from the list
    page.locator(f'tr[data-trace-id="{data.support}"] a.trace-link').click()
    expect(page.locator(".trace-title h1")).to_have_text("support chat")
    tree = page.locator(".wf-body .wf-row")
    expect(tree).to_have_count(7)  # root + 3 LLM spans + their 3 HTTP spans
    expect(tree.nth(0).locator(".wf-span-name")).to_have_text("support chat")
    expect(tree.nth(1).locator(".wf-span-name")).to_have_text("chat gpt-4o-mini")
    indent = [
        float(tree.nth(i).locator(".wf-name").evaluate("e => parseFloat(e.style.paddingLeft)"))
        for i in (0, 1, 2)
    ]
    assert indent[0] < indent[1] < indent[2]  # root → LLM span → its HTTP span
    # the first LLM call is selected: its conversation as chat bubbles
    expect(tree.nth(1)).to_have_class("wf-row wf-llm selected")
    chat = page.locator(".detail .chat")
    expect(chat.locator(".msg-system")).to_contain_text("You are a helpful support agent.")
    expect(chat.locator(".msg-user")).to_contain_text("My order #1234 has not arrived.")
    expect(chat.locator(".msg-output")).to_contain_text(data.first_answer)
    expect(page.locator(".command-text")).to_contain_text(f"spanreel replay {data.support}")
    expect(page.locator(".relation")).to_contain_text("Replayed 1 time")
    shot(page, "trace")

    # another span: the tool call and its result
    tree.nth(5).click()
    expect(page.locator(".detail .chat .tool-call .tool-name")).to_have_text("get_weather")
    expect(page.locator(".detail .chat .tool-result")).to_contain_text('"temp_c": 21')
    page.get_by_role("tab", name="GenAI").click()
    expect(page.locator(".detail .kv")).to_contain_text("gen_ai.request.model")


def test_recorded_html_is_shown_as_text(
    page: sync_api.Page, collector: CollectorProcess, data: Dataset
) -> None:
    page.goto(f"{collector.info['query_url']}/ui/#/trace/{data.debate}")
    message = page.locator(".detail .chat .msg-user .msg-text")
    sync_api.expect(message).to_have_text("Judge this: " + HOSTILE)
    assert page.locator(".detail img, .detail script").count() == 0
    assert page.evaluate("window.__xss") is None


def test_session_and_replay_comparison(
    page: sync_api.Page, collector: CollectorProcess, data: Dataset
) -> None:
    expect = sync_api.expect
    page.goto(f"{collector.info['query_url']}/ui/#/trace/{data.support}")
    page.locator(".fact dd a", has_text=SESSION).click()
    items = page.locator(".session-trace")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_contain_text("support chat")
    expect(items.nth(1)).to_contain_text("debate")
    expect(items.nth(0).locator(".call")).to_have_count(3)
    shot(page, "session")

    page.goto(f"{collector.info['query_url']}/ui/#/trace/{data.replay}")
    page.get_by_role("link", name="Compare with the original").click()
    cards = page.locator(".compare-call")
    expect(cards).to_have_count(3)
    expect(cards.first).to_contain_text("output changed")
    expect(cards.first.locator(".compare-col").first).to_contain_text(data.first_answer.split()[-1])
    assert cards.first.locator("ins.diff-add").count() > 0
    shot(page, "compare")


def test_sessions_list_links_to_the_session_page(
    page: sync_api.Page, collector: CollectorProcess, data: Dataset
) -> None:
    expect = sync_api.expect
    page.goto(collector.info["query_url"] + "/ui/")
    page.locator("#nav-sessions").click()
    expect(page.locator("#nav-sessions")).to_have_class("active")
    rows = page.locator("table.sessions-table tbody tr")
    expect(rows).to_have_count(1)
    cells = rows.first.locator("td")
    expect(cells.nth(0)).to_contain_text(SESSION)
    expect(cells.nth(0).locator(".svc")).to_have_text("support-bot")
    expect(cells.nth(1)).to_have_text("support")  # spanreel.session("support", …)
    expect(cells.nth(2)).to_have_text("—")  # no user id
    expect(cells.nth(4)).to_contain_text(re.compile(r"\d+(\.\d+)? (µs|ms|s)"))
    expect(cells.nth(5)).to_have_text("2")  # traces
    expect(cells.nth(6)).to_have_text("4")  # LLM calls
    expect(cells.nth(7)).to_have_text(re.compile(r"^[\d,]+ in · [\d,]+ out$"))
    expect(cells.nth(8)).to_have_text(re.compile(r"^\$\d"))
    expect(cells.nth(9)).to_have_text("—")  # no errors
    shot(page, "sessions")

    rows.first.get_by_role("link", name=SESSION).click()
    expect(page).to_have_url(re.compile(f"#/session/{SESSION}$"))
    expect(page.locator(".trace-title h1")).to_have_text(f"Session {SESSION}")
    expect(page.locator(".session-trace")).to_have_count(2)
    page.locator(".crumbs").get_by_role("link", name="Sessions").click()
    expect(rows).to_have_count(1)


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HonestReplays, str]]:
    """The traces of :func:`record_honest_replays` on a collector of their own, and its URL."""
    db = tmp_path_factory.mktemp("honest") / "spans.duckdb"
    with start_collector(db) as running, FakeLLMServer(port=0) as llm:
        yield record_honest_replays(running, llm), running.info["query_url"]


def test_replay_comparison_shows_failed_calls_and_totals_of_calls_known_on_both_sides(
    page: sync_api.Page, honest: tuple[HonestReplays, str]
) -> None:
    """An answer without model output showed as "output changed" with an empty replay; the
    header set the whole traces' costs side by side (one call's new cost unknown)."""
    expect = sync_api.expect
    replays, url = honest
    page.goto(f"{url}/ui/#/compare/{replays.no_output}")
    cards = page.locator(".compare-call")
    expect(cards).to_have_count(2)
    expect(page.locator(".trace-title")).to_contain_text("0 replayed · 2 failed · 0 changed")
    reason = f"the answer holds no model output (HTTP 200; POST {replays.wrong_url}/chat/completions)"
    for i in range(2):
        expect(cards.nth(i).locator(".pill-error")).to_have_text("replay failed")
        expect(cards.nth(i).locator(".replay-error")).to_have_text(reason)
    expect(page.locator(".compare-totals")).to_contain_text("No call was replayed successfully")
    shot(page, "compare-failed")

    page.goto(f"{url}/ui/#/compare/{replays.partial}")
    expect(page.locator(".trace-title")).to_contain_text("2 replayed")
    totals = page.locator(".compare-totals .fact")
    # the cost covers the first call only: its new cost is known, the second's is not
    expect(totals.filter(has_text="Cost").locator("dd")).to_have_text(
        re.compile(r"^\$0\.0*[1-9]\d* → \$0\.0*[1-9]\d* \(1 of 2 calls\)$")
    )
    expect(totals.filter(has_text="Tokens in").locator("dd")).to_have_text(re.compile(r"^\d+ → \d+$"))
    assert page.locator(".compare-call .replay-error").count() == 0
    shot(page, "compare-totals")


def test_sessions_list_without_sessions_says_how_to_record_one(
    page: sync_api.Page, honest: tuple[HonestReplays, str]
) -> None:
    _, url = honest  # traces, none of them in a session
    page.goto(f"{url}/ui/#/sessions")
    empty = page.locator(".empty")
    sync_api.expect(empty).to_contain_text("No sessions yet")
    sync_api.expect(empty.locator("code").first).to_contain_text("spanreel.session(")
    assert page.locator("table.sessions-table").count() == 0


def test_token_from_the_url_fragment_is_kept_out_of_the_address_bar(
    page: sync_api.Page, collector: CollectorProcess, data: Dataset
) -> None:
    page.goto(f"{collector.info['query_url']}/ui/#token=s3cret")
    sync_api.expect(page.locator("table.traces-table tbody tr")).to_have_count(9)
    assert "s3cret" not in page.url
    assert page.evaluate("sessionStorage.getItem('spanreel.token')") == "s3cret"


def test_long_durations_read_in_hours_and_minutes(page: sync_api.Page, collector: CollectorProcess) -> None:
    """Sessions run for minutes or hours: 119.6 s is "2 min 0 s" (not "1 min 60 s"), 1 h 2 min 3 s
    is "1 h 2 min"."""
    page.goto(collector.info["query_url"] + "/ui/")
    shown = page.evaluate(
        "async () => { const f = await import('./format.js');"
        " return [5.5e9, 59.996e9, 119.6e9, 3723e9].map(f.fmtDuration); }"
    )
    assert shown == ["5.50 s", "1 min 0 s", "2 min 0 s", "1 h 2 min"]
