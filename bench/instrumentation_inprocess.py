"""spanreel's added latency per call measured inside one process, and where it goes.

``bench/instrumentation_overhead.py`` compares instrumentations, each in its own process. This
script answers a narrower question more precisely: in one warm process with spanreel installed
(GenAI span only, content captured: the ``spanreel-no-http`` variant's set-up), what does turning
spanreel's recording on add to a real ``openai`` SDK call against the same local server? Blocks of
``--calls`` calls alternate between recording on and off (spanreel's settings switched, so the
wrappers pass requests straight through when off); per round, added = median wall time on −
median off; the figure is the median over ``--rounds`` rounds, so drift of the machine cancels.

A second pass times spanreel's phases *in place*, inside those real calls (``perf_counter_ns``
around each; µs per call): starting the span (request parsing, attributes, span start), observing
the response head (tee set-up), the per-chunk feed, and finishing (response parsing, cost, span
end). For contrast it times the cost computation twice in a row at each call: the second, warm
figure is what a tight micro-benchmark would report, the first is what the call really pays; the
ratio shows how much of the in-place cost is the code and data being cold (evicted by the SDK's
own work between calls), which instruction counts (callgrind) do not see.

With ``--http-child`` the process is set up as spanreel is by default, with
opentelemetry-instrumentation-httpx's HTTP child span (left on: only spanreel's GenAI recording is
switched), and that library's steps are timed in place too: where the child span's cost goes.

Run: ``python bench/instrumentation_inprocess.py [--calls 100] [--rounds 24] [--modes plain,stream]
[--http-child] [--finish-in-thread]``.

``--finish-in-thread`` measures an alternative spanreel does not use: each call's finish work
handed to a worker thread (see :func:`_finish_in_a_thread`).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import instrumentation_overhead as overhead  # the same server, client calls and set-up


def _switch() -> Callable[[bool], None]:
    """Turn spanreel's recording on or off (its installed wrappers stay in place)."""
    from spanreel.instrumentation._instrumentor import _STATE

    on = _STATE.settings
    assert on is not None, "spanreel is not instrumenting"

    def switch(enabled: bool) -> None:
        _STATE.settings = on if enabled else None

    return switch


def _finish_in_a_thread() -> None:
    """The experiment behind ``--finish-in-thread``: hand each owned span's finish work (response
    parsing, cost, attributes, span end with the captured end time) to one worker thread, so the
    application's thread only enqueues. Not how spanreel works: measured, the GIL hand-offs cost
    the application more than the work moved off its thread."""
    import queue
    import threading

    from spanreel.instrumentation._call import LLMCall

    inline = LLMCall.finish
    work: queue.SimpleQueue[tuple[LLMCall, BaseException | None, int]] = queue.SimpleQueue()

    def worker() -> None:
        while True:
            call, exc, end = work.get()
            span = call.span
            span.end = functools.partial(span.end, end)  # type: ignore[method-assign]
            inline(call, exc)  # ends the span at ``end``, when finish was called

    def finish(call: LLMCall, exc: BaseException | None = None) -> None:
        if call.owned and not call.ended:
            work.put((call, exc, time.time_ns()))
        else:
            inline(call, exc)

    threading.Thread(target=worker, daemon=True).start()
    LLMCall.finish = finish  # type: ignore[method-assign]


def _added(
    fn: Callable[[], None], switch: Callable[[bool], None], args: argparse.Namespace
) -> tuple[float, float]:
    """(median wall µs per call with recording off, median over rounds of on − off)."""
    offs, diffs = [], []
    for r in range(args.rounds):
        block = {}
        for enabled in (True, False) if r % 2 else (False, True):
            switch(enabled)
            block[enabled] = overhead._timed_block(fn, args.calls)["wall_us"]
        offs.append(block[False])
        diffs.append(block[True] - block[False])
    switch(True)
    return statistics.median(offs), statistics.median(diffs)


#: opentelemetry-instrumentation-httpx's steps timed with ``--http-child`` (its module functions).
HTTP_CHILD_STEPS = {
    "_extract_parameters": "HTTP span: request read (URL re-parsed)",
    "_apply_request_client_attributes_to_span": "HTTP span: request attributes",
    "_inject_propagation_headers": "HTTP span: traceparent injected",
    "_apply_response_client_attributes_to_metrics": "HTTP span: response metric attributes",
    "_apply_response_client_attributes_to_span": "HTTP span: response attributes",
}


