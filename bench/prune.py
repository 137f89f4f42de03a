"""Retention benchmark: how long exports wait while a `spanreel collector` deletes many expired traces.

A database is filled by DuckDB SQL with ``--spans`` expired spans (ended 10 to 40 days ago;
``--spans-per-trace`` each, 1 by default as in the audit that found the stall; ~300 bytes of
attributes) and its ``trace_index``, the way the writer keeps it. A collector subprocess is started
on it, one client sends a small OTLP/HTTP export (5 new spans) every 50 ms, and after a few
seconds of that the prune is asked for through the query API (``POST /api/prune`` with the owner key, what
``spanreel prune`` and ``exporters.duckdb.ttl`` run): every trace older than one day goes.

Prints the prune's duration and rate, and the export latency (median, p99, max) before and
during the prune. Stock OTLP exporters give up after 10 s (``OTEL_EXPORTER_OTLP_TIMEOUT``): the
worst export latency during the prune has to stay well under that. Before pruning went in chunks
(one transaction for everything), every export waited for the whole prune: 17.9 s (and 37.6 s
in the audit) for 1.2M spans.

Run (about a minute for 1.2M spans on 2 cores; not part of CI):

    python bench/prune.py                        # 1.2M expired spans, one per trace
    python bench/prune.py --spans 3000000 --spans-per-trace 20
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from storage import TRACE_INDEX_FILL

from spanreel.collector._client import CollectorInfo, call_api, running_collector
from spanreel.collector._writer import open_database

CHUNK = 1_000_000

_FILL = """
INSERT INTO spans BY NAME
SELECT md5((i // $per_trace)::VARCHAR) AS trace_id,
       substr(md5('s' || i::VARCHAR), 1, 16) AS span_id,
       CASE WHEN i % $per_trace = 0 THEN NULL
            ELSE substr(md5('s' || (i - i % $per_trace)::VARCHAR), 1, 16) END AS parent_span_id,
       '' AS trace_state, 'chat gpt-4o-mini' AS name, 'CLIENT' AS kind, 'bench' AS service_name,
       'spanreel' AS scope_name, '0.1.0' AS scope_version,
       t.start_time, t.start_time + INTERVAL 800 MILLISECOND AS end_time, 800000000 AS duration_ns,
       'UNSET' AS status_code, '' AS status_message,
       json_object('gen_ai.operation.name', 'chat', 'gen_ai.request.model', 'gpt-4o-mini',
                   'gen_ai.input.messages', repeat('lorem ipsum ', 20)) AS attributes,
       '{"service.name":"bench"}' AS resource_attributes, '[]' AS events, '[]' AS links,
       'chat' AS operation, 'openai' AS provider, 'gpt-4o-mini' AS request_model,
       100 AS input_tokens, 20 AS output_tokens, t.start_time::TIMESTAMP AS received_at
FROM range($lo, $hi) r(i),
LATERAL (SELECT make_timestamp_ns($first_ns + (i // $per_trace) * $step_ns) AS start_time) t
"""


def build(path: Path, n_spans: int, per_trace: int) -> None:
    """``n_spans`` spans in traces of ``per_trace``, which ended 40 to 10 days ago (arrival order)."""
    day_ns = 86_400 * 10**9
    first_ns = time.time_ns() - 40 * day_ns
    step_ns = 30 * day_ns // max(1, n_spans // per_trace)
    con = open_database(path)
    try:
        started = time.perf_counter()
        for lo in range(0, n_spans, CHUNK):
            hi = min(lo + CHUNK, n_spans)
            params = {"lo": lo, "hi": hi, "per_trace": per_trace, "first_ns": first_ns, "step_ns": step_ns}
            con.execute(_FILL, params)
        con.execute(TRACE_INDEX_FILL)
        con.execute("CHECKPOINT")
        print(f"  built in {time.perf_counter() - started:.1f} s", flush=True)
    finally:
        con.close()


def _export(trace_no: int) -> bytes:
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    now = time.time_ns()
    for i in range(5):
        span = scope.spans.add()
        span.trace_id = trace_no.to_bytes(16, "big")
        span.span_id = (trace_no * 8 + i + 1).to_bytes(8, "big")
        span.name = "live"
        span.start_time_unix_nano, span.end_time_unix_nano = now - 10**6, now
    return request.SerializeToString()


class Exporter(threading.Thread):
    """One client sending a 5-span export every 50 ms; records (send time, latency, status)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.samples: list[tuple[float, float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        headers = {"Content-Type": "application/x-protobuf"}
        with httpx.Client(timeout=120, trust_env=False) as client:
            n = 1
            while not self.stop.is_set():
                sent = time.monotonic()
                status = client.post(self.url, content=_export(n), headers=headers).status_code
                self.samples.append((sent, time.monotonic() - sent, status))
                n += 1
                self.stop.wait(0.05)


def _latency(name: str, samples: list[tuple[float, float, int]]) -> str:
    ms = sorted(latency * 1000 for _, latency, _ in samples)
    if not ms:
        return f"{name:<22} no exports"
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    statuses = sorted({status for _, _, status in samples})
    return (
        f"{name:<22} exports {len(ms):5d}   median {statistics.median(ms):7.1f} ms   "
        f"p99 {p99:7.1f} ms   max {ms[-1]:7.1f} ms   HTTP {statuses}"
    )


def _wait_for_collector(db: Path, proc: subprocess.Popen[bytes]) -> CollectorInfo:
    deadline = time.monotonic() + 60
    while (info := running_collector(db)) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the collector did not start")
        time.sleep(0.1)
    return info


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=1_200_000, help="expired spans to delete")
    parser.add_argument("--spans-per-trace", type=int, default=1, help="spans per expired trace")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="spanreel-prune-"))
    db = workdir / "spans.duckdb"
    print(f"building {args.spans:,} expired spans ({args.spans_per_trace} per trace) in {db} …", flush=True)
    build(db, args.spans, args.spans_per_trace)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPANREEL_", "OTEL_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "spanreel", "collector", "--db", str(db), "--grpc-endpoint", "127.0.0.1:0",
         "--http-endpoint", "127.0.0.1:0", "--query-endpoint", "127.0.0.1:0"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        info = _wait_for_collector(db, proc)
        exporter = Exporter(f"http://{info.http_endpoint}/v1/traces")
        exporter.start()
        time.sleep(5)
        started = time.monotonic()
        result = call_api(info, "/api/prune", {"older_than": "1d"}, as_owner=True)
        took = time.monotonic() - started
        time.sleep(1)
        exporter.stop.set()
        exporter.join()
        print(
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}\n"
            f"prune: {result['traces']:,} traces, {result['spans']:,} spans in {took:.2f} s "
            f"({result['spans'] / took:,.0f} spans/s)"
        )
        before = [s for s in exporter.samples if s[0] < started]
        during = [s for s in exporter.samples if started <= s[0] < started + took]
        print(_latency("exports before prune", before))
        print(_latency("exports during prune", during))
        worst = max((latency for _, latency, _ in during), default=0.0)
        print(f"worst export during the prune: {worst:.2f} s (stock exporters time out at 10 s)")
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
