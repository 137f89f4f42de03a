"""Cost of the start-up hook (``spanreel-autoinstrument.pth``) when ``SPANREEL_ENABLED`` is unset.

Prints, measured in the same run:

1. the hook line itself, executed in-process exactly as ``site`` executes a ``.pth`` import line,
   in microseconds per interpreter start, beside an empty statement as the baseline;
2. whole-interpreter start-up (``python -c pass``, median wall time) with ``SPANREEL_ENABLED``
   unset and set to ``0`` (both skip instrumentation), and, for scale, set to ``1`` with
   ``OTEL_TRACES_EXPORTER=none`` (instrumentation really loaded).

Run: ``python bench/startup_hook.py [--runs 30]``.
"""

from __future__ import annotations

import argparse
import os
import site
import statistics
import subprocess
import sys
import time
import timeit
from pathlib import Path


def _hook_line() -> str:
    for d in [*site.getsitepackages(), site.getusersitepackages()]:
        p = Path(d) / "spanreel-autoinstrument.pth"
        if p.is_file():
            return p.read_text().strip()
    sys.exit("spanreel-autoinstrument.pth is not installed in this interpreter's site-packages")


def _startup_ms(env: dict[str, str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="interpreter starts per variant")
    args = parser.parse_args()

    line = _hook_line()
    env = {k: v for k, v in os.environ.items() if k != "SPANREEL_ENABLED"}
    saved = os.environ.pop("SPANREEL_ENABLED", None)
    n = 200_000
    code = compile(line, "spanreel-autoinstrument.pth", "exec")
    per_call_us = timeit.timeit(lambda: exec(code, {}), number=n) / n * 1e6
    empty = compile("pass", "empty", "exec")
    baseline_us = timeit.timeit(lambda: exec(empty, {}), number=n) / n * 1e6
    if saved is not None:
        os.environ["SPANREEL_ENABLED"] = saved
    print(
        f"hook line, SPANREEL_ENABLED unset: {per_call_us:.2f} µs per start "
        f"(exec of an empty line: {baseline_us:.2f} µs)"
    )

    unset = _startup_ms(env, args.runs)
    disabled = _startup_ms({**env, "SPANREEL_ENABLED": "0"}, args.runs)
    enabled = _startup_ms(
        {**env, "SPANREEL_ENABLED": "1", "OTEL_TRACES_EXPORTER": "none"}, max(5, args.runs // 3)
    )
    print(
        f"python -c pass, median of {args.runs}: unset {unset:.1f} ms, SPANREEL_ENABLED=0 {disabled:.1f} ms "
        f"(ratio {disabled / unset:.3f}), SPANREEL_ENABLED=1 {enabled:.1f} ms (instrumentation loaded)"
    )
    verdict = "OK" if per_call_us < 1000 else "OVER"
    print(f"target: hook cost < 1 ms when unset -> {per_call_us / 1000:.4f} ms [{verdict}]")


if __name__ == "__main__":
    main()