def _phases(fn: Callable[[], None], calls: int, http_child: bool = False) -> dict[str, float]:
    """µs per call spent in each of spanreel's phases, timed in place (recording on); with
    ``http_child``, also the steps of opentelemetry-instrumentation-httpx's HTTP child span."""
    from spanreel.instrumentation import _call, _transport

    spent: dict[str, int] = {}

    def timed(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter_ns()
            try:
                return f(*a, **k)
            finally:
                spent[name] = spent.get(name, 0) + time.perf_counter_ns() - t0

        return wrapper

    cost_usd = _call.cost_usd

    def cost_twice(*a: Any) -> Any:
        t0 = time.perf_counter_ns()
        cost_usd(*a)
        t1 = time.perf_counter_ns()
        result = cost_usd(*a)
        spent["cost, in place"] = spent.get("cost, in place", 0) + t1 - t0
        spent["cost, again at once"] = spent.get("cost, again at once", 0) + time.perf_counter_ns() - t1
        return result

    patches: list[tuple[Any, str, Any]] = [
        (_transport, "start_call", timed("start (request, span start)", _transport.start_call)),
        (_transport, "_observe", timed("response head (tee set-up)", _transport._observe)),
        (_call.LLMCall, "feed", timed("body chunks (feed)", _call.LLMCall.feed)),
        (_call.LLMCall, "finish", timed("finish (parse, cost, span end)", _call.LLMCall.finish)),
        (_call, "cost_usd", cost_twice),
    ]
    if http_child:
        import opentelemetry.instrumentation.httpx as http_module

        patches += [
            (http_module, name, timed(label, getattr(http_module, name)))
            for name, label in HTTP_CHILD_STEPS.items()
        ]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    try:
        for owner, name, value in patches:
            setattr(owner, name, value)
        for _ in range(calls):
            fn()
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)
    finish, again = "finish (parse, cost, span end)", "cost, again at once"
    if finish in spent and again in spent:
        spent[finish] -= spent[again]  # the extra, warm cost run is not part of the call's finish
    return {name: total / calls / 1000 for name, total in spent.items()}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100, help="calls per block")
    parser.add_argument("--rounds", type=int, default=24, help="rounds of one block on and one off")
    parser.add_argument("--warmup", type=int, default=300, help="untimed calls first, per mode")
    parser.add_argument(
        "--modes",
        type=lambda text: overhead._names(text, overhead.MODES, "mode"),
        default=list(overhead.MODES),
        help="comma-separated: plain, stream (default both)",
    )
    parser.add_argument(
        "--http-child",
        action="store_true",
        help="set up with the HTTP child span (spanreel's default) and time its steps in place too",
    )
    parser.add_argument(
        "--finish-in-thread",
        action="store_true",
        help="experiment: run each call's finish work on a worker thread (see _finish_in_a_thread)",
    )
    args = parser.parse_args(argv)
    modes: list[str] = args.modes
    variant = "spanreel" if args.http_child else "spanreel-no-http"

    server = subprocess.Popen(
        [sys.executable, overhead.__file__, "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        overhead._setup(variant)
        calls = overhead.sdk_calls(port)
        switch = _switch()
        if args.finish_in_thread:
            _finish_in_a_thread()
            print("experiment: finish work handed to a worker thread")
        child = "HTTP child span on (not switched)" if args.http_child else "no HTTP child span"
        print(
            f"spanreel (GenAI span, content captured, {child}), one process, GenAI recording on vs off "
            f"in alternating blocks: {args.rounds} rounds × {args.calls} calls per mode; wall µs per call"
        )
        for mode in modes:
            fn = calls[mode]
            for _ in range(args.warmup):
                fn()
            off, added = _added(fn, switch, args)
            label = overhead.MODE_LABELS[mode]
            print(f"\n{label}: off {off:.0f} µs, added {added:.0f} µs (ratio {(off + added) / off:.3f})")
            phases = _phases(fn, args.calls * 10, args.http_child)
            for name, us in phases.items():
                print(f"  {name:42s} {us:7.1f} µs")
            cold, warm = phases.get("cost, in place"), phases.get("cost, again at once")
            if cold and warm:
                print(
                    f"  cost step in place / at once again: {cold / warm:.1f}× (the same code; cold vs warm)"
                )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
